"""The synthetic sample: images, exact masks, split files and a record of every target.

Randomness comes only from :class:`numpy.random.Generator` streams derived from the seed with
:class:`numpy.random.SeedSequence`: image ``i`` uses the stream ``(seed, IMAGE_STREAM, i)``,
so it does not depend on how many images are generated; which images are background-only
and the split membership use their own streams.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from irstd_bench import __version__
from irstd_bench._outputs import Claim, check_folder_replaceable, output_folder
from irstd_bench.errors import InputError
from irstd_bench.synth._background import Distractor, render_background
from irstd_bench.synth._targets import (
    MASK_FRACTION,
    SCR_MARGIN_PX,
    TAIL_CUTOFF,
    PlacedTarget,
    local_background_box,
    place_targets,
)
from irstd_bench.targets import pixel_centroids

SCHEMA = "irstd-bench/synth"
SCHEMA_VERSION = 1
#: File recording every generated target; its presence marks a folder as a synth output.
RECORD_NAME = "synth_targets.json"
#: The NUDT-SIRST release's split family (two parts) and the 3-way family for training.
HALF_SPLIT_FAMILY = "50_50"
TRAINING_SPLIT_FAMILY = "split_synth"
#: Fractions of the 3-way split going to validation and test (the rest is training).
VAL_FRACTION = 0.2
TEST_FRACTION = 0.2

MIN_SIZE = 32
MAX_SIZE = 2048
MAX_IMAGES = 999_999  # stems have six digits, like the release's 000001..001327
MAX_TARGETS_LIMIT = 64
DEFAULT_N_IMAGES = 64
DEFAULT_SIZE = 256
DEFAULT_MAX_TARGETS = 4
DEFAULT_SCR = (2.5, 10.0)
DEFAULT_MAX_AREA_PX = 80
DEFAULT_EMPTY_FRACTION = 0.2

# Independent random streams under one seed.
IMAGE_STREAM = 0
SENSOR_STREAM = 1
LAYOUT_STREAM = 2
SPLIT_STREAM = 3

MASK_RULE = (
    f"A pixel is in a target's mask when the target adds at least {MASK_FRACTION:g} of its peak added "
    f"intensity there (profile sampled at pixel centres, peak pixel = 1); profile values below "
    f"{TAIL_CUTOFF:g} are zero and the rest form the support_box. SCR = (I[peak] - mean(B)) / std(B) "
    f"on the 8-bit image, B = support_box grown by {SCR_MARGIN_PX} px (clipped to the image) minus the "
    f"support_box; support boxes of two targets are at least {SCR_MARGIN_PX} px apart."
)


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


@dataclass
class SynthTarget:
    """One generated target, measured on its own mask (not through ``mask_to_targets``).

    Attributes
    ----------
    box : (x0, y0, x1, y1)
        Mask bounding box, px, pixel-edge convention.
    area_px : int
    centroid : (x, y)
        Mean pixel centre of the mask, px.
    peak : (x, y)
        Column and row of the peak pixel.
    support_box : (x0, y0, x1, y1)
        Where the target adds anything to the image, px.
    scr : float
        Realised signal-to-clutter ratio on the 8-bit image (module docstring of
        ``irstd_bench.synth._targets``).
    scr_design : float
    amplitude : float
        Peak added intensity, gray levels (before rounding).
    shape : str
        ``point``, ``ellipse`` or ``flat``.
    sigma : (major, minor)
        Shape widths, px.
    angle_deg : float
    """

    box: tuple[int, int, int, int]
    area_px: int
    centroid: tuple[float, float]
    peak: tuple[int, int]
    support_box: tuple[int, int, int, int]
    scr: float
    scr_design: float
    amplitude: float
    shape: str
    sigma: tuple[float, float]
    angle_deg: float

    def to_dict(self) -> dict:
        return {
            "box": list(self.box),
            "area_px": self.area_px,
            "centroid": [round(c, 6) for c in self.centroid],
            "peak": list(self.peak),
            "support_box": list(self.support_box),
            "scr": round(self.scr, 6),
            "scr_design": round(self.scr_design, 6),
            "amplitude": round(self.amplitude, 4),
            "shape": self.shape,
            "sigma": [round(s, 4) for s in self.sigma],
            "angle_deg": round(self.angle_deg, 3),
        }


@dataclass
class SynthImage:
    """One generated image and its ground truth.

    Attributes
    ----------
    image : ndarray (H, W), uint8
    mask : ndarray (H, W), uint8
        ``{0, 255}``.
    targets : list of SynthTarget
        In the order :func:`irstd_bench.targets.mask_to_targets` labels them (raster order of
        each mask's first pixel).
    scene : str
        ``sky``, ``sea`` or ``ground``.
    distractors : tuple of Distractor
    """

    image: np.ndarray
    mask: np.ndarray
    targets: list[SynthTarget]
    scene: str
    distractors: tuple[Distractor, ...] = field(default=())


def _measure(placed: PlacedTarget, image: np.ndarray, occupied: np.ndarray) -> tuple[SynthTarget, tuple]:
    oy, ox = placed.origin
    rows, cols = np.nonzero(placed.profile.mask)
    rows, cols = rows + oy, cols + ox
    x0, y0, x1, y1 = local_background_box(placed.support_box, image.shape)
    ring = image[y0:y1, x0:x1][~occupied[y0:y1, x0:x1]].astype(np.float64)
    px, py = placed.peak_xy
    scr = (float(image[py, px]) - ring.mean()) / ring.std()
    target = SynthTarget(
        box=(int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1),
        area_px=int(rows.size),
        centroid=tuple(float(v) for v in pixel_centroids(np.ones(rows.size, np.int64), rows, cols, 1)[0]),
        peak=(int(px), int(py)),
        support_box=tuple(int(v) for v in placed.support_box),
        scr=float(scr),
        scr_design=placed.scr_design,
        amplitude=placed.amplitude,
        shape=placed.shape.kind,
        sigma=(placed.shape.sigma_major, placed.shape.sigma_minor),
        angle_deg=float(np.degrees(placed.shape.angle)),
    )
    # np.nonzero is in raster order, so its first pixel is the one ndimage.label meets first.
    return target, (int(rows[0]), int(cols[0]))


def generate_image(
    seed: int,
    index: int,
    n_targets: int,
    *,
    size: int = DEFAULT_SIZE,
    scr: tuple[float, float] = DEFAULT_SCR,
    max_area_px: int = DEFAULT_MAX_AREA_PX,
) -> SynthImage:
    """Generate image ``index`` of the data set of ``seed`` in memory.

    Parameters
    ----------
    seed, index : int
        Together they fix the image (for given other arguments).
    n_targets : int
        Targets asked for; fewer are placed when the image has no room or no position keeps
        the peak below saturation (the returned ``targets`` says how many).
    size : int
        Image side, px.
    scr : (low, high)
        Range of the per-target signal-to-clutter ratio.
    max_area_px : int
        Largest mask area of a target, px.

    Returns
    -------
    SynthImage
    """
    pattern = _stream(seed, SENSOR_STREAM).standard_normal(size)
    rng = _stream(seed, IMAGE_STREAM, index)
    background = render_background(rng, size, pattern)
    placed = place_targets(rng, background.image, n_targets, scr, max_area_px)

    added = np.zeros((size, size))
    mask = np.zeros((size, size), dtype=bool)
    occupied = np.zeros((size, size), dtype=bool)
    for target in placed:
        oy, ox = target.origin
        ph, pw = target.profile.values.shape
        window = (slice(oy, oy + ph), slice(ox, ox + pw))
        added[window] += target.amplitude * target.profile.values
        mask[window] |= target.profile.mask
        occupied[window] = True
    image = np.clip(np.rint(background.image + added), 0, 255).astype(np.uint8)
    measured = sorted((_measure(t, image, occupied) for t in placed), key=lambda pair: pair[1])
    return SynthImage(
        image=image,
        mask=mask.astype(np.uint8) * 255,
        targets=[t for t, _ in measured],
        scene=background.scene,
        distractors=background.distractors,
    )


@dataclass
class SynthSummary:
    """What :func:`generate_sample` wrote.

    Attributes
    ----------
    out_dir : Path
    n_images, n_targets, n_background_only : int
    size : int
        Image side, px.
    seed : int
    splits : dict
        Split name (``50_50/train``, ``split_synth/val``...) -> number of images.
    """

    out_dir: Path
    n_images: int
    n_targets: int
    n_background_only: int
    size: int
    seed: int
    splits: dict[str, int]

    def line(self) -> str:
        """One-line human summary."""
        return (
            f"synth: {self.n_images} images ({self.size}x{self.size}), {self.n_targets} targets, "
            f"{self.n_background_only} background-only images, seed {self.seed} -> {self.out_dir}"
        )


def parse_scr(text: str) -> tuple[float, float]:
    """Parse ``"LOW:HIGH"``, ``"LOW,HIGH"`` or a single value into an SCR range."""
    parts = str(text).replace(",", ":").split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--scr {text!r}: expected LOW:HIGH or a single number") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise InputError(f"--scr {text!r}: expected LOW:HIGH or a single number")
    return _check_scr((values[0], values[1]))


def _check_scr(scr) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in scr)
    except (TypeError, ValueError):
        raise InputError(f"scr {scr!r}: expected a (low, high) pair of numbers") from None
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low <= high <= 100):
        raise InputError(f"scr range {low:g}:{high:g}: need 0 < low <= high <= 100")
    return low, high


def is_synth_output(path: Path) -> bool:
    """True when ``path`` is a folder written by :func:`generate_sample`."""
    record = Path(path) / RECORD_NAME
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("schema") == SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def _check_out(out: Path, force: bool) -> Claim:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    cwd, resolved = Path.cwd().resolve(), out.resolve()
    if out.exists() and (resolved == cwd or resolved in cwd.parents):
        raise InputError(f"{out}: refusing to replace the current folder or one of its parents")
    return check_folder_replaceable(out, force=force)  # only an irstd-bench output, and only with --force


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _split_text(stems: list[str]) -> bytes:
    # CRLF line ends, a line end after the last entry: as in the NUDT-SIRST release.
    return "".join(f"{s}\r\n" for s in sorted(stems)).encode("ascii")


def _splits(stems: list[str], seed: int) -> dict[str, list[str]]:
    order = [stems[i] for i in _stream(seed, SPLIT_STREAM).permutation(len(stems))]
    n = len(order)
    n_train_half = n // 2
    n_val = max(1, round(VAL_FRACTION * n)) if n >= 3 else 0
    n_test = max(1, round(TEST_FRACTION * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    parts = {
        f"{HALF_SPLIT_FAMILY}/train": order[:n_train_half],
        f"{HALF_SPLIT_FAMILY}/test": order[n_train_half:],
        f"{TRAINING_SPLIT_FAMILY}/train": order[:n_train],
        f"{TRAINING_SPLIT_FAMILY}/val": order[n_train : n_train + n_val],
        f"{TRAINING_SPLIT_FAMILY}/test": order[n_train + n_val :],
    }
    # A split file is never empty (an empty one is an error for readers); tiny sets lack some.
    return {name: members for name, members in parts.items() if members}


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} {value!r}: expected an integer")
    if not low <= value <= high:
        raise InputError(f"{name} {value}: must be between {low} and {high}")
    return int(value)


def generate_sample(
    out_dir: str | Path = "synth_sample",
    *,
    n_images: int = DEFAULT_N_IMAGES,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    max_targets: int = DEFAULT_MAX_TARGETS,
    scr: tuple[float, float] = DEFAULT_SCR,
    max_area_px: int = DEFAULT_MAX_AREA_PX,
    empty_fraction: float = DEFAULT_EMPTY_FRACTION,
    force: bool = False,
) -> SynthSummary:
    """Write a synthetic SIRST-like data set in the NUDT-SIRST release layout.

    ``out_dir`` receives ``images/<stem>.png`` (8-bit gray), ``masks/<stem>.png`` ({0, 255},
    same name), ``50_50/{train,test}.txt`` and ``split_synth/{train,val,test}.txt`` (CRLF, one
    stem a line), and ``synth_targets.json`` (every target's box, area, centroid, peak,
    support box and SCR; see ``MASK_RULE``). Stems are ``000001``, ``000002``, ... The output
    is bit-identical for the same arguments; the folder is written atomically.

    Parameters
    ----------
    out_dir : path
        Must not exist or be empty; an earlier irstd-bench output is replaced only with ``force``
        (:func:`irstd_bench._outputs.output_folder`), anything else is refused.
    n_images : int
        Number of images (>= 1).
    size : int
        Image side in px (32..2048); images are square.
    seed : int
        Non-negative.
    max_targets : int
        Most targets asked for in one image (0..64); each image that is not background-only
        asks for 1..max_targets (uniform), and gets fewer where no room is left.
    scr : (low, high)
        Per-target signal-to-clutter ratio range, ``0 < low <= high``.
    max_area_px : int
        Largest target mask area, px (1..400).
    empty_fraction : float
        Fraction of images drawn as background-only (rounded to a whole number of images).
    force : bool
        Replace an earlier irstd-bench output at ``out_dir`` (only files irstd-bench wrote).

    Returns
    -------
    SynthSummary

    Raises
    ------
    InputError
        For an argument out of range or an ``out_dir`` that may not be replaced.
    """
    n_images = _check_int("n-images", n_images, 1, MAX_IMAGES)
    size = _check_int("size", size, MIN_SIZE, MAX_SIZE)
    seed = _check_int("seed", seed, 0, 2**63 - 1)
    max_targets = _check_int("max-targets", max_targets, 0, MAX_TARGETS_LIMIT)
    max_area_px = _check_int("max-area", max_area_px, 1, 400)
    scr = _check_scr(scr)
    if not (isinstance(empty_fraction, (int, float)) and 0.0 <= empty_fraction <= 1.0):
        raise InputError(f"empty-fraction {empty_fraction!r}: must be between 0 and 1")
    out = Path(out_dir)
    claim = _check_out(out, force)  # checked again when written

    layout_rng = _stream(seed, LAYOUT_STREAM)
    n_empty = n_images if max_targets == 0 else int(round(empty_fraction * n_images))
    requested = layout_rng.integers(1, max(max_targets, 1) + 1, size=n_images)
    requested[layout_rng.permutation(n_images)[:n_empty]] = 0

    stems = [f"{i + 1:06d}" for i in range(n_images)]
    records: dict[str, dict] = {}
    n_targets = n_background_only = 0
    splits = _splits(stems, seed)
    with output_folder(out, "synth", force=force, claim=claim) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for index, stem in enumerate(stems):
            sample = generate_image(
                seed, index, int(requested[index]), size=size, scr=scr, max_area_px=max_area_px
            )
            (tmp / "images" / f"{stem}.png").write_bytes(_png_bytes(sample.image))
            (tmp / "masks" / f"{stem}.png").write_bytes(_png_bytes(sample.mask))
            n_targets += len(sample.targets)
            n_background_only += not sample.targets
            records[stem] = {
                "scene": sample.scene,
                "size": [size, size],
                "targets_requested": int(requested[index]),
                "targets": [t.to_dict() for t in sample.targets],
                "distractors": [
                    {"kind": d.kind, "box": list(d.box), "amplitude": round(d.amplitude, 4)}
                    for d in sample.distractors
                ],
            }
        for name, members in splits.items():
            path = tmp / f"{name}.txt"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(_split_text(members))
        record = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "irstd_bench_version": __version__,
            "layout": "nudt",
            "generator": {
                "seed": seed,
                "n_images": n_images,
                "size": size,
                "max_targets": max_targets,
                "scr": list(scr),
                "max_area_px": max_area_px,
                "empty_fraction": float(empty_fraction),
            },
            "mask_rule": MASK_RULE,
            "counts": {"images": n_images, "targets": n_targets, "background_only_images": n_background_only},
            "splits": {name: len(members) for name, members in splits.items()},
            "images": records,
        }
        text = json.dumps(record, sort_keys=True, indent=1) + "\n"
        (tmp / RECORD_NAME).write_text(text, encoding="utf-8", newline="\n")
    return SynthSummary(
        out_dir=out.resolve(),
        n_images=n_images,
        n_targets=n_targets,
        n_background_only=n_background_only,
        size=size,
        seed=seed,
        splits={name: len(members) for name, members in splits.items()},
    )
