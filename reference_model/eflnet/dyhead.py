"""Dynamic head (Dai et al., "Dynamic Head: Unifying Object Detection Heads with Attentions", CVPR 2021).

A :class:`DyHeadBlock` applies three attentions to the pyramid ``F`` of ``L`` levels, each with
``C`` channels (EFLNet Eq. 17-20)::

    W(F) = pi_C( pi_S( pi_L(F) . F ) . F ) . F

- **spatial-aware** ``pi_S`` (Eq. 19): a modulated deformable 3x3 convolution
  (:func:`torchvision.ops.deform_conv2d`) whose offsets and modulation mask are predicted by a
  plain 3x3 convolution from the current level. It is applied to the current level and to its
  two neighbours, each brought to the current level's resolution: the finer neighbour by a
  stride-2 deformable convolution, the coarser one by a deformable convolution at its own
  resolution (offsets and mask average-pooled 2x2 and offsets halved to its pixel units) followed
  by bilinear upsampling. Running the coarse convolution before upsampling costs a quarter of the
  other order; the mmdetection implementation makes the same choice.
- **scale-aware** ``pi_L`` (Eq. 18): each of those maps is weighted by
  ``hard_sigmoid(conv1x1(global_avg_pool(x)))`` (one scalar per image and map), and the weighted
  maps are averaged.
- **task-aware** ``pi_C`` (Eq. 20): dynamic ReLU ``max(a1 x + b1, a2 x + b2)`` with per-channel
  ``a1, b1, a2, b2`` from a two-layer bottleneck MLP on the globally pooled map.

Initialisation: the offset/mask convolution starts at zero, so offsets are 0 and the mask is
``sigmoid(0) = 0.5`` (a plain convolution at half gain, which the following GroupNorm undoes);
DyReLU starts as a plain ReLU (``a1 = 1``, others 0).

Mixed precision: under ``torch.autocast`` (bf16 or fp16) the block runs in the autocast dtype end
to end, the deformable sampling included (:func:`deform_conv2d_gathered`), except the small
offset/mask convolution, which stays float32 because sampling positions need it (a bf16 offset of
40 px is only good to 0.25 px). Without autocast nothing changes: float32 throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

#: kernel size of the deformable convolutions; offsets have ``2 * K * K`` channels, the mask ``K * K``.
DEFORM_KERNEL = 3
#: groups of the GroupNorm after each deformable convolution (reduced to divide the channels).
GROUP_NORM_GROUPS = 16
#: channel reduction of DyReLU's bottleneck MLP.
DYRELU_REDUCTION = 4
#: ranges of DyReLU's slopes and intercepts around their initial values (a1 = 1, b1 = a2 = b2 = 0).
DYRELU_SLOPE_RANGE = 1.0
DYRELU_INTERCEPT_RANGE = 0.5
#: implementations of the deformable convolution (see :class:`ModulatedDeformConv`).
DEFORM_BACKENDS = ("auto", "torchvision", "sampled", "gathered")
#: bilinear corners ``(dy, dx)`` of a sampling position.
BILINEAR_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _sampling_positions(
    offset: torch.Tensor, k: int, stride: int, padding: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input rows and columns ``(B, K^2, H_out, W_out)`` of every kernel tap, float32 at least.

    ``offset (B, 2 K^2, H_out, W_out)`` holds ``(dy, dx)`` per tap (tap ``t = i K + j``).
    """
    b, _, h_out, w_out = offset.shape
    taps = k * k
    dtype = torch.promote_types(offset.dtype, torch.float32)
    offset = offset.to(dtype)
    kernel = torch.arange(k, device=offset.device, dtype=dtype)
    tap_y = kernel.repeat_interleave(k).reshape(1, taps, 1, 1)
    tap_x = kernel.repeat(k).reshape(1, taps, 1, 1)
    base_y = (torch.arange(h_out, device=offset.device, dtype=dtype) * stride - padding).reshape(1, 1, -1, 1)
    base_x = (torch.arange(w_out, device=offset.device, dtype=dtype) * stride - padding).reshape(1, 1, 1, -1)
    offset = offset.reshape(b, taps, 2, h_out, w_out)
    return base_y + tap_y + offset[:, :, 0], base_x + tap_x + offset[:, :, 1]


def deform_conv2d_sampled(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: int = 1,
) -> torch.Tensor:
    """Modulated deformable convolution by bilinear sampling, same maths as torchvision's kernel.

    Every kernel tap is sampled with one :func:`torch.nn.functional.grid_sample` call (zeros
    outside the map, like torchvision), scaled by the mask, and the taps are contracted with the
    weights by one matrix product. On CPU this is about 4x faster than
    :func:`torchvision.ops.deform_conv2d` (whose CPU kernel is a scalar im2col loop); on CUDA the
    torchvision kernel is used. Dilation 1, no groups, no bias.

    Shapes: ``x (B, C_in, H, W)``, ``offset (B, 2 K^2, H_out, W_out)`` (``(dy, dx)`` per tap),
    ``mask (B, K^2, H_out, W_out)``, ``weight (C_out, C_in, K, K)`` -> ``(B, C_out, H_out, W_out)``.
    """
    out_dtype = x.dtype
    # sampling positions need float32 at least: bf16/fp16 cannot address pixels of large maps exactly
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    mask, weight = mask.to(x.dtype), weight.to(x.dtype)
    b, c, h, w = x.shape
    k = weight.shape[-1]
    taps = k * k
    h_out, w_out = offset.shape[-2:]
    y, x_pos = _sampling_positions(offset, k, stride, padding)  # (B, K^2, H_out, W_out) input rows, columns
    # pixel index -> grid_sample's [-1, 1] with align_corners=False (pixel i spans [i, i+1) around i+0.5)
    grid = torch.stack([(2 * x_pos + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    grid = grid.reshape(b, taps * h_out, w_out, 2).to(x.dtype)  # taps stacked along rows
    sampled = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    sampled = sampled.reshape(b, c, taps, h_out, w_out) * mask.reshape(b, 1, taps, h_out, w_out)
    columns = sampled.reshape(b, c * taps, h_out * w_out)  # (B, C_in K^2, H_out W_out)
    out = weight.reshape(weight.shape[0], c * taps) @ columns  # (B, C_out, H_out W_out)
    return out.reshape(b, -1, h_out, w_out).to(out_dtype)


def deform_conv2d_gathered(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: int = 1,
) -> torch.Tensor:
    """Modulated deformable convolution by explicit bilinear gathers, in the autocast dtype.

    Same function as :func:`torchvision.ops.deform_conv2d` (zeros outside the map). Positions and
    bilinear weights are computed in float32; the feature values are gathered, weighted and
    contracted with the kernel in the compute dtype: the autocast dtype when autocast is on
    (bf16 on a GPU: tensor-core matrix product, half the memory traffic), else ``x``'s dtype.
    :func:`torch.nn.functional.grid_sample` cannot do this, because it takes its sampling grid in
    the dtype of its input and a bf16 grid misplaces samples by up to a third of a pixel.

    Shapes as :func:`deform_conv2d_sampled`; returns the compute dtype.
    """
    device_type = x.device.type
    dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype
    b, c, h, w = x.shape
    c_out, k = weight.shape[0], weight.shape[-1]
    taps = k * k
    h_out, w_out = offset.shape[-2:]
    y, x_pos = _sampling_positions(offset, k, stride, padding)  # (B, K^2, H_out, W_out) float32
    y0, x0 = y.floor(), x_pos.floor()
    ly, lx = y - y0, x_pos - x0
    # channels last, plus one zero row that out-of-map corners point at: (B, H W + 1, C)
    values = x.to(dtype).permute(0, 2, 3, 1).reshape(b, h * w, c)
    values = torch.cat([values, values.new_zeros(b, 1, c)], dim=1)
    batch_index = torch.arange(b, device=x.device)[:, None]
    modulation = mask.to(y.dtype)
    columns = None
    for dy, dx in BILINEAR_CORNERS:
        rows, cols = y0 + dy, x0 + dx
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        index = torch.where(inside, rows * w + cols, float(h * w)).long()  # (B, K^2, H_out, W_out)
        coefficient = (ly if dy else 1 - ly) * (lx if dx else 1 - lx) * modulation
        index = index.permute(0, 2, 3, 1).reshape(b, -1)  # (B, H_out W_out K^2): taps innermost
        coefficient = coefficient.permute(0, 2, 3, 1).reshape(b, -1, 1).to(dtype)
        term = values[batch_index, index] * coefficient  # (B, H_out W_out K^2, C)
        columns = term if columns is None else columns + term
    columns = columns.reshape(b, h_out * w_out, taps * c)  # (B, N, K^2 C), tap-major like the kernel below
    kernel = weight.permute(0, 2, 3, 1).reshape(c_out, taps * c).to(dtype)  # (C_out, K^2 C)
    out = columns @ kernel.T  # (B, N, C_out)
    return out.transpose(1, 2).reshape(b, c_out, h_out, w_out)


class ModulatedDeformConv(nn.Module):
    """Modulated deformable 3x3 convolution (DCNv2) without bias, offsets given by the caller.

    Forward: ``x (B, C_in, H, W)``, ``offset (B, 2 K^2, H_out, W_out)`` in input pixels (pairs of
    ``(dy, dx)`` per kernel tap, torchvision's layout), ``mask (B, K^2, H_out, W_out)`` in
    ``[0, 1]`` -> ``(B, C_out, H_out, W_out)`` with ``H_out = ceil(H / stride)``.

    ``backend``: ``"torchvision"`` (:func:`torchvision.ops.deform_conv2d`, float32), ``"sampled"``
    (:func:`deform_conv2d_sampled`, float32), ``"gathered"`` (:func:`deform_conv2d_gathered`, the
    autocast dtype) or ``"auto"``: gathered under autocast, else torchvision on CUDA and sampled
    elsewhere. All compute the same function; the choice is a speed and precision matter and is
    not part of the model config.
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1, backend: str = "auto") -> None:
        super().__init__()
        if backend not in DEFORM_BACKENDS:
            raise ValueError(f"backend must be one of {DEFORM_BACKENDS}, got {backend!r}")
        self.stride = stride
        self.backend = backend
        self.weight = nn.Parameter(torch.empty(c_out, c_in, DEFORM_KERNEL, DEFORM_KERNEL))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def resolved_backend(self, x: torch.Tensor) -> str:
        """The backend ``forward`` uses for ``x`` (``"auto"`` resolved)."""
        if self.backend != "auto":
            return self.backend
        if torch.is_autocast_enabled(x.device.type):
            return "gathered"
        return "torchvision" if x.is_cuda else "sampled"

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        backend = self.resolved_backend(x)
        if backend == "torchvision":
            return deform_conv2d(
                x, offset, self.weight, stride=self.stride, padding=DEFORM_KERNEL // 2, mask=mask
            )
        if backend == "gathered":
            return deform_conv2d_gathered(x, offset, mask, self.weight, self.stride, DEFORM_KERNEL // 2)
        return deform_conv2d_sampled(x, offset, mask, self.weight, self.stride, DEFORM_KERNEL // 2)


class ScaleAttention(nn.Module):
    """Scale-aware attention (Eq. 18): ``(B, C, H, W) -> (B, 1, 1, 1)`` weights in ``[0, 1]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, 1, 1)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))


class DyReLU(nn.Module):
    """Task-aware attention (Eq. 20): ``max(a1 x + b1, a2 x + b2)``, coefficients per image and channel.

    ``(B, C, H, W) -> (B, C, H, W)``. The coefficients come from
    ``theta = 2 hard_sigmoid(mlp(pool(x))) - 1`` in ``[-1, 1]``:
    ``a1 = 1 + r_a theta_1``, ``b1 = r_b theta_2``, ``a2 = r_a theta_3``, ``b2 = r_b theta_4``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = max(channels // DYRELU_REDUCTION, 4)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 4 * channels)
        )
        nn.init.zeros_(self.mlp[2].weight)
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        theta = 2 * F.hardsigmoid(self.mlp(x.mean(dim=(2, 3)))) - 1  # (B, 4C)
        theta = theta.reshape(b, 4, c, 1, 1)  # (B, 4, C, 1, 1)
        a1 = 1 + DYRELU_SLOPE_RANGE * theta[:, 0]
        b1 = DYRELU_INTERCEPT_RANGE * theta[:, 1]
        a2 = DYRELU_SLOPE_RANGE * theta[:, 2]
        b2 = DYRELU_INTERCEPT_RANGE * theta[:, 3]
        return torch.maximum(a1 * x + b1, a2 * x + b2)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(GROUP_NORM_GROUPS, channels), channels)


class DyHeadBlock(nn.Module):
    """One dynamic-head block over a pyramid of levels with equal channels.

    Forward: list of ``L`` maps ``(B, C, H_l, W_l)``, finest first, each level half the size of the
    previous one -> list of ``L`` maps of the same shapes.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = DEFORM_KERNEL * DEFORM_KERNEL
        self.offset_conv = nn.Conv2d(channels, 3 * taps, 3, padding=1)  # (dy, dx) per tap + mask per tap
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)
        self.conv_mid = ModulatedDeformConv(channels, channels)
        self.conv_fine = ModulatedDeformConv(channels, channels, stride=2)
        self.conv_coarse = ModulatedDeformConv(channels, channels)
        self.norm_mid, self.norm_fine, self.norm_coarse = _norm(channels), _norm(channels), _norm(channels)
        self.scale_attention = ScaleAttention(channels)
        self.task_attention = DyReLU(channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        taps = DEFORM_KERNEL * DEFORM_KERNEL
        outputs = []
        for level, x in enumerate(features):
            with torch.autocast(x.device.type, enabled=False):  # positions need float32 (module docstring)
                offset_mask = self.offset_conv(x.float())  # (B, 3 K^2, H_l, W_l)
            offset = offset_mask[:, : 2 * taps]
            mask = offset_mask[:, 2 * taps :].sigmoid()
            maps = [self.norm_mid(self.conv_mid(x, offset, mask))]
            if level > 0:  # finer neighbour, stride-2 convolution onto this grid
                maps.append(self.norm_fine(self.conv_fine(features[level - 1], offset, mask)))
            if level < len(features) - 1:  # coarser neighbour, convolved on its grid then upsampled
                coarse = features[level + 1]
                offset_c = F.avg_pool2d(offset, 2) / 2  # (B, 2 K^2, H_l / 2, W_l / 2) in coarse pixels
                mask_c = F.avg_pool2d(mask, 2)
                y = self.norm_coarse(self.conv_coarse(coarse, offset_c, mask_c))
                maps.append(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))
            fused = torch.stack([m * self.scale_attention(m) for m in maps]).mean(dim=0)  # (B, C, H_l, W_l)
            outputs.append(self.task_attention(fused))
        return outputs


class DyHead(nn.Sequential):
    """``num_blocks`` :class:`DyHeadBlock` in sequence (``num_blocks = 0`` is the identity)."""

    def __init__(self, channels: int, num_blocks: int) -> None:
        super().__init__(*(DyHeadBlock(channels) for _ in range(num_blocks)))
