"""Pieces shared by the segmentation baselines: soft-IoU loss, conv blocks, the model protocol.

Every segmenter follows the Models protocol of ``docs/CONTRACTS.md``: ``task = "segment"``,
``config`` (builder kwargs), ``forward(images (B, 3, H, W) in [0, 1]) -> logits (B, 1, H, W)``,
``compute_loss(outputs, targets) -> {"soft_iou": scalar}`` and
``postprocess(outputs) -> [{"score_map": (H, W) in [0, 1]}]``.

Options every segmenter builder takes (names fixed in ``OWNERS.md`` / ``docs/CONTRACTS.md``):

``input_norm``
    ``"none"``: the network sees the ``[0, 1]`` images; ``"imagenet"``: it first subtracts the
    ImageNet channel mean and divides by the ImageNet channel std, as the ACM, ALCNet and
    DNANet training code does with ``transforms.Normalize`` (:data:`IMAGENET_MEAN`,
    :data:`IMAGENET_STD`).
``prior_prob``
    Output-bias initialisation: every output logit's bias starts at ``-log((1 - p) / p)``
    (``p = 0.01`` -> -4.595), so that the network starts predicting "background" everywhere
    (Lin et al., focal loss, 2017). Without it the soft-IoU of a 0.5-everywhere start is
    ~0.001 and its gradient too flat for the loss to move (issue 13). ``None`` leaves
    PyTorch's default bias initialisation.
``loss``
    ``"soft_iou_image"``: ``1 - mean_i IoU_i`` over the images of the batch;
    ``"soft_iou_batch"``: ``1 - IoU`` of the whole batch taken as one image (the
    ``SoftIoULoss`` of the ACM / ALCNet / DNANet code).
``deep_supervision``
    Only where the paper has it (DNANet): the loss is the mean over every side output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from irstd_bench.errors import InputError

#: Added to numerator and denominator of the soft IoU (as in the ACM / DNANet training code).
SOFT_IOU_SMOOTH = 1.0
#: ImageNet channel statistics of ``torchvision``'s ``Normalize`` (RGB, images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``input_norm`` values.
INPUT_NORMS = ("none", "imagenet")
#: ``loss`` values shared by every segmenter (a model may add its own).
SOFT_IOU_LOSSES = {"soft_iou_image": "image", "soft_iou_batch": "batch"}
#: Default ``prior_prob`` of every segmenter (output bias -4.595).
DEFAULT_PRIOR_PROB = 0.01


def soft_iou_loss(
    logits: torch.Tensor, masks: torch.Tensor, smooth: float = SOFT_IOU_SMOOTH, reduction: str = "image"
) -> torch.Tensor:
    """Soft-IoU loss ``1 - mean_i (|p_i * y_i| + s) / (|p_i| + |y_i| - |p_i * y_i| + s)``.

    With ``reduction="batch"`` the sums run over the whole batch at once (one IoU for the
    batch, the ``SoftIoULoss`` of the ACM / DNANet code): images with many target pixels
    weigh more, and an image without targets adds only to the denominator.

    Parameters
    ----------
    logits : Tensor (B, 1, H, W)
        Raw scores; ``p = sigmoid(logits)``.
    masks : Tensor (B, 1, H, W) or (B, H, W)
        Targets in {0, 1}.
    smooth : float
        Added to both terms (keeps empty-mask images finite).
    reduction : str
        ``"image"`` (mean of per-image IoUs) or ``"batch"`` (one IoU over the batch).

    Returns
    -------
    loss : Tensor () in [0, 1]
    """
    if masks.dim() == 3:
        masks = masks.unsqueeze(1)
    if logits.shape != masks.shape:
        raise InputError(f"soft-IoU: logits {tuple(logits.shape)} and masks {tuple(masks.shape)} differ in shape")
    if reduction not in ("image", "batch"):
        raise ValueError(f"soft-IoU reduction {reduction!r}: expected 'image' or 'batch'")
    prob = torch.sigmoid(logits)
    masks = masks.to(prob.dtype)
    dims = (1, 2, 3) if reduction == "image" else (0, 1, 2, 3)
    inter = (prob * masks).sum(dim=dims)
    union = prob.sum(dim=dims) + masks.sum(dim=dims) - inter
    return 1.0 - ((inter + smooth) / (union + smooth)).mean()


def prior_bias(prior_prob: float) -> float:
    """Logit bias ``-log((1 - p) / p)`` whose sigmoid is ``p`` (``0.01`` -> ``-4.595``)."""
    if not 0.0 < prior_prob < 1.0:
        raise InputError(f"prior_prob {prior_prob}: must be in (0, 1)")
    return -math.log((1.0 - prior_prob) / prior_prob)


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``Conv(k, stride, same padding, no bias) -> BN -> ReLU``."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """ResNet basic block (two 3x3 convs); a 1x1 projection when stride or width change.

    ``(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)``.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def residual_stage(c_in: int, c_out: int, blocks: int, stride: int = 1) -> nn.Sequential:
    """``blocks`` residual blocks; the first one changes width and stride."""
    return nn.Sequential(ResidualBlock(c_in, c_out, stride), *(ResidualBlock(c_out, c_out) for _ in range(blocks - 1)))


class FCNHead(nn.Module):
    """FCN segmentation head: ``3x3 conv (C -> C/4) -> BN -> ReLU -> dropout -> 1x1 conv -> 1``."""

    def __init__(self, c_in: int, c_out: int = 1, dropout: float = 0.1):
        super().__init__()
        inter = max(c_in // 4, 1)
        self.block = nn.Sequential(conv_bn_relu(c_in, inter), nn.Dropout(dropout), nn.Conv2d(inter, c_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def _final_logits(outputs) -> torch.Tensor:
    return outputs[-1] if isinstance(outputs, (list, tuple)) else outputs


def check_segmenter_options(input_norm: str, prior_prob: float | None, loss: str, losses=SOFT_IOU_LOSSES) -> None:
    """Raise :class:`InputError` for an unknown ``input_norm`` / ``loss`` or ``prior_prob`` outside (0, 1)."""
    if input_norm not in INPUT_NORMS:
        raise InputError(f"input_norm {input_norm!r}: expected one of {', '.join(INPUT_NORMS)}")
    if loss not in losses:
        raise InputError(f"loss {loss!r}: expected one of {', '.join(losses)}")
    if prior_prob is not None:
        prior_bias(prior_prob)


class SegmentationModel(nn.Module):
    """Base of the segmenters: input checks and normalisation, soft-IoU loss, sigmoid post-processing.

    Subclasses set ``size_divisor`` (H and W of the input must be multiples of it), call
    :meth:`prepare` first in ``forward`` and :meth:`init_output_bias` last in ``__init__``;
    ``forward`` may return a list of logits (deep supervision), the last being the final
    prediction.

    Parameters
    ----------
    config : dict
        Builder keywords (rebuild the model); the three shared options are added to it.
    input_norm, prior_prob, loss
        See the module docstring.
    """

    task = "segment"
    size_divisor = 32

    def __init__(
        self,
        config: dict,
        *,
        input_norm: str = "none",
        prior_prob: float | None = DEFAULT_PRIOR_PROB,
        loss: str = "soft_iou_image",
    ):
        super().__init__()
        check_segmenter_options(input_norm, prior_prob, loss, self.loss_names())
        self.config = {**config, "input_norm": input_norm, "prior_prob": prior_prob, "loss": loss}
        self.input_norm = input_norm
        self.prior_prob = prior_prob
        self.loss_name = loss
        # Not persistent: checkpoints written before input_norm existed load unchanged.
        self.register_buffer("norm_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("norm_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def loss_names(cls) -> tuple[str, ...]:
        """The ``loss`` values this model accepts."""
        return tuple(SOFT_IOU_LOSSES)

    def check_images(self, images: torch.Tensor) -> None:
        """Raise :class:`InputError` unless images are ``(B, 3, H, W)``, H, W multiples of size_divisor."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"images must be a (B, 3, H, W) tensor, got {shape}")
        h, w = images.shape[-2:]
        if h % self.size_divisor or w % self.size_divisor:
            raise InputError(
                f"image size {h}x{w} (HxW) is not a multiple of {self.size_divisor} for {type(self).__name__}"
            )

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check ``images (B, 3, H, W)`` in [0, 1] and apply ``input_norm``; same shape."""
        self.check_images(images)
        if self.input_norm == "imagenet":
            return (images - self.norm_mean.to(images.dtype)) / self.norm_std.to(images.dtype)
        return images

    def output_convs(self) -> list[nn.Conv2d]:
        """The convolutions whose outputs are logits (their bias gets the prior); subclasses override."""
        raise NotImplementedError

    def init_output_bias(self) -> None:
        """Set the bias of every output convolution to :func:`prior_bias` (``prior_prob=None``: keep)."""
        if self.prior_prob is None:
            return
        with torch.no_grad():
            for conv in self.output_convs():
                if conv.bias is None:
                    raise ValueError(f"{type(self).__name__}: an output convolution has no bias")
                conv.bias.fill_(prior_bias(self.prior_prob))

    def masks_like(self, logits: torch.Tensor, targets: Sequence[dict]) -> torch.Tensor:
        """Stack ``targets[i]["masks"] (H, W)`` into ``(B, 1, H, W)`` on the logits' device and dtype."""
        if len(targets) != logits.shape[0]:
            raise InputError(f"{len(targets)} targets for a batch of {logits.shape[0]} images")
        return torch.stack([t["masks"].to(logits.device, logits.dtype) for t in targets]).unsqueeze(1)

    def compute_loss(self, outputs, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """``{"soft_iou": loss}``; with a list of outputs (deep supervision) the mean over them.

        ``targets[i]["masks"]``: Tensor (H, W) in {0, 1}, the input size. The reduction over
        the batch is the ``loss`` option (``soft_iou_image`` / ``soft_iou_batch``).
        """
        outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        masks = self.masks_like(outs[0], targets)
        reduction = SOFT_IOU_LOSSES[self.loss_name]
        loss = sum(soft_iou_loss(o, masks, reduction=reduction) for o in outs) / len(outs)
        return {"soft_iou": loss}

    @torch.no_grad()
    def postprocess(self, outputs, *, conf_threshold: float = 0.001, iou_threshold: float = 0.5, max_det: int = 100):
        """Per image ``{"score_map": Tensor (H, W) = sigmoid(final logits)}`` in [0, 1].

        The detection keyword arguments are accepted for the common protocol and ignored.
        """
        probs = torch.sigmoid(_final_logits(outputs).float())
        return [{"score_map": p[0]} for p in probs]
