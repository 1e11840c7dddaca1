"""The three networks of MDvsFA: two context-aggregation generators and the 3-class discriminator.

Read from the authors' TensorFlow code (``wanghuanphd/MDvsFA_cGAN``, ``demo_MDvsFA_tensorflow.py``:
``Generator1_CAN8``, ``Generator2_UCAN64``, ``discriminator``, ``nm``, ``identity_initializer``);
nothing is copied. Shapes are given for one-channel inputs of ``H x W`` pixels; every generator
layer keeps full resolution (dilated 3x3 convolutions, padding = dilation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Slope of the leaky ReLU of every hidden layer (``lrelu``: ``max(0.2 x, x)``).
LEAKY_SLOPE = 0.2
#: Batch-norm epsilon of TensorFlow's ``slim.batch_norm`` (0.001). With its moving-average decay
#: 0.999 the inference statistics lag the weights for thousands of steps; the running averages
#: here use PyTorch's momentum 0.1, as the authors' PyTorch port does.
TF_BN_EPS = 1e-3
BN_MOMENTUM = 0.1
#: Std of the noise added to the identity initialisation of the generators' 3x3 kernels.
IDENTITY_INIT_STD = 0.0025
#: G1 (CAN8): dilation and width multiple of each 3x3 layer (widths ``width x multiple``).
G1_DILATIONS = (1, 1, 2, 4, 8, 4, 2, 1)
G1_WIDTH_MULTIPLES = (1, 1, 2, 4, 8, 4, 2, 1)
#: G2 (UCAN64): dilations of the 13 3x3 layers; the last 5 also see an earlier layer's output.
G2_DILATIONS = (1, 2, 4, 8, 16, 32, 64, 32, 16, 8, 4, 2, 1)
#: For G2 layers 9..13 (1-based), the earlier layer whose output is concatenated to the input.
G2_SKIPS = {9: 6, 10: 5, 11: 4, 12: 3, 13: 2}
#: The discriminator max-pools its ``(image, segmentation)`` input to this side before its convs
#: (the authors' two 2x2 max-pools of a 128-px patch).
DISC_GRID = 32
#: Widths of the discriminator's two hidden fully connected layers, and its number of classes.
DISC_FC = (128, 64)
DISC_CLASSES = 3


class CenteredBatchNorm(nn.Module):
    """``slim.batch_norm`` with its defaults: normalise, then add a learned shift (no scale).

    ``(B, C, H, W) -> (B, C, H, W)``; ``C`` parameters.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, eps=TF_BN_EPS, momentum=BN_MOMENTUM, affine=False)
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + self.shift.view(1, -1, 1, 1).to(x.dtype)


class AdaptiveNorm(nn.Module):
    """The generators' normaliser ``w0 x + w1 BN(x)`` (``nm`` in the code; Chen et al., CAN, 2017).

    ``w0`` starts at 1 and ``w1`` at 0, so an untrained layer passes its input unnormalised.
    ``C + 2`` parameters.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bn = CenteredBatchNorm(channels)
        self.w0 = nn.Parameter(torch.tensor(1.0))
        self.w1 = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w0 * x + self.w1 * self.bn(x)


@torch.no_grad()
def identity_init_(weight: torch.Tensor, std: float = IDENTITY_INIT_STD) -> torch.Tensor:
    """Initialise a 3x3 kernel ``(C_out, C_in, k, k)`` near an identity map, as the authors do.

    Small Gaussian noise everywhere, then the centre tap links channels: ``C_in == C_out``: each
    channel to itself (1); ``C_in > C_out``: output ``j`` reads input ``floor(j C_in / C_out)`` with
    weight ``C_in / C_out``; ``C_in < C_out``: input ``i`` feeds output ``floor(i C_out / C_in)``
    with weight 1.
    """
    c_out, c_in, kh, kw = weight.shape
    weight.normal_(0.0, std)
    cy, cx = kh // 2, kw // 2
    if c_in == c_out:
        for i in range(c_in):
            weight[i, i, cy, cx] = 1.0
    elif c_in > c_out:
        for j in range(c_out):
            weight[j, int(j * c_in / c_out), cy, cx] = c_in / c_out
    else:
        for i in range(c_in):
            weight[int(i * c_out / c_in), i, cy, cx] = 1.0
    return weight


class DilatedLayer(nn.Sequential):
    """``3x3 conv (dilation d, padding d, no bias) -> AdaptiveNorm -> LeakyReLU(0.2)``, identity-initialised.

    ``(B, c_in, H, W) -> (B, c_out, H, W)``.
    """

    def __init__(self, c_in: int, c_out: int, dilation: int):
        conv = nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False)
        identity_init_(conv.weight)
        super().__init__(conv, AdaptiveNorm(c_out), nn.LeakyReLU(LEAKY_SLOPE))


def _output_conv(c_in: int) -> nn.Conv2d:
    """The last 1x1 conv ``c_in -> 1`` with bias; Glorot-uniform weights, zero bias (slim's default)."""
    conv = nn.Conv2d(c_in, 1, 1)
    nn.init.xavier_uniform_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class MissDetectionGenerator(nn.Module):
    """G1 (``Generator1_CAN8``): 8 dilated layers (dilations 1, 1, 2, 4, 8, 4, 2, 1), widths up to 8x.

    ``(B, 1, H, W)`` in [-1, 1] -> ``(B, 1, H, W)`` raw map (the prediction is its clip to [0, 1]).
    Trained with the miss-detection term weighted up. Receptive field 47 px.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        widths = [width * m for m in G1_WIDTH_MULTIPLES]
        layers, c_in = [], 1
        for c_out, dilation in zip(widths, G1_DILATIONS, strict=True):
            layers.append(DilatedLayer(c_in, c_out, dilation))
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.head = _output_conv(c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class FalseAlarmGenerator(nn.Module):
    """G2 (``Generator2_UCAN64`` with skips): 13 dilated layers of one width, dilations 1..64..1.

    Layers 9-13 take the previous output concatenated with layer 6, 5, 4, 3, 2's (a U-shaped
    context aggregation). ``(B, 1, H, W)`` in [-1, 1] -> ``(B, 1, H, W)`` raw map. Trained with
    the false-alarm term weighted up. Receptive field 381 px.
    """

    def __init__(self, width: int = 64):
        super().__init__()
        layers = []
        for index, dilation in enumerate(G2_DILATIONS, start=1):
            c_in = 1 if index == 1 else (2 * width if index in G2_SKIPS else width)
            layers.append(DilatedLayer(c_in, width, dilation))
        self.layers = nn.ModuleList(layers)
        self.head = _output_conv(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for index, layer in enumerate(self.layers, start=1):
            if index in G2_SKIPS:
                x = torch.cat([outs[G2_SKIPS[index] - 1], x], dim=1)
            x = layer(x)
            outs.append(x)
        return self.head(x)


def _disc_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), CenteredBatchNorm(c_out), nn.LeakyReLU(LEAKY_SLOPE)
    )


class Discriminator(nn.Module):
    """Classifies an ``(image, segmentation)`` pair as ground truth, G1's or G2's (3 classes).

    Input ``(N, 2, H, W)``: the image in [-1, 1] and a segmentation mapped to [-1, 1]. Max-pooled
    to ``32 x 32`` (for the authors' 128-px patches: their two 2x2 max-pools), four 3x3
    conv-BN-leaky layers (``width`` channels, then 1), flattened (1024), then FC 128 -> BN -> tanh,
    FC 64 -> BN -> tanh, FC 3.

    Returns
    -------
    logits : Tensor (N, 3)
        Class scores: 0 ground truth, 1 G1, 2 G2.
    features : Tensor (N, 1, 32, 32)
        The last conv layer's map (the generator-consistency loss compares G1's and G2's).
    """

    def __init__(self, width: int = 24):
        super().__init__()
        self.convs = nn.Sequential(_disc_conv(2, width), _disc_conv(width, width), _disc_conv(width, width))
        self.feature = _disc_conv(width, 1)
        dims = (DISC_GRID * DISC_GRID, *DISC_FC)
        hidden: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            hidden += [nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out, eps=TF_BN_EPS, momentum=BN_MOMENTUM), nn.Tanh()]
        self.classifier = nn.Sequential(*hidden, nn.Linear(dims[-1], DISC_CLASSES))

    def forward(self, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.adaptive_max_pool2d(pairs, DISC_GRID)  # (N, 2, 32, 32)
        features = self.feature(self.convs(x))  # (N, 1, 32, 32)
        return self.classifier(features.flatten(1)), features


def count_params(modules: Sequence[nn.Module]) -> int:
    """Number of parameters of the given modules together."""
    return sum(p.numel() for m in modules for p in m.parameters())
