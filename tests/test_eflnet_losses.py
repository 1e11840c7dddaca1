"""EFLNet losses: ATFL (Eq. 5-9) against hand-computed values, its p_hat state (Eq. 6), NWD (Eq. 16)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import box_iou, complete_box_iou_loss

from irstd_bench.boxes import nwd
from reference_model.eflnet.losses import (
    ATFL_SMOOTHING,
    AdaptiveThresholdFocalLoss,
    aligned_iou,
    atfl,
    box_regression_loss,
)


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def bce(p: float, q: float) -> float:
    return -(q * math.log(p) + (1 - q) * math.log(1 - p))


# (probability, target, p_hat, lambda, expected) computed by hand from Eq. 7-9 with p_t = 1 - |q - p|
ATFL_CASES = [
    # hard positive: p_t = 0.2 -> (lambda - 0.2) ** (-ln 0.2)
    (0.2, 1.0, 0.3, 3.5, bce(0.2, 1.0) * (3.5 - 0.2) ** (-math.log(0.2))),
    # hard negative: p = 0.9 on background, p_t = 0.1
    (0.9, 0.0, 0.3, 2.0, bce(0.9, 0.0) * (2.0 - 0.1) ** (-math.log(0.1))),
    # p_t = 0.5 exactly is hard (p_t <= 0.5)
    (0.5, 1.0, 0.3, 3.5, bce(0.5, 1.0) * (3.5 - 0.5) ** (-math.log(0.5))),
    # easy negative: p_t = 0.9 -> (1 - 0.9) ** (-ln p_hat)
    (0.1, 0.0, 0.3, 3.5, bce(0.1, 0.0) * 0.1 ** (-math.log(0.3))),
    # easy positive
    (0.8, 1.0, 0.6, 3.5, bce(0.8, 1.0) * 0.2 ** (-math.log(0.6))),
    # soft target q = 0.8, p = 0.7: p_t = 0.9 (easy)
    (0.7, 0.8, 0.3, 3.5, bce(0.7, 0.8) * 0.1 ** (-math.log(0.3))),
    # soft target q = 0.9, p = 0.2: p_t = 0.3 (hard)
    (0.2, 0.9, 0.3, 3.5, bce(0.2, 0.9) * (3.5 - 0.3) ** (-math.log(0.3))),
]


@pytest.mark.parametrize(("p", "q", "p_hat", "lam", "expected"), ATFL_CASES)
def test_atfl_matches_hand_computed_values(p, q, p_hat, lam, expected):
    logits = torch.tensor([logit(p)], dtype=torch.float64, requires_grad=True)
    loss = atfl(logits, torch.tensor([q], dtype=torch.float64), p_hat, lam)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    loss.sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_atfl_weights_hard_samples_up_and_easy_samples_down():
    logits = torch.tensor([logit(0.1), logit(0.95)])  # positive missed (hard), positive found (easy)
    targets = torch.ones(2)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    ratio = atfl(logits, targets, 0.3, 3.5) / plain
    assert ratio[0] > 1 and ratio[1] < 1
    # a larger lambda weights hard samples more; a larger p_hat weights easy samples more
    assert atfl(logits, targets, 0.3, 4.0)[0] > atfl(logits, targets, 0.3, 3.5)[0]
    assert atfl(logits, targets, 0.9, 3.5)[1] > atfl(logits, targets, 0.3, 3.5)[1]


def test_atfl_gradients_finite_at_extremes():
    logits = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0] * 2, requires_grad=True)
    targets = torch.tensor([0.0] * 5 + [1.0] * 5)
    atfl(logits, targets, 0.05, 3.5).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # a positive predicted at p ~ 0 pulls its logit up, a negative at p ~ 1 pushes it down
    assert logits.grad[5] < 0 and logits.grad[4] > 0


def test_atfl_gradient_matches_finite_differences():
    logits = torch.tensor([-2.0, -0.3, 0.4, 1.7], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([1.0, 0.0, 0.7, 0.2], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: atfl(x, targets, 0.4, 3.5), (logits,))


def test_atfl_epoch_mode_follows_eq6():
    loss = AdaptiveThresholdFocalLoss(lam=3.5, mode="epoch").train()
    logits = torch.tensor([logit(0.2), logit(0.6), logit(0.05)])
    targets = torch.tensor([0.9, 0.9, 0.0])
    positive = torch.tensor([True, True, False])
    # no history yet: the current batch's mean probability at positives is used
    out = loss(logits, targets, positive)
    torch.testing.assert_close(out, atfl(logits, targets, torch.tensor(0.4), 3.5))
    loss(torch.tensor([logit(0.7)]), torch.tensor([1.0]), torch.tensor([True]))
    loss.end_epoch()  # epoch 1 mean over (0.2, 0.6, 0.7)
    assert loss.p_hat.item() == pytest.approx(0.5)
    assert int(loss.epoch_count) == 0 and int(loss.history_count) == 1
    # during epoch 2 p_hat is the stored value, whatever the batch says
    out = loss(logits, targets, positive)
    torch.testing.assert_close(out, atfl(logits, targets, torch.tensor(0.5), 3.5))
    loss.end_epoch()  # epoch 2 mean 0.4 -> 0.05 * mean(0.5) + 0.95 * 0.4
    assert loss.p_hat.item() == pytest.approx(ATFL_SMOOTHING * 0.5 + (1 - ATFL_SMOOTHING) * 0.4)
    loss(logits, targets, positive)
    loss.end_epoch()  # epoch 3 mean 0.4 -> 0.05 * mean(0.5, 0.4) + 0.95 * 0.4
    assert loss.p_hat.item() == pytest.approx(ATFL_SMOOTHING * 0.45 + (1 - ATFL_SMOOTHING) * 0.4)


def test_atfl_epoch_state_is_saved_and_not_updated_in_eval():
    loss = AdaptiveThresholdFocalLoss(mode="epoch")
    loss.eval()
    loss(torch.tensor([1.0]), torch.tensor([1.0]), torch.tensor([True]))
    assert int(loss.epoch_count) == 0
    loss.end_epoch()
    assert int(loss.history_count) == 0  # nothing seen: no update
    loss.train()
    loss(torch.tensor([logit(0.8)]), torch.tensor([1.0]), torch.tensor([True]))
    loss.end_epoch()
    state = loss.state_dict()
    assert set(state) >= {"p_hat", "epoch_sum", "epoch_count", "history_sum", "history_count"}
    restored = AdaptiveThresholdFocalLoss(mode="epoch")
    restored.load_state_dict(state)
    assert restored.p_hat.item() == pytest.approx(0.8)


def test_atfl_batch_mode_uses_mean_p_t_of_all_samples():
    loss = AdaptiveThresholdFocalLoss(lam=3.5, mode="batch").train()
    logits = torch.tensor([logit(0.2), logit(0.1), logit(0.3)])
    targets = torch.tensor([1.0, 0.0, 0.0])
    positive = torch.tensor([True, False, False])
    p_hat = (0.2 + 0.9 + 0.7) / 3
    torch.testing.assert_close(
        loss(logits, targets, positive), atfl(logits, targets, torch.tensor(p_hat), 3.5)
    )
    loss.end_epoch()
    assert loss.p_hat.item() == pytest.approx(0.5)  # batch mode keeps no state


def test_atfl_rejects_bad_settings():
    with pytest.raises(ValueError):
        AdaptiveThresholdFocalLoss(mode="history")
    with pytest.raises(ValueError):
        AdaptiveThresholdFocalLoss(lam=0.5)


# ---------------------------------------------------------------- NWD (Eq. 12-16), irstd_bench.boxes


def test_nwd_identical_boxes_is_one_and_symmetric():
    a = torch.tensor([[10.0, 10.0, 13.0, 12.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[11.0, 10.0, 14.0, 13.0], [5.0, 5.0, 9.0, 7.0]])
    torch.testing.assert_close(nwd(a, a, pairwise=False), torch.ones(2))
    torch.testing.assert_close(nwd(a, b), nwd(b, a).T)
    assert (nwd(a, b) < 1).all() and (nwd(a, b) > 0).all()


def test_nwd_exact_value():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 4.0, 7.0, 8.0]], dtype=torch.float64)
    # centres (1, 1) and (5, 6), half sizes (1, 1) and (2, 2): W2^2 = 16 + 25 + 1 + 1
    expected = math.exp(-math.sqrt(43.0) / 11.0)
    assert nwd(a, b, 11.0).item() == pytest.approx(expected)
    assert nwd(a, b, 5.0).item() == pytest.approx(math.exp(-math.sqrt(43.0) / 5.0))


def test_nwd_is_size_independent_for_shifts_unlike_iou():
    small = torch.tensor([[10.0, 10.0, 12.0, 12.0]])
    large = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    shift = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    n_small, n_large = nwd(small, small + shift).item(), nwd(large, large + shift).item()
    assert n_small == pytest.approx(math.exp(-1 / 11)) and n_large == pytest.approx(n_small)
    assert box_iou(small, small + shift).item() < 0.4 < 0.9 < box_iou(large, large + shift).item()
    # disjoint boxes: IoU is 0 whatever the gap, NWD still ranks them by distance
    far, farther = small + 3 * shift, small + 6 * shift
    assert box_iou(small, far).item() == 0 == box_iou(small, farther).item()
    assert nwd(small, far).item() > nwd(small, farther).item()


def test_nwd_scales_with_constant():
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 1.0, 7.0, 6.0]], dtype=torch.float64)
    # scaling all boxes and C by k leaves NWD unchanged
    torch.testing.assert_close(nwd(a, b, 11.0), nwd(3 * a, 3 * b, 33.0))


# ---------------------------------------------------------------- box losses


def test_box_regression_loss_terms():
    pred = torch.tensor([[10.0, 10.0, 13.0, 13.0], [20.0, 20.0, 22.0, 23.0]])
    gt = torch.tensor([[10.5, 10.0, 13.5, 13.0], [30.0, 30.0, 33.0, 32.0]])
    pure_nwd = box_regression_loss(pred, gt, use_nwd=True, nwd_constant=11.0, nwd_ratio=1.0)
    torch.testing.assert_close(pure_nwd, 1 - nwd(pred, gt, 11.0, pairwise=False))
    ciou = box_regression_loss(pred, gt, use_nwd=False, nwd_constant=11.0, nwd_ratio=1.0)
    torch.testing.assert_close(ciou, complete_box_iou_loss(pred, gt, reduction="none"))
    mixed = box_regression_loss(pred, gt, use_nwd=True, nwd_constant=11.0, nwd_ratio=0.25)
    torch.testing.assert_close(mixed, 0.25 * pure_nwd + 0.75 * ciou)
    assert box_regression_loss(gt, gt, use_nwd=True, nwd_constant=11.0, nwd_ratio=0.5).abs().max() < 1e-6


def test_aligned_iou_matches_torchvision_diagonal():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(20, 2, generator=g) * 20
    a = torch.cat([xy, xy + 1 + torch.rand(20, 2, generator=g) * 5], dim=1)
    b = a + torch.randn(20, 4, generator=g)
    b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2] + 0.5)
    torch.testing.assert_close(aligned_iou(a, b), box_iou(a, b).diagonal())


# ---------------------------------------------------------------- ATFL: threshold, smoothing, authors' rule


@pytest.mark.parametrize("rule", ["distance", "linear"])
def test_atfl_switches_factor_exactly_at_the_threshold(rule):
    """p_t = 0.5 takes the hard factor (lambda - p_t)^(-ln p_t); just above it the easy one."""
    lam, p_hat = 3.5, 0.3
    for p_t, factor in [
        (0.49, (3.5 - 0.49) ** (-math.log(0.49))),
        (0.50, (3.5 - 0.50) ** (-math.log(0.50))),
        (0.51, (1 - 0.51) ** (-math.log(0.3))),
    ]:
        logits = torch.tensor([logit(p_t)], dtype=torch.float64)
        loss = atfl(logits, torch.ones(1, dtype=torch.float64), p_hat, lam, rule)
        # the authors' easy factor is (1 + 1e-6 - p_t) ** gamma
        expected_factor = factor if p_t <= 0.5 or rule == "distance" else (1 + 1e-6 - p_t) ** (-math.log(0.3))
        assert loss.item() == pytest.approx(bce(p_t, 1.0) * expected_factor, rel=1e-9)
    # either side of the threshold the factor jumps from above 1 (hard) to below 1 (easy)
    below = atfl(torch.tensor([logit(0.49)]), torch.ones(1), p_hat, lam, rule) / bce(0.49, 1.0)
    above = atfl(torch.tensor([logit(0.51)]), torch.ones(1), p_hat, lam, rule) / bce(0.51, 1.0)
    assert below.item() == pytest.approx(2.19475, rel=1e-4) and above.item() == pytest.approx(0.42365, rel=1e-4)


def test_atfl_epoch_smoothing_literal_values():
    """Eq. 6 by hand: epoch means 0.5, 0.4, 0.4 give p_hat 0.5, 0.405, 0.4025."""
    loss = AdaptiveThresholdFocalLoss(lam=3.5, mode="epoch").train()
    for epoch_probs, expected in [((0.2, 0.6, 0.7), 0.5), ((0.3, 0.5), 0.405), ((0.4,), 0.4025)]:
        logits = torch.tensor([logit(p) for p in epoch_probs])
        loss(logits, torch.ones(len(epoch_probs)), torch.ones(len(epoch_probs), dtype=torch.bool))
        loss.end_epoch()
        assert loss.p_hat.item() == pytest.approx(expected, abs=1e-7)


def test_atfl_batch_mode_with_soft_targets_matches_the_authors_code_by_hand():
    """Authors' utils/loss.py: p_t = q p + (1 - q)(1 - p), p_hat = mean p_t of the call, lambda 1.5.

    Three predictions p = (0.2, 0.9, 0.3) with soft targets q = (0.8, 0, 0):
    p_t = (0.8*0.2 + 0.2*0.8, 0.1, 0.7) = (0.32, 0.1, 0.7), p_hat = 0.37333..., gamma = 0.98528...
    factors: 0.32 and 0.1 are hard: (1.5 - 0.32)^(-ln 0.32) = 1.20755, (1.5 - 0.1)^(-ln 0.1) = 2.17006;
    0.7 is easy: (1.000001 - 0.7)^0.98528 = 0.30536.
    """
    loss = AdaptiveThresholdFocalLoss(lam=1.5, mode="batch", p_t_rule="linear").train()
    probs, targets = (0.2, 0.9, 0.3), (0.8, 0.0, 0.0)
    logits = torch.tensor([logit(p) for p in probs], dtype=torch.float64)
    out = loss(logits, torch.tensor(targets, dtype=torch.float64), torch.tensor([True, False, False]))
    factors = [1.20755, 2.17006, 0.30536]
    expected = [bce(p, q) * f for p, q, f in zip(probs, targets, factors, strict=True)]
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64), rtol=2e-5, atol=0)
    assert -math.log((0.32 + 0.1 + 0.7) / 3) == pytest.approx(0.98528, rel=1e-5)


def test_atfl_rules_agree_on_hard_labels_and_differ_on_soft_ones():
    logits = torch.tensor([-2.0, -0.5, 0.3, 2.5], dtype=torch.float64)
    hard = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(atfl(logits, hard, 0.4, 3.5, "distance"), atfl(logits, hard, 0.4, 3.5, "linear"),
                               rtol=1e-5, atol=0)
    soft = torch.tensor([0.6, 0.3, 0.7, 0.2], dtype=torch.float64)
    assert not torch.allclose(atfl(logits, soft, 0.4, 3.5, "distance"), atfl(logits, soft, 0.4, 3.5, "linear"))
    with pytest.raises(ValueError):
        AdaptiveThresholdFocalLoss(p_t_rule="abs")
