"""EFLNet losses: adaptive threshold focal loss (ATFL, Eq. 5-9) and the NWD/CIoU box loss.

ATFL
----
With ``p`` the predicted probability and ``q`` the classification target, EFLNet splits samples
at ``p_t = 0.5`` into *hard* and *easy* ones and down-weights the easy ones adaptively::

    ATFL = BCE(p, q) * (lambda - p_t) ** (-ln p_t)      if p_t <= 0.5     (hard, Eq. 8)
           BCE(p, q) * (1 - p_t) ** (-ln p_hat_c)       if p_t >  0.5     (easy, Eq. 7/9)

Targets are soft (the quality of the predicted box for positives, 0 for negatives; see
:mod:`.assigner`), so ``p_t`` must be defined for ``0 < q < 1``. Two rules (:data:`P_T_RULES`), equal
for hard labels (``p`` for ``q = 1``, ``1 - p`` for ``q = 0``):

- ``"distance"``: ``p_t = 1 - |q - p|``, 1 exactly when the prediction equals the target, as in
  quality/varifocal focal losses (the n/s/m/l family);
- ``"linear"``: ``p_t = q p + (1 - q)(1 - p)``, the authors' code (``utils/loss.py``), whose easy
  factor is also written ``(1 + 1e-6 - p_t) ** gamma`` there; used by ``eflnet-yolov7``.

``lambda > 0.5`` (the paper's best is 3.5, the authors' code 1.5) makes the hard weight exceed 1
and grow as ``p_t`` falls.

``p_hat_c`` (Eq. 6) estimates how confident the network is on the true targets, so the easy
exponent ``gamma = -ln p_hat_c`` shrinks as training progresses. What we implement, ``mode="epoch"``:
during epoch ``t`` every training call accumulates the predicted probability at positive anchors;
``end_epoch()`` turns the epoch mean ``pbar_t`` into::

    p_hat_c = SMOOTHING * mean(pbar_1 .. pbar_{t-1}) + (1 - SMOOTHING) * pbar_t      (SMOOTHING = 0.05)

(``p_hat_c = pbar_1`` after the first epoch), used throughout epoch ``t + 1``. This is Eq. 6 as printed
(0.05 on the average of the previous epochs' means, 0.95 on the current one). Until the first
``end_epoch()`` there is no history, so the mean probability at the current batch's positives is used.
The state lives in registered buffers and is saved with the model. ``mode="batch"`` reproduces the
authors' code, which rebuilds its history on every call and so uses the mean ``p_t`` over *all*
samples of the current call (its smoothing ``0.05 * mean + 0.95 * mean`` is the mean itself); the
authors call the loss once per pyramid level, so ``eflnet-yolov7`` does too. In both modes
``p_hat_c`` is detached (a statistic, not a path for gradients; the authors' code lets gradients
through it).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import complete_box_iou_loss

from irstd_bench.boxes import nwd

#: ``p_t`` at or below which a sample is hard (Eq. 7).
ATFL_THRESHOLD = 0.5
#: weight of the previous epochs' mean in Eq. 6.
ATFL_SMOOTHING = 0.05
#: ``p_t`` and ``p_hat_c`` are clamped to ``[EPS, 1 - EPS]`` so powers and logs stay finite.
EPS = 1e-6
#: value of ``p_hat_c`` before any statistics exist (only used if a batch has no positives).
ATFL_INITIAL_P_HAT = 0.5
ATFL_MODES = ("epoch", "batch")
#: definitions of ``p_t`` for soft targets (module docstring).
P_T_RULES = ("distance", "linear")


def target_probability(prob: torch.Tensor, targets: torch.Tensor, rule: str) -> torch.Tensor:
    """``p_t`` of probabilities ``prob`` against targets in ``[0, 1]`` (same shape) by ``rule``."""
    if rule == "linear":
        return targets * prob + (1 - targets) * (1 - prob)
    return 1 - (targets - prob).abs()


def atfl(
    logits: torch.Tensor,
    targets: torch.Tensor,
    p_hat: torch.Tensor | float,
    lam: float,
    p_t_rule: str = "distance",
) -> torch.Tensor:
    """Element-wise adaptive threshold focal loss (no reduction).

    Parameters
    ----------
    logits : Tensor (...)
        Classification logits.
    targets : Tensor (...)
        Targets in ``[0, 1]`` (soft labels allowed), same shape.
    p_hat : Tensor () or float
        Smoothed probability of the true targets ``p_hat_c`` in ``(0, 1)``.
    lam : float
        ``lambda`` of the hard-sample weight, ``> 0.5``.
    p_t_rule : str
        ``"distance"`` or ``"linear"`` (module docstring).

    Returns
    -------
    Tensor (...) : ``BCE(logits, targets) * modulating factor``.
    """
    prob = logits.sigmoid()
    gamma_easy = -torch.log(torch.as_tensor(p_hat, dtype=prob.dtype, device=prob.device).clamp(EPS, 1 - EPS))
    if p_t_rule == "linear":
        p_t = target_probability(prob, targets, "linear").clamp_min(EPS)
        easy = (1 + EPS - p_t) ** gamma_easy
    else:
        p_t = target_probability(prob, targets, "distance").clamp(EPS, 1 - EPS)
        easy = (1 - p_t) ** gamma_easy
    hard = (lam - p_t) ** (-torch.log(p_t))
    factor = torch.where(p_t > ATFL_THRESHOLD, easy, hard)
    return F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * factor


class AdaptiveThresholdFocalLoss(nn.Module):
    """ATFL with its ``p_hat_c`` state (see the module docstring for the two modes).

    Buffers (saved in checkpoints): ``p_hat`` (current ``p_hat_c``), ``epoch_sum``/``epoch_count``
    (probabilities at positives seen this epoch), ``history_sum``/``history_count`` (sum and number
    of past epoch means). Statistics are accumulated only in training mode.
    """

    def __init__(self, lam: float = 3.5, mode: str = "epoch", p_t_rule: str = "distance") -> None:
        super().__init__()
        if mode not in ATFL_MODES:
            raise ValueError(f"atfl_mode must be one of {ATFL_MODES}, got {mode!r}")
        if lam <= ATFL_THRESHOLD:
            raise ValueError(f"atfl_lambda must be > {ATFL_THRESHOLD}, got {lam}")
        if p_t_rule not in P_T_RULES:
            raise ValueError(f"p_t_rule must be one of {P_T_RULES}, got {p_t_rule!r}")
        self.lam = lam
        self.mode = mode
        self.p_t_rule = p_t_rule
        self.register_buffer("p_hat", torch.tensor(ATFL_INITIAL_P_HAT, dtype=torch.float64))
        self.register_buffer("epoch_sum", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("epoch_count", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("history_sum", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("history_count", torch.tensor(0, dtype=torch.int64))

    def current_p_hat(
        self, logits: torch.Tensor, targets: torch.Tensor, positive: torch.Tensor
    ) -> torch.Tensor:
        """``p_hat_c`` for this call (detached scalar, float32)."""
        with torch.no_grad():
            prob = logits.sigmoid()
            if self.mode == "batch":
                return target_probability(prob, targets, self.p_t_rule).mean().float()
            if int(self.history_count) == 0 and bool(positive.any()):
                return prob[positive].mean().float()
            return self.p_hat.float()

    def forward(self, logits: torch.Tensor, targets: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
        """``logits, targets (...)`` and boolean ``positive (...)`` -> element-wise loss ``(...)``."""
        p_hat = self.current_p_hat(logits, targets, positive)
        if self.training and self.mode == "epoch":
            with torch.no_grad():
                self.epoch_sum += logits[positive].detach().sigmoid().double().sum()
                self.epoch_count += int(positive.sum())
        return atfl(logits, targets, p_hat, self.lam, self.p_t_rule)

    @torch.no_grad()
    def end_epoch(self) -> None:
        """Fold this epoch's mean probability at positives into ``p_hat`` (Eq. 6); no-op without data."""
        if self.mode != "epoch" or int(self.epoch_count) == 0:
            return
        epoch_mean = self.epoch_sum / self.epoch_count
        if int(self.history_count) > 0:
            history_mean = self.history_sum / self.history_count
            self.p_hat.copy_(ATFL_SMOOTHING * history_mean + (1 - ATFL_SMOOTHING) * epoch_mean)
        else:
            self.p_hat.copy_(epoch_mean)
        self.history_sum += epoch_mean
        self.history_count += 1
        self.epoch_sum.zero_()
        self.epoch_count.zero_()


def aligned_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of aligned pairs: ``(N, 4), (N, 4) -> (N,)``, boxes ``[x0, y0, x1, y1]`` in pixels."""
    lt = torch.maximum(boxes1[:, :2], boxes2[:, :2])
    rb = torch.minimum(boxes1[:, 2:], boxes2[:, 2:])
    inter = (rb - lt).clamp_min(0).prod(dim=1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(dim=1)
    area2 = (boxes2[:, 2:] - boxes2[:, :2]).prod(dim=1)
    return inter / (area1 + area2 - inter).clamp_min(EPS)


def box_quality(
    pred: torch.Tensor, gt: torch.Tensor, *, use_nwd: bool, nwd_constant: float, pairwise: bool
) -> torch.Tensor:
    """NWD (``use_nwd``) or IoU between boxes: ``(N, M)`` if ``pairwise`` else ``(N,)`` for aligned pairs."""
    if use_nwd:
        return nwd(pred, gt, nwd_constant, pairwise=pairwise)
    if pairwise:
        from irstd_bench.boxes import iou

        return iou(pred, gt)
    return aligned_iou(pred, gt)


def box_regression_loss(
    pred: torch.Tensor, target: torch.Tensor, *, use_nwd: bool, nwd_constant: float, nwd_ratio: float
) -> torch.Tensor:
    """Per-box regression loss ``(N, 4), (N, 4) -> (N,)``.

    ``use_nwd``: ``nwd_ratio * (1 - NWD) + (1 - nwd_ratio) * CIoU_loss``; otherwise CIoU loss alone
    (:func:`torchvision.ops.complete_box_iou_loss`). Boxes ``[x0, y0, x1, y1]`` in pixels, valid
    (``x1 > x0``, ``y1 > y0``).
    """
    if not use_nwd:
        return complete_box_iou_loss(pred, target, reduction="none")
    loss = nwd_ratio * (1 - nwd(pred, target, nwd_constant, pairwise=False))
    if nwd_ratio < 1:
        loss = loss + (1 - nwd_ratio) * complete_box_iou_loss(pred, target, reduction="none")
    return loss
