"""MDvsFA: two generators tuned against miss detection and false alarm, trained adversarially.

Wang, H., Zhou, L., Wang, L. "Miss Detection vs. False Alarm: Adversarial Learning for Small
Object Segmentation in Infrared Images", ICCV 2019. Read from the authors' code
(``wanghuanphd/MDvsFA_cGAN``: ``demo_MDvsFA_tensorflow.py``, the authors' own, and
``demo_MDvsFA_pytorch.py``, a port contributed by others); nothing is copied.

Networks (:mod:`._mdvsfa_nets`): G1, a context-aggregation network of 8 dilated 3x3 layers (widths
64..512, receptive field 47 px); G2, 13 dilated layers of width 64 with U-shaped skips (receptive
field 381 px); both see the first image channel mapped to [-1, 1] at full resolution, and their
prediction is the raw output clipped to [0, 1]. The discriminator D sees ``(image, 2 S - 1)`` for a
segmentation ``S`` (ground truth, G1's or G2's) and classifies it into those 3 classes. The
network's output is the mean of the two clipped maps.

Losses, ``S0`` the mask, ``S1``/``S2`` the clipped generator maps, means over every pixel of the batch:

    MD_i = mean((S_i - S0)^2 S0)        FA_i = mean((S_i - S0)^2 (1 - S0))
    G1:  100 (lambda_md MD_1 + FA_1) + 10 adv_1 + GC
    G2:  100 (MD_2 + lambda_fa FA_2) + 10 adv_2 + GC
    D:   cls(D(S0), 0) + cls(D(S1), 1) + cls(D(S2), 2)

``adv_i = cls(D(S_i), 0)`` (G_i wants its map taken for ground truth) and ``GC = mean((f1 - f2)^2)``
the squared distance of D's last conv maps of ``S1`` and ``S2`` (the generator-consistency loss).
``cls`` is a 3-class softmax cross-entropy (``adversarial_loss="cross_entropy"``), or the authors'
code's sigmoid cross-entropy applied to D's *softmax outputs* as if they were logits
(``"bce_on_softmax"``). :meth:`MDvsFA.compute_loss` returns both generators' terms, arranged so
that one backward pass of their sum gives each generator exactly its own loss's gradient;
:meth:`MDvsFA.adversary_loss` gives D's. The training engine runs a D step, then
the generators' step, each iteration, with a second optimizer for D (``adversary_*`` below).

Parameters: G1 3,135,569, G2 628,187, D 151,124; 3,914,880 in all (the TensorFlow code's layers:
no conv biases under a norm, BN shift without scale, ``w0``/``w1`` per generator layer). The
PyTorch port has 4,718 more (3,919,598): conv biases and BN scales everywhere, a BN on D's
3 outputs, no ``w0``/``w1``. See ``docs/models/mdvsfa.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from irstd_bench.errors import InputError
from reference_model.recipe import Recipe, recipes_table
from reference_model.segmentation._common import SegmentationModel
from reference_model.segmentation._mdvsfa_nets import Discriminator, FalseAlarmGenerator, MissDetectionGenerator

#: The model's own loss (``loss="mdvsfa"``): the weighted MD/FA data terms, adversarial and GC terms.
MDVSFA_LOSS = "mdvsfa"
#: Discriminator class of each kind of segmentation.
REAL, FROM_G1, FROM_G2 = 0, 1, 2
#: ``adversarial_loss`` values (see the module docstring).
ADVERSARIAL_LOSSES = ("cross_entropy", "bce_on_softmax")
#: Loss weights of the authors' code: data term, adversarial term, generator consistency.
DATA_WEIGHT, ADVERSARIAL_WEIGHT, CONSISTENCY_WEIGHT = 100.0, 10.0, 1.0
#: G1's miss-detection weight (lambda1), the same in both code bases.
LAMBDA_MD = 100.0
#: G2's false-alarm weight (lambda2): 1 in the authors' TensorFlow code, 10 in the PyTorch port.
LAMBDA_FA_TF, LAMBDA_FA_PORT = 1.0, 10.0
#: Discriminator Adam: lr 1e-5 against the generators' 1e-4, beta1 0.5 (both code bases).
ADVERSARY_LR_RATIO, ADVERSARY_BETA1 = 0.1, 0.5


class MDvsFAOutputs(NamedTuple):
    """Training-mode output of :class:`MDvsFA` (eval mode returns the fused map alone).

    ``g1``, ``g2``: raw generator maps ``(B, 1, H, W)`` (predictions: clipped to [0, 1]);
    ``image``: the generators' input ``(B, 1, H, W)`` in [-1, 1], which D sees with each map.
    """

    g1: torch.Tensor
    g2: torch.Tensor
    image: torch.Tensor


def miss_false_terms(prob: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(MD, FA)``: squared error on target pixels and on background pixels, each a mean over all pixels.

    ``prob``, ``masks``: ``(B, 1, H, W)``, ``prob`` in [0, 1], ``masks`` in {0, 1}.
    """
    err = (prob - masks) ** 2
    return (err * masks).mean(), (err * (1.0 - masks)).mean()


def classification_loss(logits: torch.Tensor, label: int, kind: str) -> torch.Tensor:
    """Loss of D's scores ``(N, 3)`` for every row belonging to class ``label``.

    ``cross_entropy``: ``mean_n -log softmax(logits_n)[label]``; ``bce_on_softmax`` (the authors'
    code): ``q = softmax(logits)`` taken as logits of 3 independent sigmoids against the one-hot
    label, ``mean_{n,k} BCE(sigmoid(q_nk), onehot_k)``.
    """
    if kind == "cross_entropy":
        return F.cross_entropy(logits, torch.full((logits.shape[0],), label, device=logits.device))
    onehot = F.one_hot(torch.full((logits.shape[0],), label, device=logits.device), logits.shape[1])
    return F.binary_cross_entropy_with_logits(torch.softmax(logits, dim=1), onehot.to(logits.dtype))


class MDvsFA(SegmentationModel):
    """G1 + G2 + discriminator; see the module docstring.

    Parameters
    ----------
    g1_width, g2_width, d_width : int
        Base widths of G1 (64: 64..512 channels), G2 (64) and D's convs (24).
    lambda_md, lambda_fa : float
        G1's miss-detection weight and G2's false-alarm weight in their data terms.
    adversarial_loss : str
        :data:`ADVERSARIAL_LOSSES`.
    adversary_lr_ratio, adversary_beta1 : float
        D's learning rate over the generators' and its Adam beta1 (read by the training engine).
    input_norm, prior_prob, loss
        Shared segmenter options; only ``"none"``, ``None`` and ``"mdvsfa"``: the generators map the
        image to [-1, 1] themselves and their outputs are clipped values, not logits.
    """

    size_divisor = 1

    def __init__(
        self,
        *,
        g1_width: int = 64,
        g2_width: int = 64,
        d_width: int = 24,
        lambda_md: float = LAMBDA_MD,
        lambda_fa: float = LAMBDA_FA_PORT,
        adversarial_loss: str = "cross_entropy",
        adversary_lr_ratio: float = ADVERSARY_LR_RATIO,
        adversary_beta1: float = ADVERSARY_BETA1,
        input_norm: str = "none",
        prior_prob: float | None = None,
        loss: str = MDVSFA_LOSS,
    ):
        if input_norm != "none":
            raise InputError(f"input_norm {input_norm!r}: MDvsFA maps its input to [-1, 1] itself (use 'none')")
        if prior_prob is not None:
            raise InputError(f"prior_prob {prior_prob}: MDvsFA's outputs are clipped maps, not logits (use None)")
        if adversarial_loss not in ADVERSARIAL_LOSSES:
            raise InputError(f"adversarial_loss {adversarial_loss!r}: expected one of {', '.join(ADVERSARIAL_LOSSES)}")
        if min(g1_width, g2_width, d_width) < 1:
            raise InputError(f"MDvsFA widths {g1_width}, {g2_width}, {d_width}: must be >= 1")
        if not (adversary_lr_ratio > 0 and 0.0 <= adversary_beta1 < 1.0):
            raise InputError(f"adversary lr ratio {adversary_lr_ratio} / beta1 {adversary_beta1}: out of range")
        config = {
            "g1_width": g1_width,
            "g2_width": g2_width,
            "d_width": d_width,
            "lambda_md": float(lambda_md),
            "lambda_fa": float(lambda_fa),
            "adversarial_loss": adversarial_loss,
            "adversary_lr_ratio": float(adversary_lr_ratio),
            "adversary_beta1": float(adversary_beta1),
        }
        super().__init__(config, input_norm=input_norm, prior_prob=prior_prob, loss=loss)
        self.g1 = MissDetectionGenerator(g1_width)
        self.g2 = FalseAlarmGenerator(g2_width)
        self.discriminator = Discriminator(d_width)
        self.lambda_md, self.lambda_fa = float(lambda_md), float(lambda_fa)
        self.adversarial_loss = adversarial_loss
        self.adversary_lr_ratio, self.adversary_momentum = float(adversary_lr_ratio), float(adversary_beta1)

    @classmethod
    def loss_names(cls) -> tuple[str, ...]:
        return (MDVSFA_LOSS,)

    # ------------------------------------------------------------------ engine hooks
    @property
    def adversary(self) -> torch.nn.Module:
        """The discriminator: the engine trains its parameters with a second optimizer, first each step."""
        return self.discriminator

    # ------------------------------------------------------------------ forward
    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Check ``images (B, 3, H, W)`` in [0, 1]; the first channel mapped to [-1, 1], ``(B, 1, H, W)``."""
        self.check_images(images)
        return images[:, :1] * 2.0 - 1.0

    def forward(self, images: torch.Tensor):
        """``images (B, 3, H, W)`` in [0, 1], any H, W.

        Training mode: :class:`MDvsFAOutputs`; eval mode: the fused map ``(B, 1, H, W)`` in [0, 1],
        ``(clip(g1) + clip(g2)) / 2``.
        """
        x = self.prepare(images)
        g1, g2 = self.g1(x), self.g2(x)
        if self.training:
            return MDvsFAOutputs(g1, g2, x)
        return fused_map(g1, g2)

    def output_convs(self):
        return [self.g1.head, self.g2.head]

    # ------------------------------------------------------------------ losses
    def _judge(self, image: torch.Tensor, maps: Sequence[torch.Tensor]):
        """D's logits and feature maps of ``(image, 2 m - 1)`` for each map, as one batch; split per map."""
        pairs = torch.cat([torch.cat([image, 2.0 * m - 1.0], dim=1) for m in maps])
        logits, features = self.discriminator(pairs)
        return logits.chunk(len(maps)), features.chunk(len(maps))

    def compute_loss(self, outputs: MDvsFAOutputs, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """The generators' terms; their sum is ``L_G1 + L_G2``, the loss of the generator step.

        ``{"g1_data", "g1_adv", "g1_consistency", "g2_data", "g2_adv", "g2_consistency"}``, each
        already weighted (``g1_data = 100 (lambda_md MD_1 + FA_1)``, ``g1_adv = 10 cls(D(S1), real)``,
        ``g1_consistency = GC``...). D judges ``(S0, S1, S2)`` as one batch, as in the authors' code,
        so its batch norm couples the three; the ``g1_*`` terms are computed with ``S2`` detached and
        the ``g2_*`` terms with ``S1`` detached, so that one backward pass of the sum gives each
        generator the gradient of its own loss only, as the authors' separate updates do.
        """
        # float32: means over every pixel of a batch are too fine for bfloat16 under AMP
        masks = self.masks_like(outputs.g1.float(), targets)
        p1, p2 = outputs.g1.float().clamp(0.0, 1.0), outputs.g2.float().clamp(0.0, 1.0)
        md1, fa1 = miss_false_terms(p1, masks)
        md2, fa2 = miss_false_terms(p2, masks)
        kind = self.adversarial_loss
        image = outputs.image.float()
        (_, logits1, _), (_, feat1, feat2) = self._judge(image, (masks, p1, p2.detach()))
        g1_adv, g1_gc = classification_loss(logits1, REAL, kind), ((feat1.float() - feat2.float()) ** 2).mean()
        (_, _, logits2), (_, feat1, feat2) = self._judge(image, (masks, p1.detach(), p2))
        g2_adv, g2_gc = classification_loss(logits2, REAL, kind), ((feat1.float() - feat2.float()) ** 2).mean()
        return {
            "g1_data": DATA_WEIGHT * (self.lambda_md * md1 + fa1),
            "g1_adv": ADVERSARIAL_WEIGHT * g1_adv,
            "g1_consistency": CONSISTENCY_WEIGHT * g1_gc,
            "g2_data": DATA_WEIGHT * (md2 + self.lambda_fa * fa2),
            "g2_adv": ADVERSARIAL_WEIGHT * g2_adv,
            "g2_consistency": CONSISTENCY_WEIGHT * g2_gc,
        }

    def adversary_loss(self, outputs: MDvsFAOutputs, targets: Sequence[dict]) -> dict[str, torch.Tensor]:
        """D's 3-class loss ``{"disc": cls(D(S0), 0) + cls(D(S1), 1) + cls(D(S2), 2)}``; generators detached."""
        masks = self.masks_like(outputs.g1.float(), targets)
        p1, p2 = outputs.g1.detach().float().clamp(0.0, 1.0), outputs.g2.detach().float().clamp(0.0, 1.0)
        logits, _ = self._judge(outputs.image.detach().float(), (masks, p1, p2))
        kind = self.adversarial_loss
        return {"disc": sum(classification_loss(lg, label, kind) for label, lg in enumerate(logits))}

    @torch.no_grad()
    def postprocess(self, outputs, *, conf_threshold: float = 0.001, iou_threshold: float = 0.5, max_det: int = 100):
        """Per image ``{"score_map": (H, W)}``: the fused map (in [0, 1] already; no sigmoid)."""
        if isinstance(outputs, MDvsFAOutputs):
            outputs = fused_map(outputs.g1, outputs.g2)
        return [{"score_map": p[0]} for p in outputs.float().clamp(0.0, 1.0)]


def fused_map(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """``(clip(g1, 0, 1) + clip(g2, 0, 1)) / 2``: the mean of the two generators' predictions."""
    return (g1.clamp(0.0, 1.0) + g2.clamp(0.0, 1.0)) / 2.0


def build_mdvsfa(**kwargs) -> MDvsFA:
    """MDvsFA with the authors' widths by default (keywords: :class:`MDvsFA`)."""
    return MDvsFA(**kwargs)


# ---------------------------------------------------------------------- recipes
_TRAIN = {
    "epochs": 290,
    "imgsz": 256,
    "base_size": None,
    "batch": 10,
    "optimizer": "adamw",
    "lr": 1e-4,
    "weight_decay": 0.0,
    "schedule": "linear",
    "lr_final_ratio": 1.0,
    "warmup_epochs": 0.0,
    "warmup_iters": 0,
    "nominal_batch": None,
    "ema": False,
    "augment": False,
    "fitness": "iou",
}

_NOTES = (
    "The engine trains and validates at one input size: the authors' 128-px training patches would put "
    "validation and prediction at 128 px too (half NUAA-SIRST's scale), so whole images are letterboxed "
    "to 256 px. 290 epochs of 256 such images see 4.9 G pixels, the authors' 29 epochs of 10,000 "
    "128-px patches 4.75 G.",
    "Adam without weight decay is the engine's AdamW with weight decay 0; constant learning rates "
    "(the engine's linear schedule to a final ratio of 1).",
    "One generator step updates G1 and G2 together after the D step (one Adam over both, each "
    "generator's gradient that of its own loss); the authors step G1, then G2 with G1 already updated.",
    "No gradient clipping, as the authors (the engine's default clipping is off under a recipe).",
    "D's batch norms after its dense layers train as batch norms; in the TensorFlow code "
    "(tf.layers.batch_normalization(net, True): True is the axis) they stay in inference mode.",
    "D max-pools its input to 32 x 32 (adaptive max pooling): the authors' two 2x2 max-pools for their "
    "128-px patches, any input size here.",
    "Batch-norm running averages use momentum 0.1 (the PyTorch port's) instead of TensorFlow's decay 0.999.",
)

#: Training recipes (``--recipe NAME``).
RECIPES = recipes_table(
    Recipe(
        name="authors",
        description="demo_MDvsFA_tensorflow.py: lambda1 100, lambda2 1, Adam 1e-4 (beta1 0.9) for G1/G2, "
        "1e-5 (beta1 0.5) for D, batch 10, no augmentation",
        model_options={
            "lambda_md": LAMBDA_MD,
            "lambda_fa": LAMBDA_FA_TF,
            "adversarial_loss": "bce_on_softmax",
            "adversary_lr_ratio": ADVERSARY_LR_RATIO,
            "adversary_beta1": ADVERSARY_BETA1,
        },
        train={**_TRAIN, "momentum": 0.9},
        notes=(
            "adversarial_loss 'bce_on_softmax' keeps the code's sigmoid cross-entropy on D's softmax outputs.",
            *_NOTES,
        ),
    ),
    Recipe(
        name="paper",
        description="3-class softmax cross-entropy for D as the paper describes it; lambda1 100, lambda2 10 "
        "and Adam beta1 0.5 of demo_MDvsFA_pytorch.py; batch 10",
        model_options={
            "lambda_md": LAMBDA_MD,
            "lambda_fa": LAMBDA_FA_PORT,
            "adversarial_loss": "cross_entropy",
            "adversary_lr_ratio": ADVERSARY_LR_RATIO,
            "adversary_beta1": ADVERSARY_BETA1,
        },
        train={**_TRAIN, "momentum": 0.5},
        notes=(
            "The paper's text was not at hand when this recipe was written: lambda2 = 10 and beta1 0.5 "
            "follow the PyTorch port (demo_MDvsFA_pytorch.py), the 3-class softmax cross-entropy the "
            "paper's description of D; check them against the paper before quoting results.",
            *_NOTES,
        ),
    ),
)
DEFAULT_RECIPE = "authors"
