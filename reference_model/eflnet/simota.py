"""SimOTA label assignment of YOLOv7 (the authors' ``ComputeLossOTA.build_targets``), IoU-based.

Two stages per image:

1. **Candidates** (YOLOv5's "3 positives" rule, :func:`yolo_candidates`). At every level a target
   is a candidate of anchor ``a`` when its size fits the anchor, ``max(w / w_a, w_a / w, h / h_a,
   h_a / h) < anchor_t``, in the cell holding its centre and in the (up to two) neighbouring cells
   whose side the centre is nearer to (fractional part below 0.5, and not in the outer cell).
2. **Dynamic-k matching** (OTA simplified, YOLOX, :func:`dynamic_k_matching`). Over the union of
   every target's candidates, with ``IoU`` between each target and each candidate's *predicted*
   box::

       cost = -log(sqrt(p)) + IOU_COST_WEIGHT * -log(IoU + 1e-8)

   (``p``: predicted objectness, times the class probability of the target's class when there
   are several classes, whose cost then also sums ``-log(1 - sqrt(p_k))`` over the other
   classes). Target ``g`` takes its ``k_g = max(1, int(sum of its DYNAMIC_K_CANDIDATES best
   IoUs))`` cheapest candidates; a candidate taken by several targets goes to the target of least
   cost over all targets ("the better-fitting one").

The result is a list of positives (image, flat prediction index, assigned target). Deviation from
the authors' code, kept on purpose: a cell/anchor that is a candidate of several targets appears
once in the union here, twice there (where it may then be counted twice by the box loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou

from .anchor_head import cell_grid

#: targets whose size ratio to an anchor reaches this are not candidates of it (``anchor_t``).
ANCHOR_RATIO_LIMIT = 4.0
#: a neighbouring cell is a candidate when the centre is within this fraction of a cell of it.
NEIGHBOUR_MARGIN = 0.5
#: best IoUs summed to get a target's number of positives (``dynamic_k``).
DYNAMIC_K_CANDIDATES = 10
#: weight of the IoU cost against the classification cost.
IOU_COST_WEIGHT = 3.0
#: added to IoU before its logarithm (the authors' ``1e-8``).
COST_EPS = 1e-8
#: probabilities are clamped to ``[PROB_EPS, 1 - PROB_EPS]`` before logarithms.
PROB_EPS = 1e-6
#: shifts ``(dx, dy)`` (in cells) of the centre towards the centre cell and the left, upper, right
#: and lower neighbours; the candidate cell is ``floor(centre + shift)``.
NEIGHBOUR_SHIFTS = ((0.0, 0.0), (-0.5, 0.0), (0.0, -0.5), (0.5, 0.0), (0.0, 0.5))


@dataclass
class PredictionGrid:
    """Where every flattened prediction sits, ``T = sum_l A H_l W_l`` rows (level by level,
    then anchor, row, column: the order of ``output.reshape(B, -1, N)`` for ``(B, A, H, W, N)``).

    Attributes
    ----------
    level : LongTensor (T,)
    cells : Tensor (T, 2)  ``(column, row)`` of the cell.
    anchors : Tensor (T, 2)  anchor ``(w, h)`` in px.
    strides : Tensor (T,)  stride in px.
    shapes : list of (A, H, W) per level; offsets : list of the first row of each level.
    """

    level: torch.Tensor
    cells: torch.Tensor
    anchors: torch.Tensor
    strides: torch.Tensor
    shapes: list[tuple[int, int, int]]
    offsets: list[int]

    @classmethod
    def build(cls, outputs: list[torch.Tensor], anchors: torch.Tensor, strides: tuple[int, ...]) -> PredictionGrid:
        """From the per-level raw outputs ``(B, A, H, W, N)`` and anchors ``(L, A, 2)`` px."""
        device = outputs[0].device
        level, cells, anchor_rows, stride_rows, shapes, offsets = [], [], [], [], [], []
        offset = 0
        for index, (output, stride) in enumerate(zip(outputs, strides, strict=True)):
            _, a, h, w, _ = output.shape
            cell = cell_grid(h, w, device).reshape(1, h * w, 2).expand(a, h * w, 2)
            cells.append(cell.reshape(-1, 2))
            anchor_rows.append(anchors[index].float().to(device)[:, None, :].expand(a, h * w, 2).reshape(-1, 2))
            level.append(torch.full((a * h * w,), index, dtype=torch.long, device=device))
            stride_rows.append(torch.full((a * h * w,), float(stride), device=device))
            shapes.append((a, h, w))
            offsets.append(offset)
            offset += a * h * w
        return cls(
            torch.cat(level), torch.cat(cells), torch.cat(anchor_rows), torch.cat(stride_rows), shapes, offsets
        )


def yolo_candidates(
    gt_boxes: torch.Tensor,
    grid: PredictionGrid,
    level_anchors: torch.Tensor,
    strides: tuple[int, ...],
    anchor_ratio_limit: float = ANCHOR_RATIO_LIMIT,
) -> torch.Tensor:
    """Flat prediction indices that are candidates of any target (sorted, unique), ``(M,)``.

    ``gt_boxes (G, 4)`` ``[x0, y0, x1, y1]`` px; ``level_anchors (L, A, 2)`` px.
    """
    found = []
    centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    size = (gt_boxes[:, 2:] - gt_boxes[:, :2]).clamp_min(COST_EPS)
    shifts = torch.tensor(NEIGHBOUR_SHIFTS, device=gt_boxes.device, dtype=gt_boxes.dtype)  # (5, 2)
    for index, stride in enumerate(strides):
        a, h, w = grid.shapes[index]
        anchors = level_anchors[index].to(gt_boxes)  # (A, 2) px
        ratio = size[:, None, :] / anchors[None]  # (G, A, 2)
        fits = torch.maximum(ratio, 1 / ratio).amax(dim=-1) < anchor_ratio_limit  # (G, A)
        g = centre / stride  # (G, 2) grid units
        g_inv = torch.tensor([w, h], device=g.device, dtype=g.dtype) - g
        near_low = (g % 1 < NEIGHBOUR_MARGIN) & (g > 1)  # left / upper neighbour
        near_high = (g_inv % 1 < NEIGHBOUR_MARGIN) & (g_inv > 1)  # right / lower neighbour
        use = torch.stack(
            [torch.ones_like(near_low[:, 0]), near_low[:, 0], near_low[:, 1], near_high[:, 0], near_high[:, 1]], 1
        )  # (G, 5)
        cell = (g[:, None, :] + shifts[None]).floor().long()  # (G, 5, 2)
        col = cell[..., 0].clamp(0, w - 1)
        row = cell[..., 1].clamp(0, h - 1)
        anchor_index = torch.arange(a, device=g.device)[None, :, None]  # (1, A, 1)
        flat = grid.offsets[index] + (anchor_index * h + row[:, None, :]) * w + col[:, None, :]  # (G, A, 5)
        found.append(flat[fits[:, :, None] & use[:, None, :]])
    return torch.unique(torch.cat(found)) if found else torch.zeros(0, dtype=torch.long, device=gt_boxes.device)


def classification_cost(
    objectness: torch.Tensor, class_probs: torch.Tensor | None, gt_classes: torch.Tensor
) -> torch.Tensor:
    """``(G, M)`` cost ``BCE(sqrt(p), one_hot)`` summed over classes (see the module docstring).

    ``objectness (M,)`` and ``class_probs (M, K) | None`` are probabilities; ``gt_classes (G,)``.
    Probabilities are clamped to ``[PROB_EPS, 1 - PROB_EPS]`` (float32 keeps ``1 - 1e-6``).
    """
    if class_probs is None:
        root = objectness.clamp(PROB_EPS, 1 - PROB_EPS).sqrt()  # (M,)
        return (-torch.log(root))[None, :].expand(gt_classes.shape[0], -1)
    root = (class_probs * objectness[:, None]).clamp(PROB_EPS, 1 - PROB_EPS).sqrt()  # (M, K)
    negative = -torch.log1p(-root)  # (M, K) cost of each class being absent
    positive = -torch.log(root)
    wanted = gt_classes[:, None].expand(-1, root.shape[0])  # (G, M)
    swap = (positive - negative).T.gather(0, wanted)  # (G, M) present instead of absent for its class
    return negative.sum(dim=1)[None, :] + swap


def dynamic_k_matching(cost: torch.Tensor, iou: torch.Tensor) -> torch.Tensor:
    """``cost, iou (G, M) -> (M,)`` target index of each candidate, ``-1`` where unmatched.

    Target ``g`` takes its ``k_g`` cheapest candidates, ``k_g = max(1, int(sum of its
    DYNAMIC_K_CANDIDATES largest IoUs))``; a candidate taken by several targets goes to the
    target of least cost (over all targets).
    """
    num_gt, num_candidates = cost.shape
    top_iou = iou.topk(min(DYNAMIC_K_CANDIDATES, num_candidates), dim=1).values  # (G, <=10)
    dynamic_k = top_iou.sum(dim=1).int().clamp_min(1).tolist()
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for g, k in enumerate(dynamic_k):
        matching[g, cost[g].topk(min(k, num_candidates), largest=False).indices] = True
    shared = matching.sum(dim=0) > 1
    if bool(shared.any()):
        best = cost[:, shared].argmin(dim=0)  # (S,)
        matching[:, shared] = False
        matching[best, shared.nonzero().squeeze(1)] = True
    matched = matching.any(dim=0)
    return torch.where(matched, matching.float().argmax(dim=0), torch.full_like(matched, -1, dtype=torch.long))


@dataclass
class Positives:
    """Assigned predictions of a batch, ``P`` rows: ``image (P,)``, ``index (P,)`` flat prediction
    index, ``boxes (P, 4)`` the target ``[x0, y0, x1, y1]`` px, ``classes (P,)``."""

    image: torch.Tensor
    index: torch.Tensor
    boxes: torch.Tensor
    classes: torch.Tensor


@torch.no_grad()
def simota_assign(
    flat: torch.Tensor,
    pred_boxes_fn,
    grid: PredictionGrid,
    level_anchors: torch.Tensor,
    strides: tuple[int, ...],
    targets: list[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
) -> Positives:
    """Assign a batch.

    Parameters
    ----------
    flat : Tensor (B, T, N)
        Raw predictions, flattened as :class:`PredictionGrid` describes (``N = 5`` or ``5 + K``).
    pred_boxes_fn : callable
        ``(raw (M, N), rows (M,)) -> (M, 4)`` decoded ``[x0, y0, x1, y1]`` px.
    targets : list of (boxes (G_b, 4) px, classes (G_b,) long), one per image.
    """
    images, indices, boxes, classes = [], [], [], []
    for b, (gt_boxes, gt_classes) in enumerate(targets):
        if gt_boxes.shape[0] == 0:
            continue
        candidates = yolo_candidates(gt_boxes, grid, level_anchors, strides)
        if candidates.numel() == 0:
            continue
        raw = flat[b, candidates]  # (M, N)
        iou = box_iou(gt_boxes, pred_boxes_fn(raw, candidates))  # (G, M)
        class_probs = raw[:, 5:].sigmoid() if num_classes > 1 else None
        cost = classification_cost(raw[:, 4].sigmoid(), class_probs, gt_classes)
        cost = cost + IOU_COST_WEIGHT * -torch.log(iou + COST_EPS)
        owner = dynamic_k_matching(cost, iou)
        keep = owner >= 0
        images.append(torch.full((int(keep.sum()),), b, dtype=torch.long, device=flat.device))
        indices.append(candidates[keep])
        boxes.append(gt_boxes[owner[keep]])
        classes.append(gt_classes[owner[keep]])
    if not images:
        empty = torch.zeros(0, dtype=torch.long, device=flat.device)
        return Positives(empty, empty, torch.zeros(0, 4, device=flat.device), empty)
    return Positives(torch.cat(images), torch.cat(indices), torch.cat(boxes), torch.cat(classes))
