"""Inference-time folding of BatchNorm into the convolution before it.

In eval mode ``BatchNorm2d(Conv2d(x))`` is an affine map per output channel, so it can be folded
into the convolution's weight and bias (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): the same
outputs (up to float rounding) with one layer and one pass over the feature map less. YOLO-family
code does the same before deployment. Only for inference: the folded model has no BatchNorm
statistics left to train or save.
"""

from __future__ import annotations

import copy

import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every ``Conv2d`` directly followed by a
    ``BatchNorm2d`` inside an ``nn.Sequential`` folded into one ``Conv2d``.

    Returns
    -------
    nn.Module
        The folded copy; ``model`` itself is left untouched. Its ``fused_batchnorms`` attribute
        says how many BatchNorm layers were folded.

    Examples
    --------
    >>> import torch
    >>> block = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.SiLU()).eval()
    >>> fused = fuse_batchnorm(block)
    >>> fused.fused_batchnorms, isinstance(fused[1], nn.Identity)
    (1, True)
    """
    fused = copy.deepcopy(model).eval()
    count = 0
    for module in fused.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, norm = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d) and norm.track_running_stats:
                module._modules[first] = fuse_conv_bn_eval(conv, norm)
                module._modules[second] = nn.Identity()
                count += 1
    fused.fused_batchnorms = count
    return fused
