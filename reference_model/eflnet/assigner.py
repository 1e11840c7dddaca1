"""Task-aligned label assignment with NWD quality (TOOD's assigner, EFLNet Sec. III-B).

For every ground-truth box the assigner ranks *candidate* anchor points by the alignment metric::

    t = score ** alpha * quality ** beta

where ``score`` is the predicted probability at the anchor and ``quality`` the NWD (or IoU when
``use_nwd`` is off) between the anchor's predicted box and the ground truth, and marks the
``topk`` best as positives.

Candidates are anchor points whose centre lies inside the box **or** within ``center_radius``
strides of the box centre along both axes (a square window). The radius rule is what gives a
1-3 px target any positive at all: at stride 4 its box contains an anchor centre only for a
quarter of the possible positions, and at stride 8 or 16 almost never. With the default radius of
one stride each level contributes about 2x2 to 3x3 candidates around a tiny target.

An anchor claimed by several ground truths goes to the one with the highest quality. The
classification target of a positive is its quality (detached, in ``[0, 1]``), as in
VarifocalNet; negatives get 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from irstd_bench.boxes import DEFAULT_NWD_CONSTANT

from .losses import box_quality

#: ``gt_index`` of an anchor that is not assigned to any ground truth.
BACKGROUND = -1
#: rank value of non-candidates, below any alignment metric (metrics are >= 0).
NOT_CANDIDATE = -1.0


@dataclass
class Assignment:
    """Result for one image with ``A`` anchors.

    Attributes
    ----------
    positive : BoolTensor (A,)
    gt_index : LongTensor (A,)  index of the assigned ground truth, ``BACKGROUND`` for negatives.
    target_boxes : Tensor (A, 4)  assigned box ``[x0, y0, x1, y1]`` px (zeros for negatives).
    quality : Tensor (A,)  NWD/IoU of the predicted box with its assigned box; 0 for negatives.
    """

    positive: torch.Tensor
    gt_index: torch.Tensor
    target_boxes: torch.Tensor
    quality: torch.Tensor


class TaskAlignedAssigner:
    """Assign anchor points to ground-truth boxes; see the module docstring.

    Parameters
    ----------
    topk : int  positives per ground truth at most.
    alpha, beta : float  exponents of score and quality in the alignment metric.
    center_radius : float  candidate window half-size in strides around the box centre.
    use_nwd : bool  quality is NWD (True) or IoU.
    nwd_constant : float  NWD's ``C`` in pixels.
    """

    def __init__(
        self,
        topk: int = 10,
        alpha: float = 0.5,
        beta: float = 6.0,
        center_radius: float = 1.0,
        use_nwd: bool = True,
        nwd_constant: float = DEFAULT_NWD_CONSTANT,
    ) -> None:
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.center_radius = center_radius
        self.use_nwd = use_nwd
        self.nwd_constant = nwd_constant

    def candidates(
        self, points: torch.Tensor, point_strides: torch.Tensor, gt_boxes: torch.Tensor
    ) -> torch.Tensor:
        """``(A, 2), (A,), (N, 4) -> (N, A)`` bool: anchor inside the box or near its centre."""
        px, py = points[None, :, 0], points[None, :, 1]  # (1, A)
        x0, y0, x1, y1 = (gt_boxes[:, i, None] for i in range(4))  # (N, 1) each
        inside = (px > x0) & (px < x1) & (py > y0) & (py < y1)
        radius = self.center_radius * point_strides[None, :]  # (1, A)
        near = ((px - (x0 + x1) / 2).abs() <= radius) & ((py - (y0 + y1) / 2).abs() <= radius)
        return inside | near

    @torch.no_grad()
    def __call__(
        self,
        scores: torch.Tensor,
        pred_boxes: torch.Tensor,
        points: torch.Tensor,
        point_strides: torch.Tensor,
        gt_boxes: torch.Tensor,
    ) -> Assignment:
        """Assign one image.

        Parameters
        ----------
        scores : Tensor (A,)  predicted probabilities.
        pred_boxes : Tensor (A, 4)  decoded predicted boxes, px.
        points : Tensor (A, 2)  anchor points ``(x, y)`` px; point_strides : Tensor (A,).
        gt_boxes : Tensor (N, 4)  ground truth ``[x0, y0, x1, y1]`` px; ``N`` may be 0.
        """
        num_anchors = scores.shape[0]
        device = scores.device
        if gt_boxes.shape[0] == 0:
            return Assignment(
                positive=torch.zeros(num_anchors, dtype=torch.bool, device=device),
                gt_index=torch.full((num_anchors,), BACKGROUND, dtype=torch.long, device=device),
                target_boxes=torch.zeros(num_anchors, 4, device=device),
                quality=torch.zeros(num_anchors, device=device),
            )
        candidate = self.candidates(points, point_strides, gt_boxes)  # (N, A)
        quality = box_quality(
            gt_boxes, pred_boxes, use_nwd=self.use_nwd, nwd_constant=self.nwd_constant, pairwise=True
        ).clamp(0, 1)  # (N, A)
        metric = scores[None, :].clamp_min(0) ** self.alpha * quality**self.beta  # (N, A)
        rank = torch.where(candidate, metric, torch.full_like(metric, NOT_CANDIDATE))
        k = min(self.topk, num_anchors)
        top = rank.topk(k, dim=1).indices  # (N, k)
        chosen = torch.zeros_like(candidate).scatter_(1, top, True) & candidate  # (N, A)
        # an anchor claimed by several ground truths keeps the one it fits best.
        claim = torch.where(chosen, quality, torch.full_like(quality, -1.0))
        best_quality, gt_index = claim.max(dim=0)  # (A,)
        positive = chosen.any(dim=0)
        gt_index = torch.where(positive, gt_index, torch.full_like(gt_index, BACKGROUND))
        target_boxes = torch.where(positive[:, None], gt_boxes[gt_index.clamp_min(0)], 0.0)
        target_quality = torch.where(positive, best_quality, 0.0)
        return Assignment(positive, gt_index, target_boxes, target_quality)
