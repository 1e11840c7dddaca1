"""BatchNorm folding for inference: same outputs, fewer layers, original model untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from reference_model.engine.fuse import fuse_batchnorm
from reference_model.registry import build_model


def _randomise_batchnorms(model: nn.Module) -> int:
    generator = torch.Generator().manual_seed(0)
    count = 0
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.rand(n, generator=generator) * 2 - 1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(n, generator=generator) - 0.5)
            count += 1
    return count


@pytest.mark.train
@pytest.mark.parametrize(("name", "overrides"), [("eflnet-n", {"dyhead_blocks": 1}), ("dnanet", {})])
def test_folded_model_gives_the_same_outputs(name, overrides):
    torch.manual_seed(0)
    model = build_model(name, **overrides).eval()
    batchnorms = _randomise_batchnorms(model)
    fused = fuse_batchnorm(model)
    assert fused.fused_batchnorms == batchnorms > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == batchnorms  # original kept
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        ours, ref = fused(x), model(x)
    ours, ref = (ours, ref) if isinstance(ref, list) else ([ours], [ref])
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_conv_without_following_batchnorm_is_left_alone():
    block = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2)).eval()
    fused = fuse_batchnorm(block)
    assert fused.fused_batchnorms == 0 and isinstance(fused[2], nn.BatchNorm2d)
