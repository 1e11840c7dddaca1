"""MDvsFA: parameter counts, shapes, the MD/FA, adversarial and consistency terms, adversarial
training through the engine (overfit, both optimizers checkpointed, bit-exact resume), recipes."""

from __future__ import annotations

import math

import pytest
import torch
from test_engine_models import make_nuaa_like
from test_engine_train import _eval, run_cli

from reference_model.engine import TrainConfig, load_checkpoint, train
from reference_model.engine.checkpoint import release_checkpoint
from reference_model.engine.config import apply_recipe, config_fields
from reference_model.registry import build_model
from reference_model.reproduce._plan import registry_models
from reference_model.segmentation._mdvsfa_nets import (
    DISC_GRID,
    G1_WIDTH_MULTIPLES,
    G2_DILATIONS,
    G2_SKIPS,
    count_params,
    identity_init_,
)
from reference_model.segmentation.mdvsfa import (
    DEFAULT_RECIPE,
    RECIPES,
    MDvsFAOutputs,
    classification_loss,
    miss_false_terms,
)

TINY = {"g1_width": 4, "g2_width": 4, "d_width": 4}


def tf_layer_params(widths_in_out, head_in: int) -> int:
    """TensorFlow layout of a generator: 3x3 convs without bias, BN shift per channel, w0 and w1, 1x1 head."""
    return sum(9 * i * o + o + 2 for i, o in widths_in_out) + head_in + 1


def g1_layers(width: int = 64) -> list[tuple[int, int]]:
    outs = [width * m for m in G1_WIDTH_MULTIPLES]
    return list(zip([1, *outs[:-1]], outs, strict=True))


def g2_layers(width: int = 64) -> list[tuple[int, int]]:
    return [(1 if i == 1 else (2 * width if i in G2_SKIPS else width), width) for i in range(1, len(G2_DILATIONS) + 1)]


def d_params_tf(width: int = 24) -> int:
    convs = [(2, width), (width, width), (width, width), (width, 1)]
    conv = sum(9 * i * o + o for i, o in convs)  # no bias, BN shift
    dense = (DISC_GRID**2 * 128 + 128 + 2 * 128) + (128 * 64 + 64 + 2 * 64) + (64 * 3 + 3)  # FC + BN(scale, shift)
    return conv + dense


def test_parameter_counts_follow_the_authors_tensorflow_layers():
    model = build_model("mdvsfa")
    g1, g2, d = (tf_layer_params(g1_layers(), 64), tf_layer_params(g2_layers(), 64), d_params_tf())
    assert (g1, g2, d) == (3_135_569, 628_187, 151_124)
    assert count_params([model.g1]) == g1 and count_params([model.g2]) == g2
    assert count_params([model.discriminator]) == d
    assert count_params([model]) == g1 + g2 + d == 3_914_880
    # The PyTorch port (demo_MDvsFA_pytorch.py): conv biases and BN scales on every hidden layer
    # (G1 1472 channels, G2 832, D convs 73), a BN on D's 3 outputs (6), no w0/w1 (8 + 13 layers).
    g1_ch, g2_ch, d_ch = sum(o for _, o in g1_layers()), sum(o for _, o in g2_layers()), 3 * 24 + 1
    assert (g1_ch, g2_ch) == (1472, 832)
    port = g1 + g2 + d + 2 * (g1_ch + g2_ch + d_ch) + 2 * 3 - 2 * (8 + 13)
    assert port == 3_919_598


@pytest.mark.parametrize("size", [(33, 47), (32, 64), (17, 17)])
def test_forward_shapes_in_both_modes(size):
    torch.manual_seed(0)
    model = build_model("mdvsfa", **TINY)
    images = torch.rand(2, 3, *size)
    model.train()
    out = model(images)
    assert isinstance(out, MDvsFAOutputs)
    assert out.g1.shape == out.g2.shape == out.image.shape == (2, 1, *size)
    assert out.image.min() >= -1 and out.image.max() <= 1
    model.eval()
    with torch.no_grad():
        fused = model(images)
    assert fused.shape == (2, 1, *size) and fused.min() >= 0 and fused.max() <= 1
    # w1 of every adaptive norm starts at 0, so batch norm does not act yet: both modes agree
    torch.testing.assert_close(fused, (out.g1.clamp(0, 1) + out.g2.clamp(0, 1)) / 2)
    maps = model.postprocess(fused)
    assert len(maps) == 2 and maps[0]["score_map"].shape == size
    torch.testing.assert_close(model.postprocess(out)[1]["score_map"], fused[1, 0])


def test_full_width_forward_shape_odd_size():
    model = build_model("mdvsfa").eval()
    with torch.no_grad():
        fused = model(torch.rand(1, 3, 19, 25))
    assert fused.shape == (1, 1, 19, 25)


def test_identity_initialisation_of_the_centre_tap():
    torch.manual_seed(0)
    square, widen, narrow = torch.empty(4, 4, 3, 3), torch.empty(8, 4, 3, 3), torch.empty(2, 8, 3, 3)
    for w in (square, widen, narrow):
        identity_init_(w)
    assert torch.equal(square[:, :, 1, 1].diagonal(), torch.ones(4))
    assert all(widen[2 * i, i, 1, 1] == 1 for i in range(4))  # input i feeds output 2 i
    assert all(narrow[j, 4 * j, 1, 1] == 4 for j in range(2))  # output j reads input 4 j, weight 8 / 2
    off = square.clone()
    off[range(4), range(4), 1, 1] = 0
    assert off.abs().max() < 0.02  # elsewhere the N(0, 0.0025) noise


def test_md_and_fa_terms_by_hand():
    prob = torch.tensor([[0.2, 0.9], [0.5, 0.0]]).view(1, 1, 2, 2)
    mask = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    md, fa = miss_false_terms(prob, mask)
    # squared errors 0.04, 0.01, 0.25, 0: misses on the target pixels (0.01 + 0.25), alarms on the rest
    torch.testing.assert_close(md, torch.tensor((0.01 + 0.25) / 4))
    torch.testing.assert_close(fa, torch.tensor(0.04 / 4))


def test_classification_losses_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.5]])
    e = [math.exp(v) for v in (2.0, 0.0, -1.0)]
    ce = (-math.log(e[0] / sum(e)) - math.log(1 / 3)) / 2
    torch.testing.assert_close(classification_loss(logits, 0, "cross_entropy"), torch.tensor(ce))
    # the authors' code: softmax outputs q taken as logits of three sigmoids against the one-hot class
    q = [[v / sum(e) for v in e], [1 / 3] * 3]

    def bce(z: float, y: float) -> float:
        s = 1 / (1 + math.exp(-z))
        return -(y * math.log(s) + (1 - y) * math.log(1 - s))

    expected = sum(bce(q[n][k], float(k == 2)) for n in range(2) for k in range(3)) / 6
    torch.testing.assert_close(classification_loss(logits, 2, "bce_on_softmax"), torch.tensor(expected))


def _batch(size=(24, 24), seed=0):
    torch.manual_seed(seed)
    images = torch.rand(2, 3, *size)
    masks = torch.zeros(2, *size)
    masks[0, 5:8, 6:9] = 1
    masks[1, 15:17, 3:5] = 1
    return images, [{"masks": m} for m in masks]


def test_generator_terms_and_each_generator_gets_its_own_gradient():
    model = build_model("mdvsfa", **TINY, lambda_fa=10.0).train()
    images, targets = _batch()
    out = model(images)
    terms = model.compute_loss(out, targets)
    assert set(terms) == {"g1_data", "g1_adv", "g1_consistency", "g2_data", "g2_adv", "g2_consistency"}
    masks = torch.stack([t["masks"] for t in targets])[:, None]
    md1, fa1 = miss_false_terms(out.g1.clamp(0, 1), masks)
    md2, fa2 = miss_false_terms(out.g2.clamp(0, 1), masks)
    torch.testing.assert_close(terms["g1_data"], 100 * (100 * md1 + fa1))
    torch.testing.assert_close(terms["g2_data"], 100 * (md2 + 10 * fa2))
    # D sees the three pairs as one batch (its batch norm); the features of S1 and S2 give GC
    pairs = torch.cat([torch.cat([out.image, 2 * s - 1], 1) for s in (masks, out.g1.clamp(0, 1), out.g2.clamp(0, 1))])
    logits, feats = model.discriminator(pairs)
    gc = ((feats[2:4] - feats[4:6]) ** 2).mean()
    torch.testing.assert_close(terms["g1_consistency"], gc)
    torch.testing.assert_close(terms["g2_consistency"], gc)
    torch.testing.assert_close(terms["g1_adv"], 10 * classification_loss(logits[2:4], 0, "cross_entropy"))
    torch.testing.assert_close(terms["g2_adv"], 10 * classification_loss(logits[4:6], 0, "cross_entropy"))
    # One backward of the sum gives each generator the gradient of its own loss (100 MF + 10 adv + GC)
    # alone, as the authors' separate updates do, although D's batch norm couples S1 and S2.
    for name, generator in (("g1", model.g1), ("g2", model.g2)):
        params = list(generator.parameters())
        total = torch.autograd.grad(sum(terms.values()), params, retain_graph=True)
        own = torch.autograd.grad(sum(v for k, v in terms.items() if k.startswith(name)), params, retain_graph=True)
        for a, b in zip(total, own, strict=True):
            torch.testing.assert_close(a, b)
    # ... and the coupling is real: the other generator's adversarial term does reach G1 through D.
    other = torch.autograd.grad(10 * classification_loss(logits[4:6], 0, "cross_entropy"), list(model.g1.parameters()))
    assert any(g.abs().sum() > 0 for g in other)


@pytest.mark.parametrize("kind", ["cross_entropy", "bce_on_softmax"])
def test_discriminator_three_class_loss(kind):
    model = build_model("mdvsfa", **TINY, adversarial_loss=kind).train()
    images, targets = _batch(seed=1)
    out = model(images)
    disc = model.adversary_loss(out, targets)["disc"]
    masks = torch.stack([t["masks"] for t in targets])[:, None]
    pairs = torch.cat([torch.cat([out.image, 2 * s - 1], 1) for s in (masks, out.g1.clamp(0, 1), out.g2.clamp(0, 1))])
    logits, _ = model.discriminator(pairs)
    expected = sum(classification_loss(logits[2 * k : 2 * k + 2], k, kind) for k in range(3))
    torch.testing.assert_close(disc, expected)
    disc.backward()
    assert all(p.grad is None for p in model.g1.parameters()) and all(p.grad is None for p in model.g2.parameters())
    assert all(p.grad is not None for p in model.discriminator.parameters())


def test_bad_options_are_input_errors():
    from irstd_bench.errors import InputError

    for bad in ({"input_norm": "imagenet"}, {"prior_prob": 0.01}, {"adversarial_loss": "hinge"}, {"g1_width": 0}):
        with pytest.raises(InputError):
            build_model("mdvsfa", **bad)


def test_recipes_apply_and_are_listed():
    assert DEFAULT_RECIPE == "authors" and set(RECIPES) == {"authors", "paper"}
    for name, recipe in RECIPES.items():
        assert set(recipe.train) <= config_fields()
        config, record = apply_recipe(TrainConfig(root="r", model="mdvsfa", recipe=name, model_overrides=TINY), set())
        assert (config.optimizer, config.lr, config.batch, config.weight_decay) == ("adamw", 1e-4, 10, 0.0)
        assert config.model_overrides["g1_width"] == 4 and record["name"] == name
        model = build_model("mdvsfa", **config.model_overrides)
        assert model.adversary_lr_ratio * config.lr == pytest.approx(1e-5) and model.adversary_momentum == 0.5
    assert RECIPES["authors"].model_options["lambda_fa"] == 1.0 and RECIPES["paper"].model_options["lambda_fa"] == 10.0
    assert RECIPES["authors"].train["momentum"] == 0.9
    info = registry_models()["mdvsfa"]
    assert set(info.recipes) == {"authors", "paper"} and info.default_recipe == "authors"


# ---------------------------------------------------------------------- through the engine
SIZES = [(48, 56), (64, 48), (56, 64), (40, 40)]
#: Pixel IoU the engine's validation must reach on the training images themselves. The targets
#: are 1-3 px squares at 250 on noise below 60: an overfit network segments them almost exactly;
#: one missed target or a one-pixel halo around each costs at most ~0.3, an untrained one scores ~0.
IOU_OVERFIT = 0.5
#: Epochs and generator widths of the overfit run. With the 4-wide generators of ``TINY`` and 15 epochs
#: (this test's earlier settings) seed 9 of 0-9 never trained (IoU 0: every clipped output below 0, so
#: no gradient) and the summed supervised loss ended above 0.2 of its start for most seeds; 8-wide
#: generators and 30 epochs reached IoU >= 0.637 for every one of seeds 0-9 (1 thread).
EPOCHS = 30
OVERFIT_MODEL = {**TINY, "g1_width": 8, "g2_width": 8}


@pytest.fixture(scope="module")
def overfit_root(tmp_path_factory):
    """4 images, 3 targets each; ``split_EFLNet`` rewritten so that validation sees the training images."""
    root = make_nuaa_like(tmp_path_factory.mktemp("mdvsfa") / "nuaa_like", SIZES, seed=3, targets_per_image=3)
    _use_training_images_everywhere(root)
    return root


def _use_training_images_everywhere(root) -> None:
    """Rewrite ``root``'s ``split_EFLNet`` so that every part lists the 4 images."""
    stems = "".join(f"Misc_{i + 1}\n" for i in range(len(SIZES)))
    for part in ("train", "val", "test"):
        (root / "split_EFLNet" / f"{part}.txt").write_text(stems)


def _config(root, out, **kw) -> TrainConfig:
    settings = dict(
        root=str(root), dataset="nuaa", split="split_EFLNet", model="mdvsfa", model_overrides=TINY,
        recipe="paper", epochs=EPOCHS, imgsz=64, batch=2, lr=3e-3, device="cpu", out=str(out), workers=0,
        progress=False, val_every=5, grad_clip=10.0,  # clipped (not the recipe's): the margins were set so
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


class Killed(RuntimeError):
    pass


def _kill_after(epoch_index: int):
    def hook(epoch: int, metrics: dict) -> None:
        if epoch == epoch_index:
            raise Killed

    return hook


def _overfit(root, out, seed: int = 0):
    """The ``paper`` recipe (:data:`OVERFIT_MODEL`, lr 3e-3, :data:`EPOCHS`) on the 4 images of ``root``."""
    config = _config(root, out, seed=seed, epochs=EPOCHS, model_overrides=OVERFIT_MODEL)
    return train(config, explicit={"epochs", "imgsz", "batch", "lr", "val_every", "grad_clip"})


def _overfit_outcome(result) -> dict[str, float]:
    """The best pixel IoU, and per generator the best of its last three epochs' supervised (MD/FA) loss
    over its first epoch's: the better generator's (``data_ratio``) and the worse one's (``worse_ratio``).

    The adversarial terms are a game and need not fall; epoch means of 2 batches are noisy as D moves,
    hence the best of the last three epochs.
    """
    ratios = []
    for g in ("g1", "g2"):
        data = [row[f"train/{g}_data"] for row in result.history]
        ratios.append(min(data[-3:]) / data[0])
    return {"data_ratio": min(ratios), "worse_ratio": max(ratios), "iou": result.best_metrics["iou"]}


def outcome_adversarial_overfit(seed: int, work) -> dict[str, float]:
    """:func:`_overfit_outcome` of run ``seed`` on this module's 4-image tree."""
    root = make_nuaa_like(work / "nuaa_like", SIZES, seed=3, targets_per_image=3)
    _use_training_images_everywhere(root)
    return _overfit_outcome(_overfit(root, work / "run", seed))


@pytest.fixture(scope="module")
def overfit_run(overfit_root, tmp_path_factory):
    """``(result, run folder)`` of :func:`_overfit` (seed 0)."""
    out = tmp_path_factory.mktemp("mdvsfa_run") / "run"
    return _overfit(overfit_root, out), out


@pytest.mark.train
def test_adversarial_training_overfits_and_checkpoints_both_optimizers(overfit_run, tmp_path):
    result, run = overfit_run
    first = result.history[0]
    assert {"train/g1_data", "train/g2_data", "train/g1_adv", "train/g2_consistency", "train/disc"} <= set(first)
    # A generator's supervised terms fall clearly and validation segments the targets. Measured over
    # seeds 0-9 x {1, 2} threads (20 runs, 2026-12-07, AMD EPYC): data_ratio 0.000-0.145, IoU 0.6375-1.0
    # (the worse generator's ratio reached 1.0: one of the two may stay dead, so it is not asserted).
    # bench/test_margins.py tests/test_mdvsfa.py::outcome_adversarial_overfit
    outcome = _overfit_outcome(result)
    assert outcome["data_ratio"] < 0.3, result.history
    assert outcome["iou"] > IOU_OVERFIT, result.best_metrics
    ckpt = load_checkpoint(run / "last.pt")
    adversary = ckpt["adversary"]
    assert adversary["scheduler"]["step_count"] == ckpt["scheduler"]["step_count"] == EPOCHS * 2
    n_disc = count_params([build_model("mdvsfa", **OVERFIT_MODEL).discriminator])
    disc_state = adversary["optimizer"]["state"]
    assert sum(s["exp_avg"].numel() for s in disc_state.values()) == n_disc  # Adam moments of D's parameters
    gen_state = ckpt["optimizer"]["state"]
    n_all = count_params([build_model("mdvsfa", **OVERFIT_MODEL)])
    assert sum(s["exp_avg"].numel() for s in gen_state.values()) == n_all - n_disc  # G1 and G2 only
    assert [g["lr"] for g in adversary["optimizer"]["param_groups"]] == pytest.approx([3e-4, 3e-4])  # 0.1 x lr
    released = release_checkpoint(run / "last.pt", tmp_path / "released.pt")
    assert released["adversary"] is None and released["optimizer"] is None


@pytest.mark.train
def test_predict_and_eval_score_like_validation(overfit_run, overfit_root, tmp_path):
    """``predict`` (eval-mode forward: the fused map) and ``eval`` give the validation's numbers."""
    _, run = overfit_run
    preds = tmp_path / "maps"
    run_cli("predict", "--model", "mdvsfa", "--weights", run, "--dataset", "nuaa", "--root", overfit_root,
            "--split", "split_EFLNet/val", "--out", preds, "--format", "scoremaps", "--device", "cpu")
    res = _eval(preds, overfit_root, "split_EFLNet/val", tmp_path / "eval.json")
    best = load_checkpoint(run / "best.pt")["metrics"]
    for key in ("f1", "iou", "pd"):
        assert res["metrics"][key] == pytest.approx(best[key], abs=1e-12), key


@pytest.mark.train
def test_resume_is_bit_exact_and_needs_the_discriminator_state(overfit_root, tmp_path):
    explicit = {"epochs", "imgsz", "batch", "lr", "val_every"}
    short = {"epochs": 3, "val_every": 1}
    # the uninterrupted run through the command line, the interrupted one through the library
    args = [f"--model-arg={k}={v}" for k, v in TINY.items()]
    run_cli("train", "--root", overfit_root, "--dataset", "nuaa", "--split", "split_EFLNet", "--model", "mdvsfa",
            "--recipe", "paper", *args, "--epochs", 3, "--imgsz", 64, "--batch", 2, "--lr", 3e-3, "--val-every", 1,
            "--device", "cpu", "--out", tmp_path / "whole", "--workers", 0, "--no-progress")
    with pytest.raises(Killed):
        train(_config(overfit_root, tmp_path / "cut", **short), explicit=explicit, on_epoch_end=_kill_after(0))
    resumed = train(TrainConfig(resume=str(tmp_path / "cut"), progress=False))
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "cut" / "last.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for key, value in a["adversary"]["optimizer"]["state"].items():
        assert torch.equal(value["exp_avg"], b["adversary"]["optimizer"]["state"][key]["exp_avg"])
    strip = [{k: v for k, v in row.items() if k not in ("time_s", "cpu_s")} for row in a["history"]]
    assert strip == [{k: v for k, v in row.items() if k not in ("time_s", "cpu_s")} for row in resumed.history]
    assert a["recipe"]["name"] == "paper" and a["model_config"]["g1_width"] == 4
    # a checkpoint without the discriminator's optimizer cannot resume an adversarial run
    from irstd_bench.errors import InputError
    from reference_model.engine.checkpoint import save_checkpoint

    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    ckpt["epoch"] = 1
    del ckpt["adversary"]
    save_checkpoint(tmp_path / "cut" / "last.pt", ckpt)
    with pytest.raises(InputError, match="discriminator optimizer"):
        train(TrainConfig(resume=str(tmp_path / "cut"), progress=False))


def test_gradient_accumulation_is_refused(overfit_root, tmp_path):
    from irstd_bench.errors import InputError

    with pytest.raises(InputError, match="adversarially"):
        train(
            _config(overfit_root, tmp_path / "acc", epochs=1, nominal_batch=8),
            explicit={"nominal_batch", "epochs", "batch", "imgsz"},
        )
    assert not (tmp_path / "acc" / "last.pt").exists()
