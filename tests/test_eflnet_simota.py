"""SimOTA of eflnet-yolov7 (the authors' ComputeLossOTA.build_targets): candidates, dynamic k, conflicts."""

from __future__ import annotations

import math

import torch

from reference_model.eflnet.simota import (
    PredictionGrid,
    classification_cost,
    dynamic_k_matching,
    simota_assign,
    yolo_candidates,
)

#: one anchor per level, as small as the targets below: (w, h) px
ANCHORS = torch.tensor([[[8.0, 8.0]], [[16.0, 16.0]], [[32.0, 32.0]]])
STRIDES = (8, 16, 32)


def grid_for(size: int = 64, anchors: torch.Tensor = ANCHORS) -> tuple[PredictionGrid, list[torch.Tensor]]:
    outputs = [torch.zeros(1, anchors.shape[1], size // s, size // s, 5) for s in STRIDES]
    return PredictionGrid.build(outputs, anchors, STRIDES), outputs


def test_prediction_grid_orders_rows_like_reshape():
    grid, outputs = grid_for()
    assert grid.shapes == [(1, 8, 8), (1, 4, 4), (1, 2, 2)] and grid.offsets == [0, 64, 80]
    row = grid.offsets[1] + 2 * 4 + 3  # level 1, row 2, column 3
    torch.testing.assert_close(grid.cells[row], torch.tensor([3.0, 2.0]))
    assert grid.level[row] == 1 and grid.strides[row] == 16
    torch.testing.assert_close(grid.anchors[row], torch.tensor([16.0, 16.0]))


def test_candidates_are_the_centre_cell_and_the_two_nearer_neighbours():
    grid, _ = grid_for()
    # centre (21, 27) px: at stride 8 cell (2.625, 3.375) -> cell (2, 3), right (3, 3), upper (2, 2);
    # size 6 px fits the 8 px anchor (ratio 1.33) but not 16 (2.67 ok) ... nor 32 (5.3 >= 4)
    gt = torch.tensor([[18.0, 24.0, 24.0, 30.0]])
    found = yolo_candidates(gt, grid, ANCHORS, STRIDES).tolist()
    level0 = sorted([3 * 8 + 2, 3 * 8 + 3, 2 * 8 + 2])
    # stride 16: centre (1.3125, 1.6875) -> cell (1, 1), left (0, 1) (x frac < 0.5 and x > 1), lower (1, 2)
    level1 = sorted(64 + r * 4 + c for c, r in [(1, 1), (0, 1), (1, 2)])
    assert found == level0 + level1


def test_candidates_respect_the_anchor_ratio_limit():
    grid, _ = grid_for()
    tiny = torch.tensor([[30.0, 30.0, 31.0, 31.0]])  # 1 px: 8 / 1 = 8 >= 4 at every level
    assert yolo_candidates(tiny, grid, ANCHORS, STRIDES).numel() == 0
    big = torch.tensor([[0.0, 0.0, 64.0, 64.0]])  # 64 px: fits only the 32 px anchor (ratio 2)
    found = yolo_candidates(big, grid, ANCHORS, STRIDES)
    assert found.numel() > 0 and bool((found >= 80).all())


def test_dynamic_k_is_the_integer_sum_of_the_best_ious():
    iou = torch.tensor([[0.9, 0.8, 0.7, 0.1], [0.2, 0.1, 0.0, 0.0]])  # sums 2.5 -> k 2; 0.3 -> k 1 (at least)
    cost = -torch.log(iou + 1e-8)
    cost[1] = torch.tensor([5.0, 5.0, 5.0, 0.5])  # target 1's cheapest candidate is 3
    owner = dynamic_k_matching(cost, iou)
    assert owner.tolist() == [0, 0, -1, 1]


def test_a_candidate_wanted_by_two_targets_goes_to_the_better_fitting_one():
    # both targets take their 2 cheapest: target 0 -> {0, 1}, target 1 -> {1, 2}; candidate 1 is
    # cheaper for target 1 (0.2 < 0.4), so target 1 keeps it and target 0 keeps only candidate 0
    iou = torch.full((2, 3), 0.7)  # k = int(2.1) = 2 for both
    cost = torch.tensor([[0.1, 0.4, 9.0], [9.0, 0.2, 0.3]])
    assert dynamic_k_matching(cost, iou).tolist() == [0, 1, 1]
    # swap the costs of candidate 1: now target 0 fits it better
    cost[:, 1] = torch.tensor([0.2, 0.4])
    assert dynamic_k_matching(cost, iou).tolist() == [0, 0, 1]


def test_classification_cost_one_class_and_several():
    obj = torch.tensor([0.25, 0.64])
    one = classification_cost(obj, None, torch.tensor([0, 0]))
    expected = torch.tensor([-math.log(0.5), -math.log(0.8)]).expand(2, 2)
    torch.testing.assert_close(one, expected)
    probs = torch.tensor([[0.64, 0.25], [0.36, 0.81]])  # class probabilities, objectness 1
    several = classification_cost(torch.ones(2), probs, torch.tensor([1, 0]))  # target 0: class 1, target 1: class 0
    # -log sqrt(p) for the target's class, -log(1 - sqrt(p)) for the other class
    expected = torch.tensor(
        [
            [-math.log(0.5) - math.log(1 - 0.8), -math.log(0.9) - math.log(1 - 0.6)],
            [-math.log(0.8) - math.log(1 - 0.5), -math.log(0.6) - math.log(1 - 0.9)],
        ]
    )
    torch.testing.assert_close(several, expected)


def test_simota_assign_prefers_the_prediction_that_overlaps():
    grid, outputs = grid_for()
    flat = torch.full((1, grid.level.numel(), 5), -4.0)
    gt = torch.tensor([[18.0, 24.0, 24.0, 30.0]])

    def boxes_at(raw, rows):  # every candidate predicts a far-away box except row 3*8+2 (the centre cell)
        out = torch.tensor([[50.0, 50.0, 56.0, 56.0]]).expand(len(rows), 4).clone()
        out[rows == 3 * 8 + 2] = gt[0]
        return out

    positives = simota_assign(flat, boxes_at, grid, ANCHORS, STRIDES, [(gt, torch.zeros(1, dtype=torch.long))], 1)
    assert positives.index.tolist() == [3 * 8 + 2] and positives.image.tolist() == [0]
    torch.testing.assert_close(positives.boxes, gt)
    empty = simota_assign(flat, boxes_at, grid, ANCHORS, STRIDES, [(torch.zeros(0, 4), torch.zeros(0).long())], 1)
    assert empty.index.numel() == 0
