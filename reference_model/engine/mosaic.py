"""Mosaics: where each tile of a 4- or 9-image mosaic lies, and the batched placement of the tiles.

A mosaic is built on a ``2 Sb x 2 Sb`` canvas from ``K`` training images (``K = 4`` or ``9``;
the drawn image is tile 0), each held as a letterboxed ``Sb x Sb`` square whose *content*
rectangle (the resized image, without the letterbox's padding) is known. Two styles:

- ``grid`` (the engine's default): every tile is its whole square (padding included), laid on
  a fixed grid. Four tiles fill the canvas (the drawn image top-left); nine make a ``3 x 3``
  grid whose centre ``2 Sb`` window is kept (the drawn image in the middle).
- ``yolov7`` (YOLOv7's ``load_mosaic`` / ``load_mosaic9``): only each tile's content is placed
  (no letterbox padding inside the mosaic). Four tiles meet at a random centre
  ``(xc, yc)``, each integer in ``[Sb / 2, 3 Sb / 2)``: tile 0's content ends at the centre
  (top-left), tile 1 starts there rightwards (top-right), tile 2 downwards (bottom-left), tile 3
  in both (bottom-right). Nine tiles lie clockwise around tile 0 on a ``3 Sb`` canvas (tile 0 at
  ``(Sb, Sb)``; then top, top-right, right, bottom-right, bottom, bottom-left, left, top-left, each
  placed against the one before and against tile 0's edges, as YOLOv7's ``load_mosaic9`` places
  them), and a ``2 Sb`` window at a random integer offset in ``[0, Sb)`` per axis is kept.

Canvas pixels that no tile covers hold the fill value (``pad_value``; masks 0). Tiles never
overlap in either style: each lies in its own quadrant (4) or ring position (9). Boxes move
with their tile and are clipped to the canvas (a box cut by the canvas edge is judged by the
part inside, as YOLOv7 clips its labels to the mosaic).

Everything is integer pixel shifts: :func:`place_tiles` copies each tile's content rectangle onto a
canvas of the fill value as one slice copy (images and masks together, on the tensors' device; a
loop over the batch's tiles, at most 9 per mosaic, each a rectangle copy: on the CPU about 10x cheaper
than the per-pixel source index and ``gather`` it replaced, which built and selected among
``canvas x canvas`` index maps per tile); the ``grid`` 2 x 2 of whole squares, the engine's default
mosaic, is one reshape.
"""

from __future__ import annotations

import numpy as np
import torch

#: Mosaic layouts (see the module docstring).
MOSAIC_STYLES = ("grid", "yolov7")


def tile_sizes(content: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widths and heights (px) of content rectangles ``(..., 4)`` ``[x0, y0, x1, y1]``."""
    return content[..., 2] - content[..., 0], content[..., 3] - content[..., 1]


def mosaic_centre(u: np.ndarray, side: int, style: str) -> np.ndarray:
    """Integer centres ``(M, 2)`` of 4-image mosaics from uniform draws ``u`` ``(M, 2)`` in [0, 1).

    ``grid``: the canvas centre ``(Sb, Sb)``; ``yolov7``: ``floor(U(Sb // 2, 2 Sb - Sb // 2))`` per axis.
    """
    u = np.asarray(u, np.float64)
    if style == "grid":
        return np.full(u.shape, side, np.int64)
    lo, hi = side // 2, 2 * side - side // 2
    return np.floor(lo + u * (hi - lo)).astype(np.int64)


def nine_offset(u: np.ndarray, side: int, style: str) -> np.ndarray:
    """Integer offsets ``(M, 2)`` of the ``2 Sb`` window kept from a 9-image mosaic's ``3 Sb`` canvas.

    ``grid``: centred, ``Sb // 2``; ``yolov7``: ``floor(U(0, Sb))`` per axis.
    """
    u = np.asarray(u, np.float64)
    if style == "grid":
        return np.full(u.shape, side // 2, np.int64)
    return np.floor(u * side).astype(np.int64)


def four_tile_origins(content: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Canvas positions ``(M, 4, 2)`` of the tiles' squares (their top-left corners), 4-image mosaic.

    Parameters
    ----------
    content : ndarray (M, 4, 4) int
        Each tile's content rectangle in its own square, px.
    centre : ndarray (M, 2) int
        Where the four contents meet, canvas px.
    """
    w, h = tile_sizes(content)
    xc, yc = centre[:, 0:1], centre[:, 1:2]
    left = np.concatenate([xc - w[:, 0:1], xc, xc - w[:, 2:3], xc], axis=1)  # content x0 of tiles 0..3
    top = np.concatenate([yc - h[:, 0:1], yc - h[:, 1:2], yc, yc], axis=1)
    return np.stack([left, top], axis=-1) - content[..., :2]


def nine_tile_origins(content: np.ndarray, offset: np.ndarray, side: int) -> np.ndarray:
    """Canvas positions ``(M, 9, 2)`` of the tiles' squares, 9-image mosaic cut at ``offset`` ``(M, 2)``.

    Tile ``k``'s content on the ``3 Sb`` canvas (``w_k``, ``h_k`` its size, ``s = Sb``): 0 at
    ``(s, s)``; 1 above it at ``(s, s - h1)``; 2 right of 1 at ``(s + w1, s - h2)``; 3 right of 0 at
    ``(s + w0, s)``; 4 below 3 at ``(s + w0, s + h3)``; 5 below 0, right-aligned, at
    ``(s + w0 - w5, s + h0)``; 6 left of 5 at ``(s + w0 - w5 - w6, s + h0)``; 7 left of 0,
    bottom-aligned, at ``(s - w7, s + h0 - h7)``; 8 above 7 at ``(s - w8, s + h0 - h7 - h8)``.
    """
    w, h = tile_sizes(content)
    s = side
    x = np.stack(
        [
            np.full_like(w[:, 0], s), np.full_like(w[:, 0], s), s + w[:, 1], s + w[:, 0], s + w[:, 0],
            s + w[:, 0] - w[:, 5], s + w[:, 0] - w[:, 5] - w[:, 6], s - w[:, 7], s - w[:, 8],
        ],
        axis=1,
    )  # fmt: skip
    y = np.stack(
        [
            np.full_like(h[:, 0], s), s - h[:, 1], s - h[:, 2], np.full_like(h[:, 0], s), s + h[:, 3],
            s + h[:, 0], s + h[:, 0], s + h[:, 0] - h[:, 7], s + h[:, 0] - h[:, 7] - h[:, 8],
        ],
        axis=1,
    )  # fmt: skip
    return np.stack([x, y], axis=-1) - content[..., :2] - offset[:, None, :]


def place_tiles(
    tiles: torch.Tensor, origins: np.ndarray, content: np.ndarray, canvas: int, fill: tuple[float, ...]
) -> torch.Tensor:
    """Copy each tile's content rectangle onto a ``canvas x canvas`` square at its origin.

    Parameters
    ----------
    tiles : Tensor (M, K, C, Sb, Sb)
    origins : ndarray (M, K, 2) int
        Canvas position of each tile square's top-left corner (may be negative).
    content : ndarray (M, K, 4) int
        The part of each square that is copied, ``[x0, y0, x1, y1]`` tile px.
    fill : tuple of float
        Value, per channel, of the canvas pixels no tile covers.

    Returns
    -------
    Tensor (M, C, canvas, canvas)
    """
    m, k, c, side, _ = tiles.shape
    fill_t = torch.tensor(fill, dtype=tiles.dtype, device=tiles.device).view(1, c, 1, 1)
    out = fill_t.expand(m, c, canvas, canvas).clone()
    origins = np.asarray(origins, np.int64)
    content = np.asarray(content, np.int64)
    # Canvas rectangle of each tile's content, clipped to the canvas: [x0, y0, x1, y1] canvas px.
    lo = np.clip(origins + content[..., :2], 0, canvas)
    hi = np.clip(origins + content[..., 2:], 0, canvas)
    for i in range(m):
        for j in range(k):  # tiles never overlap; were they to, the later tile would win
            (x0, y0), (x1, y1) = lo[i, j], hi[i, j]
            if x1 <= x0 or y1 <= y0:
                continue
            ox, oy = origins[i, j]
            out[i, :, y0:y1, x0:x1] = tiles[i, j, :, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out


#: Tile positions (in tile sides) of the ``grid`` 4-image mosaic: top-left, top-right, bottom-left, bottom-right.
GRID_FOUR = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.int64)


def _grid_four(tiles: torch.Tensor) -> torch.Tensor:
    """``(M, 4, C, Sb, Sb)`` whole tiles on the 2 x 2 grid -> ``(M, C, 2 Sb, 2 Sb)``: what
    :func:`place_tiles` computes for that layout, as one reshape."""
    m, _, c, side, _ = tiles.shape
    return tiles.reshape(m, 2, 2, c, side, side).permute(0, 3, 1, 4, 2, 5).reshape(m, c, 2 * side, 2 * side)


def mosaic_canvas(
    images: torch.Tensor,
    masks: torch.Tensor,
    boxes: torch.Tensor,
    valid: torch.Tensor,
    *,
    origins: np.ndarray | None = None,
    content: np.ndarray | None = None,
    fill: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``K`` tiles per mosaic -> one ``2 Sb`` canvas, with their boxes.

    Parameters
    ----------
    images, masks : Tensor (M, K, 1, Sb, Sb)
        Tiles, tile 0 the drawn image.
    boxes : Tensor (M, K, T, 4) tile px; valid : Tensor (M, K, T) bool
    origins : ndarray (M, K, 2) int, optional
        Canvas positions of the tile squares (:func:`four_tile_origins`, :func:`nine_tile_origins`);
        default: the ``grid`` 2 x 2 (top-left, top-right, bottom-left, bottom-right).
    content : ndarray (M, K, 4) int, optional
        What of each square is placed; default: the whole square.
    fill : float
        Image value where no tile lies (masks: 0).

    Returns
    -------
    images, masks : Tensor (M, 1, 2 Sb, 2 Sb); boxes : Tensor (M, K T, 4) canvas px, clipped to the
    canvas; valid : Tensor (M, K T)
    """
    m, k, _, side, _ = images.shape
    canvas = 2 * side
    whole = np.array([0, 0, side, side], np.int64)
    if content is None:
        content = np.tile(whole, (m, k, 1))
    if origins is None:
        origins = four_tile_origins(np.asarray(content), np.full((m, 2), side, np.int64))
    if k == 4 and np.all(content == whole) and np.all(origins == GRID_FOUR * side):
        out_images, out_masks = _grid_four(images), _grid_four(masks)  # the plain 2 x 2: a reshape
    else:
        both = place_tiles(torch.cat([images, masks], dim=2), origins, content, canvas, (fill, 0.0))
        out_images, out_masks = both[:, :1], both[:, 1:]
    shift = torch.as_tensor(np.asarray(origins, np.float64), dtype=boxes.dtype, device=boxes.device)
    moved = (boxes + shift.repeat(1, 1, 2)[:, :, None, :]).clamp(0.0, float(canvas))
    t = boxes.shape[2]
    return out_images, out_masks, moved.reshape(m, k * t, 4), valid.reshape(m, k * t)
