"""How far a folder's images are from gray: the channel spread the engine's one-channel input drops.

The engine reads every image as one channel (its luminance) and replicates it, so a hue or
saturation jitter is the identity on its input. A code base that feeds the file's three channels
(the EFLNet authors' YOLOv7 reads BGR with OpenCV) sees a colour tint where the file has one, and
its HSV saturation gain ``g`` scales each pixel's channel spread ``max(R, G, B) - min(R, G, B)``
by ``g`` (its value channel, ``max(R, G, B)``, only by the value gain). This prints, over the
folder's images: how many have any spread, the spread's largest value per image (median, 90th
percentile, largest), the share of all pixels with a spread of at least 3 grey levels, and the
largest change a saturation gain of ``1 + --hsv-s`` can make to one channel (``--hsv-s x spread``).

Reads only; palette and RGBA files are converted to RGB first (as OpenCV's ``imread`` would load them).

Example::

    .venv/bin/python scripts/colour_tint.py ../shared/datasets/NUAA-SIRST/images --hsv-s 0.7
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def channel_spread(path: Path) -> np.ndarray:
    """``(H, W)`` int: per pixel, the largest minus the smallest of R, G, B (0 for a gray file)."""
    with Image.open(path) as image:
        if image.mode in ("L", "I", "I;16", "F"):
            return np.zeros(image.size[::-1], np.int64)
        rgb = np.asarray(image.convert("RGB"), np.int64)
    return rgb.max(axis=2) - rgb.min(axis=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--hsv-s", type=float, default=0.7, help="saturation gain amplitude (YOLOv7: 0.7)")
    args = parser.parse_args()
    paths = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise SystemExit(f"{args.folder}: no images")
    largest, strong, pixels = [], 0, 0
    for path in paths:
        spread = channel_spread(path)
        largest.append(int(spread.max()))
        strong += int((spread >= 3).sum())
        pixels += spread.size
    largest = np.array(largest)
    tinted = largest[largest > 0]
    print(f"{len(paths)} images, {len(tinted)} with a channel spread > 0")
    if len(tinted):
        print(f"largest spread per tinted image: median {np.median(tinted):.0f}, "
              f"90th percentile {np.percentile(tinted, 90):.0f}, largest {tinted.max()} grey levels")
    print(f"pixels with a spread >= 3 grey levels: {100 * strong / pixels:.2f} % of all pixels")
    print(f"largest change of one channel by a saturation gain of 1 + {args.hsv_s}: "
          f"{args.hsv_s * largest.max():.0f} grey levels")


if __name__ == "__main__":
    main()
