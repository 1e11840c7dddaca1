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
import warnings
from typing import NamedTuple

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
DEFORM_BACKENDS = ("auto", "torchvision", "sparse", "gathered")
#: bilinear corners ``(dy, dx)`` of a sampling position.
BILINEAR_CORNERS = ((0, 0), (0, 1), (1, 0), (1, 1))
#: log2 of the number of bilinear corners (a sample's corners are 4 consecutive sparse entries).
CORNER_BITS = 2
#: sampled values ``(images x H_out W_out K^2 x C)`` :func:`deform_conv2d_sparse` handles at once (4 MiB
#: in float32: one image of a 64 x 64 map with 32 channels; a cache-sized chunk, see its docstring).
SPARSE_CHUNK_VALUES = 2**20


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


class _BilinearTaps(NamedTuple):
    """Bilinear corners of the ``S`` samples of a chunk of ``b`` images (``S = b H_out W_out K^2``,
    ordered image, row, column, tap), in the compute dtype.

    ``index (S, 4)`` int32: flat pixel index ``image H W + row W + column`` of the corners (upper
    left, upper right, lower left, lower right; clamped into the map, where the corner's weight is
    zero). ``weight_y (2, S)``: bilinear weights ``(1 - l_y, l_y)`` of the upper and lower row,
    zero for a row outside the map, ``inside_y (2, S)`` that 0/1 validity; ``weight_x``,
    ``inside_x`` the same for the columns; ``mask (S,)`` the modulation. Corner-major ``(2, S)``
    rows keep the element-wise work on long contiguous vectors.
    """

    index: torch.Tensor
    weight_y: torch.Tensor
    weight_x: torch.Tensor
    inside_y: torch.Tensor
    inside_x: torch.Tensor
    mask: torch.Tensor

    def coefficients(self) -> torch.Tensor:
        """``mask x weight_y x weight_x`` of every corner, ``(S, 4)`` in the order of ``index``."""
        return _corner_product(self.mask * self.weight_y, self.weight_x, torch.mul)


def _corner_product(rows: torch.Tensor, cols: torch.Tensor, op) -> torch.Tensor:
    """``op(rows[i], cols[j])`` of the 2 x 2 corners ``(i, j)``: ``(2, S), (2, S) -> (S, 4)`` contiguous,
    corners in :data:`BILINEAR_CORNERS` order (each written in place: no transposing copy)."""
    out = rows.new_empty(rows.shape[1], len(BILINEAR_CORNERS))
    for k, (i, j) in enumerate(BILINEAR_CORNERS):
        op(rows[i], cols[j], out=out[:, k])
    return out


def _bilinear_taps(
    offset: torch.Tensor, mask: torch.Tensor, k: int, stride: int, padding: int, size: tuple[int, int], dtype
) -> _BilinearTaps:
    """:class:`_BilinearTaps` of ``offset (b, 2 K^2, H_out, W_out)``, ``mask (b, K^2, H_out, W_out)``
    on a ``size = (H, W)`` input map."""
    h, w = size
    b, taps, h_out, w_out = mask.shape
    y, x = _sampling_positions(offset, k, stride, padding)  # (b, K^2, H_out, W_out)
    y = y.permute(0, 2, 3, 1).to(dtype).reshape(-1)  # (S,)
    x = x.permute(0, 2, 3, 1).to(dtype).reshape(-1)
    step = torch.arange(2, device=y.device, dtype=dtype)[:, None]  # corner 0: upper / left, 1: lower / right
    y0, x0 = y.floor(), x.floor()
    rows, cols = y0 + step, x0 + step  # (2, S)
    inside_y = ((rows >= 0) & (rows < h)).to(dtype)
    inside_x = ((cols >= 0) & (cols < w)).to(dtype)
    ly, lx = y - y0, x - x0
    weight_y = torch.stack([1 - ly, ly]) * inside_y
    weight_x = torch.stack([1 - lx, lx]) * inside_x
    image = torch.arange(b, device=y.device, dtype=torch.int32).repeat_interleave(h_out * w_out * taps) * (h * w)
    rows = rows.clamp(0, h - 1).to(torch.int32) * w + image
    cols = cols.clamp(0, w - 1).to(torch.int32)
    index = _corner_product(rows, cols, torch.add)  # (S, 4)
    return _BilinearTaps(index, weight_y, weight_x, inside_y, inside_x, mask.permute(0, 2, 3, 1).to(dtype).reshape(-1))


def _sampling_matrix(index: torch.Tensor, values: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """CSR matrix ``(S, n_pixels)`` holding the corners ``index (S, 4)`` of sample ``i`` in row ``i``."""
    samples, corners = index.shape
    crow = torch.arange(0, samples * corners + 1, corners, dtype=torch.int32, device=index.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the operations used here are tested
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, index.reshape(-1), values.reshape(-1), (samples, n_pixels))


def _transposed_sampling_matrix(index: torch.Tensor, values: torch.Tensor, n_pixels: int) -> torch.Tensor:
    """CSR transpose ``(n_pixels, S)`` of :func:`_sampling_matrix` (the corners sorted by pixel)."""
    samples, corners = index.shape
    index = index.reshape(-1)
    keys = index.to(torch.int16) if n_pixels <= torch.iinfo(torch.int16).max else index  # int16: faster sort
    order = torch.sort(keys, stable=True).indices
    crow = torch.zeros(n_pixels + 1, dtype=torch.int32, device=index.device)
    torch.cumsum(torch.bincount(index, minlength=n_pixels), dim=0, out=crow[1:])
    sample = order.to(torch.int32) >> CORNER_BITS  # entry i belongs to sample i // 4 (faster than a division)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, sample, values.reshape(-1).index_select(0, order), (n_pixels, samples))


def _sparse_times(matrix: torch.Tensor, dense: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` for a CSR ``matrix``, written into ``out`` (row-major, contiguous).

    ``matrix @ dense`` would compute into a temporary and copy it; writing into a buffer reused
    across chunks is about 3x faster here.
    """
    return torch.addmm(out, matrix, dense, beta=0.0, out=out)


def _images_per_chunk(taps: int, channels: int, n_out: int) -> int:
    """Images whose sampled columns ``(H_out W_out K^2, C)`` fit :data:`SPARSE_CHUNK_VALUES` (at least 1)."""
    return max(1, SPARSE_CHUNK_VALUES // (taps * channels * n_out))


class _SparseDeformConv(torch.autograd.Function):
    """:func:`deform_conv2d_sparse` with its hand-written backward.

    The forward keeps, per chunk of images, the bilinear corners and the sampling matrix (about
    70 bytes per sample, a quarter of what autograd kept for the ``grid_sample`` formulation);
    the backward recomputes the sampled columns from them instead of keeping those.
    """

    @staticmethod
    def forward(ctx, x, offset, mask, weight, stride: int, padding: int):  # noqa: D102 (see the wrapper)
        b, c, h, w = x.shape
        c_out, k = weight.shape[0], weight.shape[-1]
        taps = k * k
        h_out, w_out = offset.shape[-2:]
        n_out = h_out * w_out
        dtype = torch.promote_types(x.dtype, torch.float32)
        keep = any(ctx.needs_input_grad[:4])
        chunks = []  # (images, bilinear corners, sampling matrix) per chunk, for the backward
        with torch.autocast(x.device.type, enabled=False):
            values = x.permute(0, 2, 3, 1).to(dtype)  # (B, H, W, C): a view for channels-last input
            kernel = weight.permute(0, 2, 3, 1).reshape(c_out, taps * c).to(dtype)  # (C_out, K^2 C) tap-major
            out = torch.empty(b, h_out, w_out, c_out, dtype=dtype, device=x.device)
            chunk = _images_per_chunk(taps, c, n_out)
            buffer = torch.empty(min(chunk, b) * n_out * taps, c, dtype=dtype, device=x.device)
            for i in range(0, b, chunk):
                part = slice(i, i + chunk)
                cb = out[part].shape[0]
                bilinear = _bilinear_taps(offset[part], mask[part], k, stride, padding, (h, w), dtype)
                sampling = _sampling_matrix(bilinear.index, bilinear.coefficients(), cb * h * w)
                columns = buffer[: cb * n_out * taps]  # (samples, C)
                _sparse_times(sampling, values[part].reshape(cb * h * w, c), columns)
                torch.mm(columns.view(cb * n_out, taps * c), kernel.T, out=out[part].view(cb * n_out, c_out))
                if keep:
                    chunks.append((part, bilinear, sampling))
        ctx.save_for_backward(x, weight)
        ctx.chunks, ctx.offset_shape, ctx.dtypes = chunks, offset.shape, (offset.dtype, mask.dtype)
        # (B, C_out, H_out, W_out) contiguous: the GroupNorm and attentions after it run faster on it
        return out.permute(0, 3, 1, 2).contiguous().to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        x, weight = ctx.saved_tensors
        need_x, need_offset, need_mask, need_weight = ctx.needs_input_grad[:4]
        b, c, h, w = x.shape
        c_out, k = weight.shape[0], weight.shape[-1]
        taps = k * k
        h_out, w_out = ctx.offset_shape[-2:]
        n_out = h_out * w_out
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            values = x.permute(0, 2, 3, 1).to(dtype)
            kernel = weight.permute(0, 2, 3, 1).reshape(c_out, taps * c).to(dtype)
            grad_rows = grad_out.permute(0, 2, 3, 1).to(dtype)  # (B, H_out, W_out, C_out)
            grad_values = torch.empty(b, h, w, c, dtype=dtype, device=x.device) if need_x else None
            grad_kernel = torch.zeros_like(kernel) if need_weight else None
            # (samples, (dy, dx)), samples ordered image, row, column, tap: channels-last offset gradients
            grad_position = torch.empty(b * n_out * taps, 2, dtype=dtype, device=x.device)
            grad_modulation = torch.empty(b * n_out * taps, dtype=dtype, device=x.device)
            buffer = None
            for part, bilinear, sampling in ctx.chunks:
                cb = grad_rows[part].shape[0]
                samples = slice(part.start * n_out * taps, (part.start + cb) * n_out * taps)
                pixels = values[part].reshape(cb * h * w, c)
                grad_chunk = grad_rows[part].reshape(cb * n_out, c_out)
                if need_weight:
                    if buffer is None:
                        buffer = torch.empty(sampling.shape[0], c, dtype=dtype, device=x.device)
                    columns = _sparse_times(sampling, pixels, buffer[: sampling.shape[0]])
                    grad_kernel.addmm_(grad_chunk.T, columns.view(cb * n_out, taps * c))
                grad_columns = (grad_chunk @ kernel).view(cb * n_out * taps, c)  # (samples, C)
                if need_x:
                    transposed = _transposed_sampling_matrix(bilinear.index, sampling.values(), cb * h * w)
                    _sparse_times(transposed, grad_columns, grad_values[part].view(cb * h * w, c))
                if need_offset or need_mask:
                    # d loss / d corner weight = <grad of its sample, value at the corner>
                    grad_coef = torch.sparse.sampled_addmm(sampling, grad_columns, pixels.T, beta=0.0)
                    grad_coef = grad_coef.values().view(-1, 4).T.contiguous().view(2, 2, -1)  # (row, column, samples)
                    masked_y = bilinear.mask * bilinear.weight_y
                    grad_masked_y = (grad_coef * bilinear.weight_x[None]).sum(1)  # (2, samples)
                    grad_wx = (grad_coef * masked_y[:, None]).sum(0)
                    grad_modulation[samples] = (grad_masked_y * bilinear.weight_y).sum(0)
                    grad_wy = grad_masked_y * bilinear.mask
                    # weights (1 - l, l) x inside, and l = position - floor(position)
                    torch.sub(grad_wy[1] * bilinear.inside_y[1], grad_wy[0] * bilinear.inside_y[0],
                              out=grad_position[samples, 0])
                    torch.sub(grad_wx[1] * bilinear.inside_x[1], grad_wx[0] * bilinear.inside_x[0],
                              out=grad_position[samples, 1])
        offset_dtype, mask_dtype = ctx.dtypes
        grad_x = grad_values.permute(0, 3, 1, 2).to(x.dtype) if need_x else None
        grad_offset = None
        if need_offset:  # (B, H_out, W_out, K^2 x (dy, dx)) -> (B, 2 K^2, H_out, W_out), channels-last strides
            grad_offset = grad_position.view(b, h_out, w_out, 2 * taps).permute(0, 3, 1, 2).to(offset_dtype)
        grad_mask = None
        if need_mask:
            grad_mask = grad_modulation.view(b, h_out, w_out, taps).permute(0, 3, 1, 2).to(mask_dtype)
        grad_weight = None
        if need_weight:
            grad_weight = grad_kernel.view(c_out, k, k, c).permute(0, 3, 1, 2).to(weight.dtype)
        return grad_x, grad_offset, grad_mask, grad_weight, None, None


def deform_conv2d_sparse(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    stride: int = 1,
    padding: int = 1,
) -> torch.Tensor:
    """Modulated deformable convolution as a sparse sampling matrix, same maths as torchvision's kernel.

    The bilinear sampling of every kernel tap at every output pixel is one row of a sparse matrix
    ``S`` (4 corners, weights ``mask x bilinear``, zeros outside the map as torchvision): the
    columns are ``S @ X`` (``X`` the input ``(H W, C)``, channels last) and the output their product
    with the kernel. The backward is written out: ``S^T @ grad_columns`` for the input, one sampled
    product (:func:`torch.sparse.sampled_addmm`) for the corner weights and from them the offsets
    and the mask. Images are processed a few at a time (:data:`SPARSE_CHUNK_VALUES`), so the
    ``(H_out W_out K^2, C)`` columns stay in the CPU caches instead of a batch-sized tensor going
    through memory several times; the backward recomputes them from the kept sampling matrix. On CPU this
    is the fastest of the implementations here (``bench/bench_deform.py``); on CUDA the torchvision
    kernel is used. Float32 (float64 inputs: float64); dilation 1, no groups, no bias.

    Shapes: ``x (B, C_in, H, W)``, ``offset (B, 2 K^2, H_out, W_out)`` (``(dy, dx)`` per tap),
    ``mask (B, K^2, H_out, W_out)``, ``weight (C_out, C_in, K, K)`` -> ``(B, C_out, H_out, W_out)``.
    """
    return _SparseDeformConv.apply(x, offset, mask, weight, stride, padding)


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

    Shapes as :func:`deform_conv2d_sparse`; returns the compute dtype.
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

    ``backend``: ``"torchvision"`` (:func:`torchvision.ops.deform_conv2d`, float32), ``"sparse"``
    (:func:`deform_conv2d_sparse`, float32), ``"gathered"`` (:func:`deform_conv2d_gathered`, the
    autocast dtype) or ``"auto"``: gathered under autocast, else torchvision on CUDA and sparse
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
        return "torchvision" if x.is_cuda else "sparse"

    def forward(self, x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        backend = self.resolved_backend(x)
        if backend == "torchvision":
            return deform_conv2d(
                x, offset, self.weight, stride=self.stride, padding=DEFORM_KERNEL // 2, mask=mask
            )
        if backend == "gathered":
            return deform_conv2d_gathered(x, offset, mask, self.weight, self.stride, DEFORM_KERNEL // 2)
        return deform_conv2d_sparse(x, offset, mask, self.weight, self.stride, DEFORM_KERNEL // 2)


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
        first, second = a1 * x + b1, a2 * x + b2
        # the maximum, by a selection: its backward is one mask where torch.maximum's splits ties in
        # halves (several passes over the map; exact ties are as rare as x at the crossing point)
        return torch.where(first >= second, first, second)


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last ``(B, C, H, W)`` map (and not also contiguous), else contiguous."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


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
            # in the memory format of the block's input (channels-last for a channels-last model): the
            # next block's offset convolution and the head's convolutions run faster in it
            outputs.append(self.task_attention(fused).contiguous(memory_format=_memory_format(x)))
        return outputs


class DyHead(nn.Sequential):
    """``num_blocks`` :class:`DyHeadBlock` in sequence (``num_blocks = 0`` is the identity)."""

    def __init__(self, channels: int, num_blocks: int) -> None:
        super().__init__(*(DyHeadBlock(channels) for _ in range(num_blocks)))
