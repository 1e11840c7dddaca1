"""Run a classical method over the images of a dataset split and write prediction files.

Output folder, one sub-folder per kind so that each is one ``irstd-bench eval`` input (the
evaluator refuses a folder with two files for one image):

- ``scoremaps/<stem>.npy``: float32 ``(H, W)`` score map, native image size, normalised per image to
  [0, 1] by min-max (``(s - min) / (max - min)``; a constant map becomes all zeros). Scores are
  therefore comparable within an image but not across images.
- ``masks/<stem>.png``: 8-bit mask {0, 255}: pixels whose normalised score exceeds
  ``mean + k * std`` of that image's score map (Otsu-free adaptive threshold as used with
  LCM/MPCM; an all-constant map gives an empty mask).

The folder is built in a temporary sibling and moved into place at the end, so an error
leaves no partial output.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from irstd_bench._io import read_gray
from irstd_bench._outputs import check_folder_replaceable, output_folder
from irstd_bench._progress import progress_bar
from irstd_bench.errors import InputError
from reference_model.classical._registry import get_method

SAVE_KINDS = ("scoremaps", "masks")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def image_to_unit(image: np.ndarray) -> np.ndarray:
    """Scale a decoded image to float64 in [0, 1] by its dtype's range (uint8: /255, uint16: /65535)."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float64) / 65535.0
    image = image.astype(np.float64)
    top = image.max()
    return image / top if top > 0 else image


def normalize_score_map(score: np.ndarray) -> np.ndarray:
    """Per-image min-max normalisation to [0, 1], float32; a constant map becomes zeros."""
    score = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(score.min()), float(score.max())
    if hi <= lo:
        return np.zeros(score.shape, dtype=np.float32)
    return ((score - lo) / (hi - lo)).astype(np.float32)


def adaptive_threshold(score: np.ndarray, k: float = 3.0) -> np.ndarray:
    """Binary mask ``score > mean + k * std`` (bool ``(H, W)``); empty for a constant map."""
    score = np.asarray(score, dtype=np.float64)
    std = float(score.std())
    if std == 0.0:
        return np.zeros(score.shape, dtype=bool)
    return score > float(score.mean()) + k * std


def _process(job: tuple) -> tuple[str, float]:
    method_name, params, stem, image_path, out_dir, k, save = job
    start = time.perf_counter()
    image = image_to_unit(read_gray(Path(image_path)))
    score = normalize_score_map(get_method(method_name)(image, **params))
    out_dir = Path(out_dir)
    if "scoremaps" in save:
        np.save(out_dir / "scoremaps" / f"{stem}.npy", score)
    if "masks" in save:
        mask = adaptive_threshold(score, k).astype(np.uint8) * 255
        Image.fromarray(mask).save(out_dir / "masks" / f"{stem}.png")
    return stem, time.perf_counter() - start


@dataclass
class BaselineRun:
    """What a run did: ``images``, wall ``seconds``, ``workers``; ``images_per_s`` derived."""

    method: str
    images: int
    seconds: float
    workers: int

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


def parse_save(save: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"scoremaps,masks"`` -> ``("scoremaps", "masks")``; raises on unknown kinds."""
    items = save.split(",") if isinstance(save, str) else list(save)
    kinds = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    bad = [s for s in kinds if s not in SAVE_KINDS]
    if bad or not kinds:
        raise InputError(f"--save {save!r}: choose one or both of {', '.join(SAVE_KINDS)}")
    return kinds


def run_baseline(
    method: str,
    images: list[tuple[str, Path]],
    out: Path,
    *,
    k: float = 3.0,
    workers: int = 1,
    save=SAVE_KINDS,
    params: dict | None = None,
    force: bool = False,
    inputs=(),
    progress: bool = False,
) -> BaselineRun:
    """Run ``method`` on ``images`` (``[(stem, image_path), ...]``).

    Writes ``out/scoremaps/<stem>.npy`` and/or ``out/masks/<stem>.png`` (see the module docstring).

    Parameters
    ----------
    method : str
        Registry name (see :data:`reference_model.classical.METHODS`).
    images : list of (stem, path)
    out : path
        Output folder, built whole or not at all (:func:`irstd_bench._outputs.output_folder`):
        an earlier irstd-bench output there is replaced only with ``force``; anything else, or
        an ``out`` that is or holds one of ``inputs`` (``(label, path)`` pairs), is refused.
    k : float
        Threshold ``mean + k * std`` for the masks.
    workers : int
        Processes (``1``: run in this process). Each worker uses one BLAS thread.
    save : "scoremaps,masks" or a sequence of those
    params : dict
        Method parameters overriding the registry defaults.
    progress : bool
        A progress bar on stderr (:func:`irstd_bench._progress.progress_bar`).
    """
    spec = get_method(method)
    params = dict(params or {})
    spec.check_params(params)
    save = parse_save(save)
    if not np.isfinite(k):
        raise InputError(f"--k must be finite, got {k}")
    if isinstance(workers, bool) or int(workers) < 1:
        raise InputError(f"--workers must be >= 1, got {workers}")
    if not images:
        raise InputError("no images to process (empty split)")
    out = Path(out)
    claim = check_folder_replaceable(out, force=force)  # checked again when written
    workers = min(int(workers), len(images))
    start = time.perf_counter()
    with output_folder(out, f"baseline {spec.name}", force=force, inputs=inputs, claim=claim) as tmp:
        for kind in save:
            (tmp / kind).mkdir()
        jobs = [(spec.name, params, stem, str(path), str(tmp), float(k), save) for stem, path in images]
        with progress_bar(len(jobs), spec.name, enabled=progress) as bar:
            if workers == 1:
                for job in jobs:
                    _process(job)
                    bar.update(1)
            else:
                saved = {v: os.environ.get(v) for v in _THREAD_VARS}
                os.environ.update({v: "1" for v in _THREAD_VARS})  # inherited by the spawned workers
                try:
                    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                        for _ in pool.map(_process, jobs, chunksize=max(1, len(jobs) // (4 * workers))):
                            bar.update(1)
                finally:
                    for var, value in saved.items():
                        if value is None:
                            os.environ.pop(var, None)
                        else:
                            os.environ[var] = value
    return BaselineRun(
        method=spec.name, images=len(images), seconds=time.perf_counter() - start, workers=workers
    )
