"""Tiny models that follow the Models protocol, so the engine's tests need no real network.

The engine builds them by the name ``test_engine_models:build_tiny_detector`` (``module:builder``),
with ``tests/`` on ``sys.path`` (pytest puts it there; subprocesses get it via ``PYTHONPATH``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_model.recipe import Recipe, recipes_table

TINY_DETECTOR = "test_engine_models:build_tiny_detector"
TINY_SEGMENTER = "test_engine_models:build_tiny_segmenter"

#: Positive pixels are rare; weight them up in the BCE.
POS_WEIGHT = 20.0


class _Trunk(nn.Module):
    def __init__(self, width: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        # Dropout draws from torch's global generator: resume must restore its state.
        self.drop = nn.Dropout(dropout)
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, out_channels, 1)

    def forward(self, x):
        x = F.relu(self.bn(self.conv1(x)))
        return self.out(self.drop(F.relu(self.conv2(x))))


class TinyDetector(nn.Module):
    """Per-pixel target logit + log box size; a box is a 3x3 local maximum of the score.

    ``forward(images (B, 3, H, W))`` -> ``(B, 3, H, W)``: channel 0 the logit, 1-2 ``log(w), log(h)``.
    A buffer ``epochs_seen`` counts ``on_epoch_end`` calls (stands in for EFLNet's ATFL state).
    """

    task = "detect"

    def __init__(self, width: int = 8, config: dict | None = None, size_gain: float = 1.0):
        super().__init__()
        self.config = dict(config or {"width": width, "size_gain": size_gain})
        self.size_gain = float(size_gain)
        self.trunk = _Trunk(width, 3, dropout=0.1)
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def forward(self, images):
        if images.shape[-1] % 32 or images.shape[-2] % 32:
            raise ValueError("H, W must be multiples of 32")
        return self.trunk(images)

    def compute_loss(self, outputs, targets):
        masks = torch.stack([t["masks"] for t in targets]).to(outputs.dtype)  # (B, H, W)
        heat = F.binary_cross_entropy_with_logits(
            outputs[:, 0], masks, pos_weight=outputs.new_tensor(POS_WEIGHT)
        )
        size_target = torch.zeros_like(outputs[:, 1:3])
        inside = torch.zeros_like(masks, dtype=torch.bool)
        for b, t in enumerate(targets):
            for x0, y0, x1, y1 in t["boxes"].long().tolist():
                size_target[b, 0, y0:y1, x0:x1] = torch.log(torch.tensor(float(x1 - x0)))
                size_target[b, 1, y0:y1, x0:x1] = torch.log(torch.tensor(float(y1 - y0)))
                inside[b, y0:y1, x0:x1] = True
        diff = (outputs[:, 1:3] - size_target).abs().sum(1)  # (B, H, W)
        size = (diff * inside).sum() / inside.sum().clamp_min(1)
        return {"heat": heat, "size": self.size_gain * size}

    @torch.no_grad()
    def postprocess(self, outputs, *, conf_threshold=0.001, iou_threshold=0.5, max_det=100):
        scores = outputs[:, 0].float().sigmoid()  # (B, H, W)
        peaks = scores == F.max_pool2d(scores[:, None], 3, 1, 1)[:, 0]
        results = []
        for b in range(scores.shape[0]):
            keep = peaks[b] & (scores[b] > conf_threshold)
            ys, xs = torch.nonzero(keep, as_tuple=True)
            s = scores[b, ys, xs]
            order = s.argsort(descending=True)[:max_det]
            ys, xs, s = ys[order], xs[order], s[order]
            w = outputs[b, 1, ys, xs].float().clamp(-2, 5).exp()
            h = outputs[b, 2, ys, xs].float().clamp(-2, 5).exp()
            cx, cy = xs.float() + 0.5, ys.float() + 0.5
            boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
            results.append({"boxes": boxes, "scores": s})
        return results

    def on_epoch_end(self):
        self.epochs_seen += 1


class TinySegmenter(nn.Module):
    """Per-pixel logit; ``postprocess`` gives ``sigmoid`` score maps."""

    task = "segment"

    def __init__(self, width: int = 8, config: dict | None = None):
        super().__init__()
        self.config = dict(config or {"width": width})
        self.trunk = _Trunk(width, 1)

    def forward(self, images):
        return self.trunk(images)

    def compute_loss(self, outputs, targets):
        masks = torch.stack([t["masks"] for t in targets]).to(outputs.dtype)[:, None]
        bce = F.binary_cross_entropy_with_logits(outputs, masks, pos_weight=outputs.new_tensor(POS_WEIGHT))
        return {"bce": bce}

    @torch.no_grad()
    def postprocess(self, outputs, *, conf_threshold=0.001, iou_threshold=0.5, max_det=100):
        return [{"score_map": p[0]} for p in outputs.float().sigmoid()]


def build_tiny_detector(*, width: int = 8, size_gain: float = 1.0) -> TinyDetector:
    return TinyDetector(width, {"width": width, "size_gain": size_gain}, size_gain=size_gain)


#: Stand-in recipes of the tiny detector (tests/test_engine_recipes.py): every recipe mechanism.
RECIPES = recipes_table(
    Recipe(
        "stand-in",
        "every engine setting a recipe can carry, with values unlike the defaults",
        model_options={"size_gain": 3.0},
        train={
            "epochs": 1,
            "optimizer": "adagrad",
            "lr": 0.02,
            "weight_decay": 2e-4,
            "schedule": "poly",
            "lr_final_ratio": 0.1,
            "poly_power": 2.0,
            "warmup_epochs": 0.5,
            "warmup_iters": 2,
            "nominal_batch": 4,
            "mosaic": 1.0,
            "mixup": 0.5,
            "scale": 0.2,
            "translate": 0.05,
            "hsv_v": 0.3,
            "fliplr": 0.0,
            "flipud": 1.0,
            "base_size": 96,
            "fitness": "ap",
        },
        notes=("a test recipe",),
    ),
    Recipe("typo", "names a setting that does not exist", train={"epochz": 3}),
)


def build_tiny_segmenter(*, width: int = 8) -> TinySegmenter:
    return TinySegmenter(width, {"width": width})


def test_tiny_detector_follows_the_protocol():
    torch.manual_seed(0)
    model = build_tiny_detector(width=4)
    images = torch.rand(2, 3, 32, 64)
    out = model(images)
    masks = torch.zeros(2, 32, 64)
    masks[0, 3, 5] = 1
    targets = [
        {"boxes": torch.tensor([[5.0, 3.0, 6.0, 4.0]]), "masks": masks[0]},
        {"boxes": torch.zeros(0, 4), "masks": masks[1]},
    ]
    terms = model.compute_loss(out, targets)
    assert set(terms) == {"heat", "size"} and all(t.ndim == 0 and torch.isfinite(t) for t in terms.values())
    sum(terms.values()).backward()
    assert model.trunk.conv1.weight.grad is not None
    result = model.postprocess(out.detach(), conf_threshold=0.0, max_det=7)
    assert len(result) == 2 and result[0]["boxes"].shape == (7, 4) and result[0]["scores"].shape == (7,)
    assert bool((result[0]["boxes"][:, 2] > result[0]["boxes"][:, 0]).all())


def test_tiny_segmenter_follows_the_protocol():
    model = build_tiny_segmenter(width=4)
    out = model(torch.rand(1, 3, 32, 32))
    terms = model.compute_loss(out, [{"boxes": torch.zeros(0, 4), "masks": torch.zeros(32, 32)}])
    assert list(terms) == ["bce"]
    maps = model.postprocess(out)
    assert maps[0]["score_map"].shape == (32, 32)
    assert float(maps[0]["score_map"].min()) >= 0 and float(maps[0]["score_map"].max()) <= 1


# --------------------------------------------------------------------------------------------
# Tiny data sets shared by the engine tests


def make_nuaa_like(root, sizes, seed: int = 0, targets_per_image: int = 2):
    """A NUAA-SIRST-layout tree with images of the given ``(H, W)`` sizes (non-square allowed).

    Each image has ``targets_per_image`` bright square targets of 1-3 px, at least 4 px apart
    and 2 px from the border; split files ``idx_427/{trainval,test}`` (no ``val``: the training
    engine falls back to ``test``) and ``split_EFLNet/{train,val,test}``.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    stems = []
    for i, (h, w) in enumerate(sizes):
        stem = f"Misc_{i + 1}"
        image = (rng.random((h, w)) * 60).astype(np.uint8)
        mask = np.zeros((h, w), np.uint8)
        placed = 0
        while placed < targets_per_image:
            side = int(rng.integers(1, 4))
            y, x = int(rng.integers(2, h - 2 - side)), int(rng.integers(2, w - 2 - side))
            if mask[max(0, y - 4) : y + side + 4, max(0, x - 4) : x + side + 4].any():
                continue
            mask[y : y + side, x : x + side] = 255
            image[y : y + side, x : x + side] = 250
            placed += 1
        Image.fromarray(image).save(root / "images" / f"{stem}.png")
        Image.fromarray(mask).save(root / "masks" / f"{stem}_pixels0.png")
        stems.append(stem)
    half = len(stems) // 2
    for family, parts in {
        "idx_427": {"trainval": stems[:half], "test": stems[half:]},
        "split_EFLNet": {"train": stems[:half], "val": stems[half:], "test": stems[half:]},
    }.items():
        (root / family).mkdir()
        for part, members in parts.items():
            (root / family / f"{part}.txt").write_text("".join(f"{s}\n" for s in members))
    return root
