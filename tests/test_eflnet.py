"""EFLNet model: DyHead parts, assigner, interface of docs/CONTRACTS.md, switches, and an overfit run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, deform_conv2d, nms

from reference_model.eflnet import SCALES, build_eflnet
from reference_model.eflnet.assigner import BACKGROUND, TaskAlignedAssigner
from reference_model.eflnet.dyhead import (
    DYRELU_INTERCEPT_RANGE,
    DYRELU_SLOPE_RANGE,
    DyHead,
    DyHeadBlock,
    DyReLU,
    ModulatedDeformConv,
    deform_conv2d_gathered,
    deform_conv2d_sparse,
)
from reference_model.eflnet.head import anchor_points, decode_boxes
from reference_model.eflnet.model import first_kept_by_nms
from reference_model.registry import build_model

PAPER_PARAMETERS_L = 38.5e6
#: parameters per scale at the defaults (strides 4/8/16, 4 DyHead blocks); pinned on purpose.
PARAMETERS = {"n": 1_901_199, "s": 9_917_727, "m": 22_290_159, "l": 39_849_279}


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- deformable convolution / DyHead


@pytest.mark.parametrize("backend", ["torchvision", "sparse", "gathered"])
@pytest.mark.parametrize("stride", [1, 2])
def test_zero_offsets_unit_mask_is_plain_convolution(backend, stride):
    g = torch.Generator().manual_seed(1)
    conv = ModulatedDeformConv(6, 5, stride=stride, backend=backend)
    x = torch.randn(2, 6, 12, 10, generator=g)
    h_out, w_out = (12 - 1) // stride + 1, (10 - 1) // stride + 1
    offset = torch.zeros(2, 18, h_out, w_out)
    mask = torch.ones(2, 9, h_out, w_out)
    expected = F.conv2d(x, conv.weight, stride=stride, padding=1)
    torch.testing.assert_close(conv(x, offset, mask), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", [deform_conv2d_sparse, deform_conv2d_gathered])
@pytest.mark.parametrize("stride", [1, 2])
def test_sampled_deform_conv_equals_torchvision_with_gradients(implementation, stride):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 9, 8, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64)
    h_out, w_out = (9 - 1) // stride + 1, (8 - 1) // stride + 1
    offset = 2.5 * torch.randn(2, 18, h_out, w_out, generator=g, dtype=torch.float64)  # some fall outside
    mask = torch.rand(2, 9, h_out, w_out, generator=g, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (x, offset, mask, weight)]
    ours = implementation(*inputs, stride=stride, padding=1)
    ours.pow(2).sum().backward()
    reference_inputs = [t.clone().requires_grad_() for t in (x, offset, mask, weight)]
    rx, ro, rm, rw = reference_inputs
    reference = deform_conv2d(rx, ro, rw, stride=stride, padding=1, mask=rm)
    reference.pow(2).sum().backward()
    torch.testing.assert_close(ours, reference)
    for a, b in zip(inputs, reference_inputs, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


def test_sparse_deform_conv_on_a_map_larger_than_int16_pixel_indices():
    """A chunk of more than 32767 pixels sorts int32 keys instead of int16 ones: same results."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 130, 260, generator=g, dtype=torch.float64)  # 33800 pixels
    weight = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    offset = 3.0 * torch.randn(1, 18, 130, 260, generator=g, dtype=torch.float64)
    mask = torch.rand(1, 9, 130, 260, generator=g, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (x, offset, mask, weight)]
    deform_conv2d_sparse(*inputs).pow(2).sum().backward()
    reference_inputs = [t.clone().requires_grad_() for t in (x, offset, mask, weight)]
    rx, ro, rm, rw = reference_inputs
    deform_conv2d(rx, ro, rw, padding=1, mask=rm).pow(2).sum().backward()
    for a, b in zip(inputs, reference_inputs, strict=True):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("images_per_chunk", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("needs_grad", ["all", "offset_mask"])
def test_sparse_deform_conv_in_chunks_of_images(monkeypatch, images_per_chunk, stride, needs_grad):
    """Images split over chunks (3 images in chunks of 1 or 2: a short last chunk) give torchvision's
    outputs and gradients, with channels-last input, offsets and mask sliced from one map as the
    dynamic head passes them, and only the gradients asked for."""
    import reference_model.eflnet.dyhead as dyhead

    b, c, h, w = 3, 5, 11, 9
    h_out, w_out = (h - 1) // stride + 1, (w - 1) // stride + 1
    monkeypatch.setattr(dyhead, "SPARSE_CHUNK_VALUES", images_per_chunk * 9 * c * h_out * w_out)
    assert dyhead._images_per_chunk(9, c, h_out * w_out) == images_per_chunk
    g = torch.Generator().manual_seed(4)
    x = torch.randn(b, c, h, w, generator=g, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(4, c, 3, 3, generator=g, dtype=torch.float64)
    offset_mask = torch.randn(b, 27, h_out, w_out, generator=g, dtype=torch.float64)
    offset = 2.0 * offset_mask[:, :18]  # a few pixels, some samples outside the map
    mask = offset_mask[:, 18:].sigmoid()
    grads = {"all": (True, True, True, True), "offset_mask": (False, True, True, False)}[needs_grad]
    inputs = [t.detach().clone().requires_grad_(r) for t, r in zip((x, offset, mask, weight), grads, strict=True)]
    ours = deform_conv2d_sparse(*inputs, stride=stride, padding=1)
    reference_inputs = [t.detach().clone().requires_grad_(r)
                        for t, r in zip((x, offset, mask, weight), grads, strict=True)]
    rx, ro, rm, rw = reference_inputs
    reference = deform_conv2d(rx, ro, rw, stride=stride, padding=1, mask=rm)
    torch.testing.assert_close(ours, reference)
    upstream = torch.randn(reference.shape, generator=g, dtype=torch.float64)
    (ours * upstream).sum().backward()
    (reference * upstream).sum().backward()
    for a, r, needed in zip(inputs, reference_inputs, grads, strict=True):
        assert (a.grad is not None) == needed
        if needed:
            torch.testing.assert_close(a.grad, r.grad)


def _loss_and_gradients(model, images, targets):
    model.zero_grad()
    losses = model.compute_loss(model(images), targets)
    sum(losses.values()).backward()
    return losses, {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_training_loss_on_a_fixed_batch_equals_the_torchvision_deformable_convolution():
    """The training loss of the default CPU path (the sparse deformable convolution) equals, to 1e-5,
    the loss computed with torchvision's DCNv2 kernel, on a fixed batch and with offsets of a few
    tenths of a pixel (a trained model's); so do the gradients."""
    torch.manual_seed(0)
    model = build_eflnet("n").train()
    for block in model.dyhead:
        torch.nn.init.normal_(block.offset_conv.weight, std=0.05)
    images = torch.rand(4, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    targets = [{"boxes": torch.tensor([[30.0 + 9 * i, 40.0, 33.0 + 9 * i, 42.0 + i]])} for i in range(4)]
    deform_convs = [m for m in model.modules() if isinstance(m, ModulatedDeformConv)]
    assert {m.resolved_backend(images) for m in deform_convs} == {"sparse"}
    losses, grads = _loss_and_gradients(model, images, targets)
    for conv in deform_convs:
        conv.backend = "torchvision"
    reference_losses, reference_grads = _loss_and_gradients(model, images, targets)
    for name, value in losses.items():
        torch.testing.assert_close(value, reference_losses[name], rtol=1e-5, atol=0)
    assert grads.keys() == reference_grads.keys()
    for name, grad in grads.items():  # measured: 2.5e-5 of the largest gradient at worst
        reference = reference_grads[name]
        torch.testing.assert_close(grad, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def test_dyhead_keeps_its_input_memory_format():
    """Channels-last features come out channels-last (the head's convolutions run faster so), others contiguous."""
    head = DyHead(16, 1)
    features = [torch.randn(2, 16, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4)]
    for memory_format in (torch.channels_last, torch.contiguous_format):
        outputs = head([f.contiguous(memory_format=memory_format) for f in features])
        assert all(o.is_contiguous(memory_format=memory_format) for o in outputs)


@pytest.mark.train
def test_dyhead_runs_in_bf16_under_autocast_and_matches_float32():
    """Under bf16 autocast every deformable convolution samples and contracts in bf16 (the offsets
    stay float32); the head's output equals the float32 one within bf16 precision."""
    torch.manual_seed(0)
    head = DyHead(32, 2)
    for block in head:  # non-zero offsets and attention, so the sampling matters
        torch.nn.init.normal_(block.offset_conv.weight, std=0.05)
        torch.nn.init.normal_(block.task_attention.mlp[2].weight, std=0.05)
    features = [torch.randn(2, 32, 16, 16), torch.randn(2, 32, 8, 8), torch.randn(2, 32, 4, 4)]
    reference = head(features)
    conv = head[0].conv_mid
    assert conv.resolved_backend(features[0]) == "sparse"
    offset_dtypes = []
    head[0].offset_conv.register_forward_hook(lambda module, args, out: offset_dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv.resolved_backend(features[0]) == "gathered"
        low = head([f.clone().requires_grad_() for f in features])
        x = features[0].to(torch.bfloat16)
        offset, mask = torch.randn(2, 18, 16, 16), torch.rand(2, 9, 16, 16)
        assert deform_conv2d_gathered(x, offset, mask, conv.weight).dtype == torch.bfloat16
    assert offset_dtypes == [torch.float32] * 3  # one call per level, float32 under autocast
    for a, b in zip(low, reference, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a.float(), b, rtol=0.03, atol=0.03 * b.abs().max().item())
    sum(o.float().sum() for o in low).backward()  # bf16 backward through the gathers


def test_dyhead_block_keeps_shapes_and_starts_from_zero_offsets():
    block = DyHeadBlock(16)
    features = [torch.randn(2, 16, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 16, 4, 4)]
    out = block(features)
    assert [o.shape for o in out] == [f.shape for f in features]
    offset_mask = block.offset_conv(features[0])
    assert offset_mask.abs().max() == 0  # offsets 0, mask sigmoid(0) = 0.5
    out[0].sum().backward()
    assert block.offset_conv.weight.grad is not None and block.offset_conv.weight.grad.abs().sum() > 0


def test_dyrelu_starts_as_relu_and_is_input_dependent():
    torch.manual_seed(0)
    act = DyReLU(8)
    x = torch.randn(3, 8, 5, 5) + 1.0  # a non-zero mean, so the pooled descriptor drives the MLP
    torch.testing.assert_close(act(x), F.relu(x))
    torch.nn.init.normal_(act.mlp[2].weight)
    a, b = act(x), F.relu(x)
    assert not torch.allclose(a, b)



def test_dyrelu_is_the_maximum_of_its_two_lines_with_gradients():
    """Eq. 20 written out with torch.maximum: same values and gradients (x, MLP) as the module's selection."""
    torch.manual_seed(1)
    act = DyReLU(8)
    torch.nn.init.normal_(act.mlp[2].weight)
    x = (torch.randn(3, 8, 5, 5, dtype=torch.float64) + 0.3).requires_grad_()
    act = act.double()
    upstream = torch.randn(3, 8, 5, 5, dtype=torch.float64)
    (act(x) * upstream).sum().backward()
    grads = [x.grad.clone()] + [p.grad.clone() for p in act.parameters()]
    x.grad = None
    act.zero_grad()
    theta = (2 * F.hardsigmoid(act.mlp(x.mean(dim=(2, 3)))) - 1).reshape(3, 4, 8, 1, 1)
    a1, b1 = 1 + DYRELU_SLOPE_RANGE * theta[:, 0], DYRELU_INTERCEPT_RANGE * theta[:, 1]
    a2, b2 = DYRELU_SLOPE_RANGE * theta[:, 2], DYRELU_INTERCEPT_RANGE * theta[:, 3]
    expected = torch.maximum(a1 * x + b1, a2 * x + b2)
    assert ((a1 * x + b1) < (a2 * x + b2)).any() and ((a1 * x + b1) > (a2 * x + b2)).any()  # both lines used
    torch.testing.assert_close(act(x), expected)
    (expected * upstream).sum().backward()
    for ours, reference in zip(grads, [x.grad] + [p.grad for p in act.parameters()], strict=True):
        torch.testing.assert_close(ours, reference)

# ---------------------------------------------------------------- anchors, decoding, assigner


def test_anchor_points_literal():
    outputs = [torch.zeros(1, 5, 2, 3), torch.zeros(1, 5, 1, 2)]  # a 8x12 image at strides 4 and 8
    points, strides = anchor_points(outputs, (4, 8))
    expected = torch.tensor(
        [[2, 2], [6, 2], [10, 2], [2, 6], [6, 6], [10, 6], [4, 4], [12, 4]], dtype=torch.float32
    )
    torch.testing.assert_close(points, expected)
    torch.testing.assert_close(strides, torch.tensor([4.0] * 6 + [8.0] * 2))


def test_decode_boxes_literal():
    raw = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.5, -0.25, math.log(math.e - 1), 10.0]])
    boxes = decode_boxes(raw, torch.tensor([[2.0, 2.0], [12.0, 4.0]]), torch.tensor([4.0, 8.0]))
    half = math.log(2) * 4 / 2  # softplus(0) * stride / 2
    expected = torch.tensor(
        [[2 - half, 2 - half, 2 + half, 2 + half], [16 - 4, 2 - 40.000363, 16 + 4, 2 + 40.000363]]
    )
    torch.testing.assert_close(boxes, expected, rtol=1e-5, atol=1e-4)


def _grid(size=32, strides=(4, 8, 16)):
    outputs = [torch.zeros(1, 5, size // s, size // s) for s in strides]
    return anchor_points(outputs, strides)


def test_assigner_gives_tiny_targets_positives_through_the_radius_rule():
    points, strides = _grid()
    gt = torch.tensor([[8.0, 8.0, 9.0, 9.0]])  # 1-px target between stride-4 anchor centres (6, 10)
    scores = torch.full((len(points),), 0.1)
    pred = torch.cat([points - 1.5, points + 1.5], dim=1)
    with_radius = TaskAlignedAssigner(topk=10)(scores, pred, points, strides, gt)
    assert with_radius.positive.sum() > 0
    assert (with_radius.gt_index[with_radius.positive] == 0).all()
    assert (with_radius.gt_index[~with_radius.positive] == BACKGROUND).all()
    torch.testing.assert_close(with_radius.target_boxes[with_radius.positive][0], gt[0])
    assert (with_radius.quality[with_radius.positive] > 0).all()
    assert (with_radius.quality[~with_radius.positive] == 0).all()
    no_radius = TaskAlignedAssigner(topk=10, center_radius=0.0)(scores, pred, points, strides, gt)
    assert no_radius.positive.sum() == 0


def test_assigner_topk_prefers_aligned_anchors_and_resolves_conflicts():
    points, strides = _grid()
    gt = torch.tensor([[4.0, 4.0, 8.0, 8.0], [8.0, 4.0, 12.0, 8.0]])
    scores = torch.full((len(points),), 0.5)
    pred = torch.cat([points - 2, points + 2], dim=1)
    best = torch.tensor([6.0, 6.0])  # anchor at (6, 6) predicts gt 0 exactly
    index = int(((points - best).abs().sum(1) == 0).nonzero())
    pred[index] = gt[0]
    result = TaskAlignedAssigner(topk=3)(scores, pred, points, strides, gt)
    assert result.positive[index] and result.gt_index[index] == 0
    assert result.quality[index] == pytest.approx(1.0)
    assert result.positive.sum() <= 6  # at most topk per ground truth
    assert set(result.gt_index[result.positive].tolist()) == {0, 1}


@pytest.mark.parametrize(("pred_box", "winner"), [([5.0, 4.0, 9.0, 8.0], 0), ([7.0, 4.0, 11.0, 8.0], 1)])
def test_assigner_gives_an_anchor_wanted_by_two_targets_to_the_better_fitting_one(pred_box, winner):
    points, strides = _grid()
    gt = torch.tensor([[4.0, 4.0, 8.0, 8.0], [8.0, 4.0, 12.0, 8.0]])  # centres (6, 6) and (10, 6)
    pred = torch.tensor([[100.0, 100.0, 104.0, 104.0]]).repeat(len(points), 1)  # every other anchor: far off
    shared = int(((points - torch.tensor([6.0, 6.0])).abs().sum(1) == 0).nonzero())  # near both centres
    pred[shared] = torch.tensor(pred_box)
    result = TaskAlignedAssigner(topk=1)(torch.full((len(points),), 0.5), pred, points, strides, gt)
    # both targets rank the shared anchor first; it goes to the target its box is nearer to
    assert result.positive[shared] and result.gt_index[shared] == winner
    torch.testing.assert_close(result.target_boxes[shared], gt[winner])
    assert int(result.positive.sum()) == 1  # the other target's only pick was taken


def test_assigner_ranks_more_candidates_than_topk_by_score_alpha_times_quality_beta():
    """One target with 17 candidate anchors and topk 3: the positives are the three largest
    ``score ** alpha * quality ** beta`` (alpha 0.5, beta 6, TOOD's), not the largest scores, nor
    the largest qualities, nor the exponents swapped."""
    from reference_model.eflnet.losses import box_quality

    points, strides = _grid()
    gt = torch.tensor([[8.0, 8.0, 12.0, 12.0]])
    assigner = TaskAlignedAssigner(topk=3, alpha=0.5, beta=6.0)
    candidates = torch.nonzero(assigner.candidates(points, strides, gt)[0]).flatten()
    assert len(candidates) > 3 * 4  # many more candidates than topk
    pred = torch.tensor([[100.0, 100.0, 104.0, 104.0]]).repeat(len(points), 1)
    scores = torch.zeros(len(points))
    # Candidate k predicts the target moved by 0.35 k px (quality falls with k) and scores 0.04 + 0.056 k
    # (score rises with k): score and quality pull the ranking apart.
    for k, anchor in enumerate(candidates.tolist()):
        pred[anchor] = gt[0] + 0.35 * k * torch.tensor([1.0, 0.5, 1.0, 0.5])
        scores[anchor] = 0.04 + 0.056 * k
    quality = box_quality(gt, pred, use_nwd=True, nwd_constant=assigner.nwd_constant, pairwise=True)[0]

    def top3(metric: torch.Tensor) -> set[int]:
        return set(candidates[metric[candidates].topk(3).indices].tolist())

    expected = top3(scores**0.5 * quality**6.0)
    for other in (scores**6.0 * quality**0.5, scores, quality, scores * quality):
        assert top3(other) != expected  # the fixture tells these rankings apart
    result = assigner(scores, pred, points, strides, gt)
    assert set(torch.nonzero(result.positive).flatten().tolist()) == expected
    assert (result.gt_index[result.positive] == 0).all()


def test_postprocess_nms_and_the_confidence_rule():
    """Two predictions of one box: NMS keeps the higher score; a score equal to conf is kept (>=)."""
    model = build_eflnet("n", strides=(8, 16, 32), dyhead_blocks=0).eval()
    outputs = [torch.full((1, 5, 64 // s, 64 // s), -20.0) for s in (8, 16, 32)]
    outputs = [torch.cat([o[:, :1], torch.zeros_like(o[:, 1:])], dim=1) for o in outputs]
    size = math.log(math.e - 1)  # softplus -> 1 stride: an 8 px box
    outputs[0][0, :, 2, 2] = torch.tensor([2.0, 0.5, 0.0, size, size])  # centre (24, 20)
    outputs[0][0, :, 2, 3] = torch.tensor([1.0, -0.5, 0.0, size, size])  # the same box from the next cell
    outputs[0][0, :, 6, 6] = torch.tensor([0.0, 0.0, 0.0, size, size])  # elsewhere, score exactly 0.5
    result = model.postprocess(outputs, conf_threshold=0.5, iou_threshold=0.5)[0]
    torch.testing.assert_close(result["scores"], torch.sigmoid(torch.tensor([2.0, 0.0])))
    expected = torch.tensor([[20.0, 16.0, 28.0, 24.0], [48.0, 48.0, 56.0, 56.0]])
    torch.testing.assert_close(result["boxes"], expected, rtol=0, atol=1e-4)
    assert len(model.postprocess(outputs, conf_threshold=0.5, iou_threshold=1.0)[0]["scores"]) == 3
    assert len(model.postprocess(outputs, conf_threshold=0.5 + 1e-6)[0]["scores"]) == 1  # 0.5 now cut


@pytest.mark.parametrize("seed", range(12))
def test_first_kept_by_nms_equals_full_nms(seed):
    """NMS on the best-scored candidates first keeps what the full NMS keeps, in its order, ties
    (rounded scores) and clusters of overlapping boxes included."""
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 3000, (1,), generator=g))
    corner = torch.rand(n, 2, generator=g) * (40.0 if seed % 2 else 256.0)
    boxes = torch.cat([corner, corner + torch.rand(n, 2, generator=g) * 12 + 0.5], dim=1)
    scores = (torch.rand(n, generator=g) * (5 if seed % 3 == 0 else 1000)).floor() / 1000
    for max_det in (1, 10, 100, n + 1):
        expected = nms(boxes, scores, 0.5)[:max_det]
        assert torch.equal(first_kept_by_nms(boxes, scores, 0.5, max_det), expected)
    assert first_kept_by_nms(boxes[:0], scores[:0], 0.5, 100).numel() == 0


def test_config_is_one_dataclass_and_unknown_keywords_fail():
    from dataclasses import asdict, fields

    from reference_model.eflnet.model import EFLNetConfig

    model = build_eflnet("n", dyhead_blocks=0)
    assert model.config == asdict(model.settings) and len(fields(EFLNetConfig)) == 20
    assert model.config["nwd_constant"] == 11.0 and model.config["head_channels"] == SCALES["n"]["head_channels"]
    with pytest.raises(TypeError, match="unknown EFLNet option"):
        build_eflnet("n", anchors=[[10, 13]])


def test_assigner_without_targets_is_all_background():
    points, strides = _grid()
    result = TaskAlignedAssigner()(
        torch.rand(len(points)), torch.rand(len(points), 4), points, strides, torch.zeros(0, 4)
    )
    assert not result.positive.any() and (result.gt_index == BACKGROUND).all() and result.quality.sum() == 0


def test_assigner_quality_follows_use_nwd():
    points, strides = _grid()
    gt = torch.tensor([[10.0, 10.0, 13.0, 13.0]])
    pred = torch.cat([points - 1.5, points + 1.5], dim=1) + 5.0  # no overlap: IoU 0, NWD > 0
    scores = torch.full((len(points),), 0.5)
    with_nwd = TaskAlignedAssigner(use_nwd=True)(scores, pred, points, strides, gt)
    with_iou = TaskAlignedAssigner(use_nwd=False)(scores, pred, points, strides, gt)
    # NWD ranks disjoint predictions too; IoU gives some positives a zero quality (and zero target)
    assert (with_nwd.quality[with_nwd.positive] > 0.1).all()
    assert (with_iou.quality[with_iou.positive] == 0).any()
    assert with_iou.quality.max() < with_nwd.quality.max()


# ---------------------------------------------------------------- model interface


@pytest.mark.parametrize("scale", list(SCALES))
def test_parameter_counts_are_pinned(scale):
    assert count(build_eflnet(scale)) == PARAMETERS[scale]


def test_large_scale_is_close_to_paper():
    assert abs(PARAMETERS["l"] - PAPER_PARAMETERS_L) / PAPER_PARAMETERS_L < 0.10
    assert PARAMETERS["n"] < PARAMETERS["s"] < PARAMETERS["m"] < PARAMETERS["l"]


@pytest.mark.parametrize("strides", [(4, 8, 16), (8, 16, 32)])
@pytest.mark.parametrize("dyhead_blocks", [0, 4])
def test_forward_and_postprocess_shapes(strides, dyhead_blocks):
    torch.manual_seed(0)
    model = build_eflnet("n", strides=strides, dyhead_blocks=dyhead_blocks).eval()
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        outputs = model(images)
    assert [tuple(o.shape) for o in outputs] == [(2, 5, 64 // s, 96 // s) for s in strides]
    results = model.postprocess(outputs, conf_threshold=0.0, iou_threshold=0.5, max_det=7)
    assert len(results) == 2
    for r in results:
        assert r["boxes"].shape == (7, 4) and r["scores"].shape == (7,)
        assert (r["scores"][:-1] >= r["scores"][1:]).all()  # sorted
        assert (r["boxes"][:, 0] >= 0).all() and (r["boxes"][:, 2] <= 96).all()
        assert (r["boxes"][:, 1] >= 0).all() and (r["boxes"][:, 3] <= 64).all()
    # a fresh model predicts ~PRIOR_PROBABILITY everywhere: the default threshold 0.5 keeps nothing
    assert all(len(r["scores"]) == 0 for r in model.postprocess(outputs, conf_threshold=0.5))


def test_forward_rejects_sizes_not_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32"):
        build_eflnet("n")(torch.rand(1, 3, 48, 64))


def test_compute_loss_with_empty_and_non_empty_images():
    torch.manual_seed(0)
    model = build_eflnet("n").train()
    outputs = model(torch.rand(3, 3, 64, 64))
    targets = [
        {"boxes": torch.tensor([[10.0, 12.0, 13.0, 14.0]]), "masks": torch.zeros(64, 64)},
        {"boxes": torch.zeros(0, 4), "masks": torch.zeros(64, 64)},
        {"boxes": torch.tensor([[40.0, 40.0, 41.0, 41.0], [20.0, 50.0, 26.0, 55.0]])},
    ]
    losses = model.compute_loss(outputs, targets)
    assert set(losses) == {"cls", "box"}
    assert all(v.dim() == 0 and v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    assert losses["box"] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_loss_sums_over_images_multiplies_by_batch_and_no_recipe_sets_it():
    # The YOLO code bases' loss * bs: the same images give B times the mean loss, term by term, and
    # the engine sums such a loss over accumulated batches (model.loss_sums_over_images). It made the
    # authors' recipe diverge on this network, so the recipes keep the mean (RUNS.md).
    from reference_model.eflnet.model import RECIPES

    assert all("loss_sums_over_images" not in r.model_options for r in RECIPES.values())
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 13.0, 14.0]])}, {"boxes": torch.zeros(0, 4)},
               {"boxes": torch.tensor([[40.0, 40.0, 44.0, 43.0]])}]
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    losses = {}
    for sums in (False, True):
        torch.manual_seed(0)
        model = build_eflnet("n", **RECIPES["authors"].model_options, loss_sums_over_images=sums).eval()
        assert model.loss_sums_over_images is sums and model.config["loss_sums_over_images"] is sums
        losses[sums] = model.compute_loss(model(images), targets)
    for term in ("cls", "box"):
        torch.testing.assert_close(losses[True][term], 3.0 * losses[False][term])
    assert build_eflnet("n").loss_sums_over_images is False  # the engine's default training: a mean


def test_compute_loss_all_empty_batch_is_background_only():
    model = build_eflnet("n").train()
    outputs = model(torch.rand(2, 3, 64, 64))
    losses = model.compute_loss(outputs, [{"boxes": torch.zeros(0, 4)}] * 2)
    assert losses["box"].item() == 0 and losses["cls"] > 0
    sum(losses.values()).backward()
    assert int(model.atfl.epoch_count) == 0  # no positives: p_hat statistics untouched


def test_compute_loss_under_autocast_is_float32():
    model = build_eflnet("n").train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(torch.rand(2, 3, 64, 64))
        losses = model.compute_loss(outputs, [{"boxes": torch.tensor([[10.0, 10.0, 14.0, 13.0]])}] * 2)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()


def test_on_epoch_end_updates_the_saved_p_hat():
    torch.manual_seed(0)
    model = build_eflnet("n").train()
    outputs = model(torch.rand(1, 3, 64, 64))
    model.compute_loss(outputs, [{"boxes": torch.tensor([[10.0, 10.0, 14.0, 13.0]])}])
    assert model.atfl.p_hat.item() == 0.5 and int(model.atfl.epoch_count) > 0
    model.on_epoch_end()
    p_hat = model.atfl.p_hat.item()
    assert p_hat != 0.5 and 0 < p_hat < 0.1  # fresh model: probability ~ PRIOR_PROBABILITY at positives
    assert model.state_dict()["atfl.p_hat"].item() == p_hat


# ---------------------------------------------------------------- switches and config


def test_config_rebuilds_the_same_model():
    model = build_eflnet("s", dyhead_blocks=2, atfl_lambda=2.5, nwd_constant=8.0, strides=(8, 16, 32))
    config = model.config
    assert config["scale"] == "s" and config["dyhead_blocks"] == 2 and config["atfl_lambda"] == 2.5
    assert config["nwd_constant"] == 8.0 and config["strides"] == [8, 16, 32]
    rebuilt = build_eflnet(**config)
    assert rebuilt.config == config
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    rebuilt.load_state_dict(model.state_dict())


def test_registry_builds_eflnet_with_overrides():
    model = build_model("eflnet-n", dyhead_blocks=0)
    assert model.task == "detect" and model.model_name == "eflnet-n"
    assert model.config["dyhead_blocks"] == 0 and count(model.dyhead) == 0


def test_switches_change_behaviour():
    torch.manual_seed(0)
    base = build_eflnet("n", dyhead_blocks=1).train()
    outputs = base(torch.rand(2, 3, 64, 64))
    outputs = [o.detach() for o in outputs]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 13.0, 13.0]])}, {"boxes": torch.zeros(0, 4)}]
    state = base.state_dict()

    def loss_with(**switches):
        model = build_eflnet("n", dyhead_blocks=1, **switches).train()
        model.load_state_dict(state)
        return {k: v.item() for k, v in model.compute_loss(outputs, targets).items()}

    reference = loss_with()
    assert loss_with(use_atfl=False)["cls"] != pytest.approx(reference["cls"])
    assert loss_with(use_atfl=False)["box"] == pytest.approx(reference["box"])
    assert loss_with(atfl_lambda=2.0)["cls"] < reference["cls"]
    assert loss_with(use_nwd=False)["box"] != pytest.approx(reference["box"])
    assert loss_with(nwd_ratio=1.0)["box"] != pytest.approx(reference["box"])
    assert loss_with(atfl_mode="batch")["cls"] != pytest.approx(reference["cls"])
    assert count(build_eflnet("n", dyhead_blocks=0)) < count(build_eflnet("n", dyhead_blocks=1))


@pytest.mark.parametrize(
    "bad",
    [
        {"scale": "xl"},
        {"strides": (4, 16)},
        {"strides": (2, 4, 8)},
        {"dyhead_blocks": 7},
        {"nwd_ratio": 1.5},
        {"atfl_mode": "history"},
        {"atfl_lambda": 0.3},
    ],
)
def test_invalid_settings_raise(bad):
    with pytest.raises(ValueError):
        build_eflnet(**bad)


# ---------------------------------------------------------------- the whole detector learns


def synthetic_blobs(seed: int = 0, n: int = 8, size: int = 64) -> tuple[torch.Tensor, list[dict]]:
    """``n`` noisy images with 1-3 Gaussian blobs of 2-6 px each, and their boxes."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    images, targets = [], []
    for _ in range(n):
        image = 0.2 + 0.05 * torch.randn(size, size, generator=g)
        boxes: list[torch.Tensor] = []
        wanted = int(torch.randint(1, 4, (1,), generator=g))
        while len(boxes) < wanted:
            d = int(torch.randint(2, 7, (1,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(4, size - 4 - d, (2,), generator=g))
            box = torch.tensor([x0, y0, x0 + d, y0 + d], dtype=torch.float32)
            margin = torch.tensor([-4.0, -4.0, 4.0, 4.0])
            if boxes and box_iou((box + margin)[None], torch.stack(boxes)).max() > 0:
                continue
            sigma = max(d / 3, 0.7)
            blob = 0.7 * torch.exp(-((xx - x0 - d / 2) ** 2 + (yy - y0 - d / 2) ** 2) / (2 * sigma**2))
            inside = (xx > x0) & (xx < x0 + d) & (yy > y0) & (yy < y0 + d)
            image = image + blob * inside
            boxes.append(box)
        images.append(image.clamp(0, 1).expand(3, size, size))
        targets.append({"boxes": torch.stack(boxes)})
    return torch.stack(images), targets


def target_f1(predictions: list[dict], targets: list[dict], conf: float, min_iou: float = 0.5) -> float:
    """Greedy one-to-one matching, predictions in score order, IoU >= ``min_iou``."""
    tp = fp = fn = 0
    for pred, target in zip(predictions, targets, strict=True):
        keep = pred["scores"] >= conf
        boxes = pred["boxes"][keep][pred["scores"][keep].argsort(descending=True)]
        gt = target["boxes"]
        iou = box_iou(boxes, gt) if len(boxes) and len(gt) else torch.zeros(len(boxes), len(gt))
        matched: set[int] = set()
        for row in iou:
            free = [(row[j].item(), j) for j in range(len(gt)) if j not in matched and row[j] >= min_iou]
            if free:
                matched.add(max(free)[1])
        tp += len(matched)
        fp += len(boxes) - len(matched)
        fn += len(gt) - len(matched)
    return 2 * tp / max(2 * tp + fp + fn, 1)


def outcome_overfit_synthetic(seed: int, work=None) -> dict[str, float]:
    """ATFL's ``p_hat`` and the target F1 (conf 0.5) of EFLNet-n after 180 AdamW steps on 8 blobs images."""
    torch.manual_seed(seed)
    images, targets = synthetic_blobs()
    model = build_eflnet("n")
    steps, steps_per_epoch = 180, 20
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 1 - i / steps)
    model.train()
    for step in range(steps):
        losses = model.compute_loss(model(images), targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % steps_per_epoch == 0:
            model.on_epoch_end()
    model.eval()
    with torch.no_grad():
        predictions = model.postprocess(model(images), conf_threshold=0.05)
    return {"p_hat": model.atfl.p_hat.item(), "f1": target_f1(predictions, targets, conf=0.5)}


@pytest.mark.slow
@pytest.mark.train
def test_overfits_synthetic_tiny_targets():
    # Measured over seeds 0-9 x {1, 2} threads: MARGIN_EFLNET
    # bench/test_margins.py tests/test_eflnet.py::outcome_overfit_synthetic
    outcome = outcome_overfit_synthetic(0)
    assert 0.5 < outcome["p_hat"] < 1  # p_hat followed the rising confidence on targets
    assert outcome["f1"] >= 0.9
