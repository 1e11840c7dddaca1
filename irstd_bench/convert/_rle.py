"""Target pixels as COCO run-length encoding (RLE), with pycocotools' own encoder.

COCO RLE runs over the image in column-major order (down the first column, then the
next), alternating background and foreground counts, starting with background;
``pycocotools.mask.encode`` compresses the counts into an ASCII string. ``decode`` of the
result gives back exactly the target's pixels, ``area`` its pixel count.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from irstd_bench.targets import Targets


def target_rles(targets: Targets) -> list[dict]:
    """One compressed RLE per target, in target order.

    Parameters
    ----------
    targets : Targets
        Targets of a mask (``pixels`` and ``pixel_labels`` set), image size ``(H, W)``.

    Returns
    -------
    list of dict
        ``{"size": [H, W], "counts": str}`` per target (the form COCO JSON stores and
        ``pycocotools.mask.decode`` reads); ``[]`` for no targets.
    """
    n = len(targets)
    if n == 0:
        return []
    if targets.pixels is None:
        raise ValueError("target_rles needs targets with pixels (from a mask), not boxes")
    h, w = targets.image_size
    masks = np.zeros((h, w, n), np.uint8, order="F")  # (H, W, N), Fortran order as encode wants
    rows, cols = np.divmod(targets.pixels, w)
    masks[rows, cols, targets.pixel_labels.astype(np.int64) - 1] = 1
    encoded = mask_utils.encode(masks)
    return [{"size": [int(h), int(w)], "counts": rle["counts"].decode("ascii")} for rle in encoded]
