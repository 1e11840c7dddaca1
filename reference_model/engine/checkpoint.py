"""Checkpoints: atomic writing, checked reading, model rebuilding and bundled weight names.

A checkpoint is a ``torch.save`` dict that loads with ``weights_only=True`` (tensors, numbers,
strings, lists and dicts only; RNG states are stored as tensors and lists):

==================  ============================================================================
``format``          :data:`CHECKPOINT_FORMAT`; ``version``: :data:`CHECKPOINT_VERSION`
``model_name``      registry name (``eflnet-n``) or ``module:builder`` of a custom model (honoured
                    only when the user names the same builder again: see :func:`checked_model_name`)
``model_config``    the model's ``config``: ``build_model(model_name, **model_config)`` rebuilds it
``task``            ``detect`` or ``segment``
``input_size``      training input side, px (default of ``predict --imgsz``)
``model``           state dict of the trained model (buffers included: EFLNet's ATFL state)
``ema``             :class:`~.ema.ModelEMA` state (``None`` without EMA); its weights are the
                    ones validated and used by ``predict``
``optimizer``, ``scheduler``, ``scaler``     training state (``None`` in released weights)
``adversary``       adversarial models only: ``{"optimizer", "scheduler"}`` of the discriminator
``epoch``           epochs completed; ``best_fitness``: best validation fitness so far
``metrics``         validation metrics of the last validation; ``history``: results.csv rows
``rng``             python / numpy / torch (/ cuda) generator states
``train_args``      the run's settings (as in ``args.json``); ``predict`` letterboxes with its
                    ``pad_value`` and keeps its ``max_det`` detections per image
==================  ============================================================================
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

import irstd_bench
from irstd_bench._io import atomic_path
from irstd_bench.errors import InputError

CHECKPOINT_FORMAT = "irstd-bench/checkpoint"
CHECKPOINT_VERSION = 1

#: Where bundled weights live: ``irstd_bench/weights/<name>.pt``.
BUNDLED_WEIGHTS_DIR = Path(irstd_bench.__file__).resolve().parent / "weights"

#: How many mismatching state-dict keys an error message names.
KEYS_IN_MESSAGE = 3


def save_checkpoint(path: str | Path, checkpoint: dict) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a failure leaves the previous file intact."""
    with atomic_path(Path(path), suffix=".tmp") as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Read and check a checkpoint written by :func:`save_checkpoint` (on the CPU).

    Raises :class:`InputError` for a missing, unreadable, corrupt or foreign file.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a checkpoint file (for a run folder use its last.pt)")
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"{path}: corrupt or unreadable checkpoint ({reason[:160]})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an irstd-bench checkpoint (no format {CHECKPOINT_FORMAT!r})")
    version = checkpoint.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError(f"{path}: checkpoint version {version!r} is not an integer")
    if version > CHECKPOINT_VERSION:
        raise InputError(
            f"{path}: checkpoint version {checkpoint.get('version')} is newer than this irstd-bench "
            f"supports ({CHECKPOINT_VERSION})"
        )
    for key in ("model_name", "model_config", "model"):
        if key not in checkpoint:
            raise InputError(f"{path}: checkpoint lacks {key!r}")
    if not isinstance(checkpoint["model_name"], str) or not checkpoint["model_name"]:
        raise InputError(f"{path}: checkpoint model_name {checkpoint['model_name']!r} is not a model name")
    if not isinstance(checkpoint["model_config"], dict) or not all(
        isinstance(k, str) for k in checkpoint["model_config"]
    ):
        raise InputError(f"{path}: checkpoint model_config is not a mapping of keyword names")
    _check_fields(checkpoint, path)
    return checkpoint


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _check_fields(checkpoint: dict, path: Path) -> None:
    """The types of the fields irstd-bench reads back, so a crafted or damaged file fails here,
    by name, instead of deep inside model building, prediction or resuming."""
    from .transforms import check_input_size

    if not _is_state_dict(checkpoint["model"]):
        raise InputError(f"{path}: checkpoint 'model' is not a state dict (names -> tensors)")
    ema = checkpoint.get("ema")
    if ema is not None and not (isinstance(ema, dict) and _is_state_dict(ema.get("module"))):
        raise InputError(f"{path}: checkpoint 'ema' is neither null nor an EMA state with a 'module' state dict")
    task = checkpoint.get("task")
    if task is not None and task not in ("detect", "segment"):
        raise InputError(f"{path}: checkpoint task {task!r:.40} is neither 'detect' nor 'segment'")
    size = checkpoint.get("input_size")
    if size is not None:
        try:
            check_input_size(size)
        except ValueError as exc:
            raise InputError(f"{path}: checkpoint input_size: {exc}") from None
    for key in ("train_args", "metrics", "best_metrics"):
        if checkpoint.get(key) is not None and not isinstance(checkpoint[key], dict):
            raise InputError(f"{path}: checkpoint {key!r} is not a mapping")
    epoch = checkpoint.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0):
        raise InputError(f"{path}: checkpoint epoch {epoch!r:.40} is not a count of epochs")


def checked_model_name(checkpoint: dict, source: str | Path, cli_model: str | None = None) -> str:
    """The model name of a checkpoint, once it is safe to build: a file never chooses code to run.

    A checkpoint may name a model of the registry (``eflnet-n``: the code that builds it ships
    with irstd-bench). It may also name a custom builder ``package.module:function``, but that
    name is honoured only when the user typed the very same string on the command line
    (``cli_model``, from ``--model``): otherwise a crafted ``.pt`` naming ``os:system`` would run
    a command. The check compares strings only, before anything is imported.

    Raises :class:`InputError` (one line naming the file and the name) otherwise.
    """
    from reference_model.registry import MODELS

    name = checkpoint["model_name"]
    if cli_model and cli_model != name:
        raise InputError(f"--model {cli_model}: {source} is a checkpoint of {name} (checkpoint of another model)")
    if name in MODELS or cli_model == name:
        return name
    if ":" in name:
        raise InputError(
            f"{source}: checkpoint names the custom builder {name!r}; it is imported only when given on "
            f"the command line (--model {name})"
        )
    raise InputError(f"{source}: checkpoint names model {name!r}, which is not in the registry ({', '.join(MODELS)})")


def resolve_weights(spec: str | Path, *, option: str = "--weights") -> Path:
    """A checkpoint path from ``--weights``: a file, a run folder (its ``best.pt``) or a bundled name.

    Bundled names are the files ``irstd_bench/weights/<name>.pt`` (e.g. ``nuaa-eflnet-n``);
    ``option`` is the option named when nothing is found (``eval --config-from`` reads weights too).
    """
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path}: run folder has neither best.pt nor last.pt")
    bundled = BUNDLED_WEIGHTS_DIR / f"{spec}.pt"
    if bundled.is_file():
        return bundled
    names = sorted(p.stem for p in BUNDLED_WEIGHTS_DIR.glob("*.pt")) if BUNDLED_WEIGHTS_DIR.is_dir() else []
    raise InputError(
        f"{option} {spec}: no such file and no bundled weights of that name "
        f"(bundled: {', '.join(names) or 'none installed'})"
    )


def model_builder(name: str):
    """The builder of a model name: a registry name, or ``package.module:function`` for a custom model."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise InputError(f"model {name!r}: cannot import module {module_name!r} ({exc})") from None
        builder = getattr(module, attr, None)
        if builder is None or not callable(builder):
            raise InputError(f"model {name!r}: module {module_name!r} has no builder {attr!r}")
        return builder
    from reference_model.registry import MODELS, build_model

    if name not in MODELS:
        raise InputError(f"unknown model {name!r} (known: {', '.join(MODELS)}, or module:builder)")
    return lambda **kw: build_model(name, **kw)


#: What a builder raises for a keyword value of the wrong type or size.
_BAD_CONFIG_ERRORS = (TypeError, ValueError, RuntimeError, OverflowError, IndexError, KeyError, AttributeError)


def build_named_model(name: str, **config) -> nn.Module:
    """Build a model by name with builder keywords; a bad keyword or value raises :class:`InputError`."""
    builder = model_builder(name)
    try:
        model = builder(**config)
    except InputError:
        raise
    except _BAD_CONFIG_ERRORS as exc:  # a value of the wrong type or size (torch says RuntimeError)
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
        raise InputError(f"model {name!r}: {reason}") from None
    for attr in ("task", "config", "compute_loss", "postprocess"):
        if not hasattr(model, attr):
            raise InputError(f"model {name!r} does not follow the Models protocol (no {attr!r})")
    if model.task not in ("detect", "segment"):
        raise InputError(f"model {name!r}: task must be 'detect' or 'segment', got {model.task!r}")
    model.model_name = name
    return model


def load_model_state(model: nn.Module, state: dict, source: str | Path) -> None:
    """``model.load_state_dict(state)`` with a one-line :class:`InputError` on a key/shape mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", shapes)):
            if keys:
                parts.append(
                    f"{label}: {', '.join(keys[:KEYS_IN_MESSAGE])}{' ...' if len(keys) > KEYS_IN_MESSAGE else ''}"
                )
        raise InputError(
            f"{source}: weights do not fit model {getattr(model, 'model_name', type(model).__name__)} "
            f"(checkpoint of another model? {'; '.join(parts)})"
        )
    model.load_state_dict(state)


def model_from_checkpoint(
    checkpoint: dict, source: str | Path, *, prefer_ema: bool = True, cli_model: str | None = None
) -> nn.Module:
    """Rebuild the checkpoint's model and load its weights (the EMA ones when present and preferred).

    ``cli_model`` is the ``--model`` the user typed, if any: a checkpoint naming a custom builder
    (``module:function``) is rebuilt only when it equals that name (:func:`checked_model_name`).
    """
    name = checked_model_name(checkpoint, source, cli_model)
    model = build_named_model(name, **dict(checkpoint["model_config"]))
    ema = checkpoint.get("ema")
    state = ema["module"] if (prefer_ema and ema) else checkpoint["model"]
    load_model_state(model, state, source)
    return model


def release_checkpoint(source: str | Path, target: str | Path, *, half: bool = False) -> dict:
    """Write released weights of a training checkpoint: the validated (EMA) weights and metadata only.

    Optimizer, scheduler, scaler, EMA copy and RNG states are dropped (``None``), so the file is
    about a third of a training checkpoint; it loads with :func:`model_from_checkpoint` and
    ``irstd-bench predict --weights``, but cannot resume training. ``half`` stores float tensors
    as float16 (half the size again; ``load_state_dict`` casts them back to the model's float32).
    Used by ``irstd-bench reproduce`` to pack small models.
    """
    checkpoint = load_checkpoint(source)
    ema = checkpoint.get("ema")
    state = dict(ema["module"] if ema else checkpoint["model"])
    if half:
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    released = {
        **checkpoint,
        "model": state,
        "ema": None,
        "optimizer": None,
        "scheduler": None,
        "scaler": None,
        "rng": None,
        "released": True,
    }
    if "adversary" in checkpoint:  # an adversarial model's discriminator optimizer
        released["adversary"] = None
    save_checkpoint(target, released)
    return released


# --------------------------------------------------------------------------------------------
# Random generator states (stored as tensors and lists so weights_only loading accepts them)


def rng_state() -> dict:
    """The states of python's, numpy's and torch's global generators (and CUDA's, when present)."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np.asarray(np_keys, np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` returned."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        (nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda_states)
