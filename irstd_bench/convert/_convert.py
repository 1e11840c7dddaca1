"""``convert_dataset``: a dataset's masks -> COCO, YOLO and Pascal VOC boxes, plus a summary."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

from irstd_bench import __version__
from irstd_bench._outputs import check_folder_replaceable, output_folder, refuse_inside_inputs
from irstd_bench._progress import progress_bar
from irstd_bench.convert import _coco, _voc, _yolo
from irstd_bench.convert._records import ConvertSettings, ImageRecord, convert_chunk
from irstd_bench.convert._summary import defects_report, split_file_name, split_statistics
from irstd_bench.datasets import Dataset, Sample, dataset_image_ids, open_dataset
from irstd_bench.errors import DatasetDefectWarning, InputError
from irstd_bench.targets import CONNECTIVITY_STRUCTURES, DEFAULT_CONNECTIVITY, DEFAULT_THRESHOLD, check_threshold

#: Output formats, in the order they are written.
FORMATS = ("coco", "yolo", "voc")
SUMMARY_SCHEMA = "irstd-bench/convert-summary"
SUMMARY_FILE = "summary.json"
#: Below this many images the work is done in-process: starting workers would cost more.
_MIN_IMAGES_FOR_POOL = 64


@dataclass
class ConversionResult:
    """What :func:`convert_dataset` wrote.

    Attributes
    ----------
    out : Path
        The output folder (``coco/``, ``yolo/``, ``voc/``, ``summary.json``).
    summary : dict
        The content of ``summary.json``.
    records : dict
        ``{stem: ImageRecord}`` of every image read (skipped ones included, with ``skipped`` set).
    splits : dict
        ``{split name: [stem, ...]}`` of the images written for each split, in split order.
    """

    out: Path
    summary: dict
    records: dict[str, ImageRecord]
    splits: dict[str, list[str]]


def convert_dataset(
    root: str | Path,
    out: str | Path,
    *,
    dataset: str | None = None,
    splits: str | Sequence[str] | None = None,
    formats: str | Iterable[str] = FORMATS,
    threshold: float = DEFAULT_THRESHOLD,
    connectivity: int = DEFAULT_CONNECTIVITY,
    resize_masks: bool = False,
    skip_missing: bool = False,
    image_dir: str | None = None,
    mask_dir: str | None = None,
    mask_suffix: str = "",
    split_dir: str = "",
    workers: int | None = None,
    link_images: bool = True,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
    force: bool = False,
    skip_defects: bool = False,
) -> ConversionResult:
    """Convert a dataset's masks into box annotations.

    Every mask is binarised (``value > threshold``) and split into connected components by
    :func:`irstd_bench.targets.mask_to_targets`; each component is one target with a tight box
    ``[x0, y0, x1, y1]`` (pixels, pixel-edge convention: ``x1 = max column + 1``), its pixel
    area and its centroid. Each image is read once, however many splits list it.

    Parameters
    ----------
    root : path
        Dataset root as the release unpacks.
    out : path
        Output folder (:func:`irstd_bench._outputs.output_folder`). It is built in a hidden
        temporary sibling and moved into place at the end, so an error leaves nothing behind;
        it may not be or lie inside the dataset root, nor hold it. An existing non-empty folder
        is replaced only with ``force`` and only if it is wholly an irstd-bench output (its
        manifest lists every file in it).
    dataset : str, optional
        ``nuaa``, ``nudt``, ``irstd1k``, ``sirstv2``, ``custom``; ``None`` detects the layout.
    splits : str or sequence of str, optional
        Split names (``idx_427/test``, ``test``, ``all``) or split families (``split_EFLNet``:
        every split file in that folder), comma lists allowed. Default: every split file of the
        release, then ``all``. Bare aliases are stored under their file's name
        (``test`` -> ``idx_427/test`` for NUAA-SIRST).
    formats : str or iterable of {"coco", "yolo", "voc"}
        Comma lists allowed (``"coco,yolo"``).
    threshold : float
        Mask binarisation threshold (foreground where value > threshold).
    connectivity : {4, 8}
    resize_masks : bool
        Resize a mask whose size differs from its image's (nearest neighbour) instead of
        stopping with an error naming both sizes. Known release defects are resized anyway, with
        a warning (:func:`irstd_bench.datasets.fit_mask_to_image`).
    skip_missing : bool
        Leave out images without a mask (reported) instead of raising.
    image_dir, mask_dir, mask_suffix, split_dir : str
        For ``dataset="custom"``: folders under the root, mask name = stem + suffix + ``.png``,
        folder of split files (default: the root).
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); ``1`` works in-process.
    link_images : bool
        YOLO images are symbolic links to the release's files (a byte copy where the file
        system refuses links); ``False`` copies them (``--copy-images``). Never hard links,
        never re-encoded.
    progress : bool
        Show a progress bar on stderr (tqdm; hidden when stderr is not a terminal).
    warn : callable, optional
        Receives each warning line (defects met), once per defect and in the parent process
        (workers only collect them); default :func:`warnings.warn` with
        :class:`~irstd_bench.errors.DatasetDefectWarning`, which the CLI prints as one
        ``warning: ...`` line (:mod:`irstd_bench._warnings`).
    force : bool
        Replace an earlier irstd-bench output at ``out``.
    skip_defects : bool
        Leave known release defects out of every split (default: their masks are resized to
        the image with a warning, :func:`irstd_bench.datasets.fit_mask_to_image`).

    Returns
    -------
    ConversionResult

    Raises
    ------
    InputError
        Missing root, unknown layout, an image without mask (unless ``skip_missing``), a
        corrupt image or mask, an empty split file, a split entry without an image, or an
        unusable ``out``. Nothing is written then.
    """
    formats = _check_formats(formats)
    if connectivity not in CONNECTIVITY_STRUCTURES:
        raise InputError(f"connectivity must be 4 or 8, got {connectivity}")
    check_threshold(threshold)
    if workers is not None and workers < 1:
        raise InputError(f"workers must be at least 1, got {workers}")
    emit = warn or (lambda message: warnings.warn(message, DatasetDefectWarning, stacklevel=3))
    ds = open_dataset(
        root,
        dataset,
        image_dir=image_dir,
        mask_dir=mask_dir,
        mask_suffix=mask_suffix,
        split_dir=split_dir,
        skip_defects=skip_defects,
    )
    out = Path(out)
    refuse_inside_inputs(out, [("dataset root", ds.root)])
    claim = check_folder_replaceable(out, force=force)  # checked again when written

    split_names = _canonical_splits(ds, splits)
    split_samples, missing = _collect_samples(ds, split_names, skip_missing)
    unique: dict[str, Sample] = {}
    for samples in split_samples.values():
        for sample in samples:
            unique.setdefault(sample.stem, sample)
    settings = ConvertSettings(float(threshold), int(connectivity), bool(resize_masks))
    jobs = [(sample, ds.known_defect(sample.stem)) for sample in unique.values()]
    records = {rec.stem: rec for rec in _run(jobs, settings, workers, progress)}

    _warn_defects(records.values(), missing, threshold, emit, ds)
    left_out = _defects_left_out(ds, split_names)
    for stem in left_out:
        emit(f"left out {stem}: {ds.known_defect(stem)} (--skip-defects)")
    written = {
        name: [s.stem for s in samples if not records[s.stem].skipped]
        for name, samples in split_samples.items()
    }
    summary = _summary(
        ds, out, split_names, written, records, missing, formats, settings, skip_missing, link_images
    )
    summary["settings"]["skip_defects"] = bool(skip_defects)
    summary["defects"]["left_out_by_skip_defects"] = left_out
    _write(out, ds, formats, written, records, summary, link_images, force, claim)
    return ConversionResult(out=out, summary=summary, records=records, splits=written)


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = []
    for item in [formats] if isinstance(formats, str) else formats:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name not in FORMATS:
                raise InputError(f"unknown format {name!r} (known: {', '.join(FORMATS)})")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise InputError("no output format given (known: coco, yolo, voc)")
    return tuple(f for f in FORMATS if f in chosen)


def _canonical_splits(ds: Dataset, splits: str | Sequence[str] | None) -> list[str]:
    """Split names as stored: the split file's path under the root without ``.txt``, or ``all``."""
    if not splits:
        return [*ds.split_files(), "all"]
    names: list[str] = []
    for item in [splits] if isinstance(splits, str) else splits:
        for raw in str(item).split(","):
            raw = raw.strip().strip("/")
            if not raw:
                continue
            family = [n for n in ds.split_files() if n.rsplit("/", 1)[0] == raw and "/" in n]
            if family:  # a split family (idx_427, split_EFLNet): every split file in it
                names.extend(n for n in family if n not in names)
                continue
            path = ds.resolve_split(raw)
            if path is None:
                name = "all"
            else:
                try:
                    name = path.relative_to(ds.root).with_suffix("").as_posix()
                except ValueError:
                    name = raw.removesuffix(".txt")
            if name not in names:
                names.append(name)
    if not names:
        raise InputError("no split given")
    files: dict[str, str] = {}
    for name in names:
        safe = split_file_name(name)
        if safe in files:
            raise InputError(f"splits {files[safe]!r} and {name!r} would share the file name {safe!r}")
        files[safe] = name
    return names


def _collect_samples(
    ds: Dataset, split_names: list[str], skip_missing: bool
) -> tuple[dict[str, list[Sample]], list[str]]:
    """Samples of each split; images without a mask raise, or are listed when ``skip_missing``."""
    out: dict[str, list[Sample]] = {}
    cache: dict[str, Sample] = {}
    missing: list[str] = []
    for name in split_names:
        samples = []
        for stem in ds.stems(name):
            if stem not in cache:
                cache[stem] = ds.sample(stem)
            sample = cache[stem]
            if sample.mask_path is None:
                if not skip_missing:
                    raise InputError(
                        f"{ds.mask_dir / ds.layout.mask_name(stem)}: image {stem} has no mask "
                        "(use --skip-missing to leave such images out)"
                    )
                if stem not in missing:
                    missing.append(stem)
                continue
            samples.append(sample)
        out[name] = samples
    return out, missing


def _run(
    jobs: list[tuple[Sample, str]], settings: ConvertSettings, workers: int | None, progress: bool
) -> list[ImageRecord]:
    """Convert every job, in parallel chunks when worthwhile; results in job order."""
    workers = workers or os.cpu_count() or 1
    bar = progress_bar(len(jobs), "convert", enabled=progress)
    try:
        if workers == 1 or len(jobs) < _MIN_IMAGES_FOR_POOL:
            records = []
            for job in jobs:
                records.extend(convert_chunk([job], settings))
                bar.update(1)
            return records
        size = max(8, math.ceil(len(jobs) / (workers * 4)))
        chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
        records = []
        pool = ProcessPoolExecutor(max_workers=min(workers, len(chunks)))
        try:
            for chunk_records in pool.map(convert_chunk, chunks, repeat(settings)):
                records.extend(chunk_records)
                bar.update(len(chunk_records))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return records
    finally:
        bar.close()


def _warn_defects(records, missing: list[str], threshold: float, emit, ds: Dataset) -> None:
    """Report each defect met once: the lines the readers wrote (a known defect resized, a
    {0, 1} mask), then what conversion itself decided (other resized masks, non-binary
    values, missing masks)."""
    records = list(records)
    for rec in records:
        for line in rec.warnings:
            emit(line)
        if rec.skipped and rec.known_defect:
            emit(
                f"skipped {rec.stem}: {rec.known_defect} (known defect of the {ds.layout.title} release; "
                "--resize-masks resizes the mask with nearest neighbour)"
            )
        elif rec.skipped:
            emit(f"skipped {rec.stem}: {rec.skipped}")
        if rec.mask_resized and not rec.known_defect:  # a known defect is named by its reader's line
            emit(f"resized the mask of {rec.stem} to its image (nearest neighbour): mask size differs from the image")
    nonbinary = [rec for rec in records if rec.nonbinary_values and not rec.skipped]
    if nonbinary:
        values = sorted({v for rec in nonbinary for v in rec.nonbinary_values})
        names = ", ".join(rec.stem for rec in nonbinary[:10]) + (", ..." if len(nonbinary) > 10 else "")
        emit(
            f"{len(nonbinary)} mask(s) have values other than 0 and 255 ({values}); threshold "
            f"{_plain(threshold)} decides (foreground where value > threshold): {names}"
        )
    if missing:
        names = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        emit(f"left out {len(missing)} image(s) without a mask: {names}")


def _defects_left_out(ds: Dataset, split_names: list[str]) -> list[str]:
    """Known release defects listed in the splits that ``--skip-defects`` left out, sorted."""
    if not ds.skip_defects:
        return []
    listed = {stem for name in split_names for stem in ds.listed_stems(name)}
    return sorted(stem for stem in listed if ds.known_defect(stem))


def _plain(value: float) -> float | int:
    value = float(value)
    return int(value) if value.is_integer() else value


def _split_file(ds: Dataset, name: str) -> str | None:
    if name == "all":
        return None
    path = ds.resolve_split(name)
    try:
        return path.relative_to(ds.root).as_posix()
    except ValueError:
        return str(path)


def _summary(ds, out, split_names, written, records, missing, formats, settings, skip_missing, link_images):
    splits = {}
    for name in split_names:
        recs = [records[stem] for stem in written[name]]
        stats = split_statistics(recs)
        listed = set(ds.stems(name))
        stats.update(
            {
                "file": split_file_name(name),
                "split_file": _split_file(ds, name),
                "skipped": sorted(s for s, r in records.items() if r.skipped and s in listed),
                "missing_masks": [s for s in missing if s in listed],
            }
        )
        splits[name] = stats
    kept = [rec for rec in records.values() if not rec.skipped]
    summary = {
        "schema": SUMMARY_SCHEMA,
        "schema_version": 1,
        "irstd_bench_version": __version__,
        "dataset": ds.layout.name,
        "dataset_title": ds.layout.title,
        "root": str(ds.root.resolve()),
        "out": str(out.resolve()),
        "settings": {
            "threshold": _plain(settings.threshold),
            "connectivity": settings.connectivity,
            "resize_masks": settings.resize_masks,
            "skip_missing": bool(skip_missing),
            "formats": list(formats),
            "yolo_images": "symlink" if link_images else "copy",
        },
        "splits": splits,
        "total": split_statistics(sorted(kept, key=lambda r: r.stem)),
        "defects": defects_report(
            sorted(records.values(), key=lambda r: r.stem), missing, settings.threshold
        ),
    }
    if "yolo" in formats:
        summary["yolo"] = _yolo_families(ds, split_names)
    return summary


def _yolo_families(ds: Dataset, names: list[str]) -> dict[str, dict[str, str | None]]:
    """``{family: {"train", "val", "test": split name or None}}`` of the families with a train split.

    Within a family: the layout's aliases (``train`` -> ``splits/train_full``), else the file
    named so; ``train`` falls back to ``trainval``, ``val`` to ``test`` (no val split).
    """
    by_family: dict[str, list[str]] = {}
    for name in names:
        by_family.setdefault(_yolo.split_location(name)[0], []).append(name)
    out = {}
    for family, members in by_family.items():

        def pick(role: str, members=members) -> str | None:
            target = ds.layout.split_aliases.get(role)
            if target in members:
                return target
            by_base = [n for n in members if n.rsplit("/", 1)[-1] == role]
            return by_base[0] if by_base else None

        train = pick("train") or pick("trainval")
        if train is None:
            continue
        out[family] = {"train": train, "val": pick("val") or pick("test") or train, "test": pick("test")}
    return out


def _write(out, ds, formats, written, records, summary, link_images, force, claim) -> None:
    with output_folder(out, "convert", force=force, inputs=[("dataset root", ds.root)], claim=claim) as tmp:
        kept = sorted((r for r in records.values() if not r.skipped), key=lambda r: r.stem)
        if "coco" in formats:
            folder = tmp / "coco"
            folder.mkdir()
            image_ids = dataset_image_ids(ds)
            first_ids = _coco.annotation_ids(kept, image_ids)
            for name, stems in written.items():
                doc = _coco.coco_document(
                    [records[s] for s in stems],
                    f"{ds.layout.title} split {name}, written by irstd-bench convert",
                    image_ids,
                    first_ids,
                )
                _text(folder / f"{split_file_name(name)}.json", _coco.dumps_json(doc))
        if "yolo" in formats:
            _write_yolo(tmp / "yolo", ds, written, records, summary["yolo"], link_images)
        if "voc" in formats:
            folder = tmp / "voc"
            (folder / "Annotations").mkdir(parents=True)
            (folder / "ImageSets" / "Main").mkdir(parents=True)
            image_folder = ds.layout.image_dir.rsplit("/", 1)[-1]
            for rec in kept:
                _text(folder / "Annotations" / f"{rec.stem}.xml", _voc.voc_xml(rec, image_folder))
            for name, stems in written.items():
                _text(
                    folder / "ImageSets" / "Main" / f"{split_file_name(name)}.txt",
                    "".join(f"{s}\n" for s in stems),
                )
        _text(tmp / SUMMARY_FILE, _coco.dumps_json(summary))


def _write_yolo(folder: Path, ds: Dataset, written, records, families: dict, link_images: bool) -> None:
    """One folder per split family: ``images/<part>``, ``labels/<part>``, ``<part>.txt``, ``data.yaml``."""
    for name, stems in written.items():
        family, part = _yolo.split_location(name)
        images, labels = folder / family / "images" / part, folder / family / "labels" / part
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        recs = [records[s] for s in stems]
        for rec, source in zip(recs, _yolo.link_targets([r.image_path for r in recs]), strict=True):
            _yolo.place_image(source, images / rec.file_name, copy=not link_images)
            _text(labels / f"{rec.stem}.txt", _yolo.label_text(rec))
        _text(folder / family / f"{part}.txt", _yolo.list_text(recs, part))
    for family, roles in families.items():
        parts = {role: None if split is None else _yolo.split_location(split)[1] for role, split in roles.items()}
        _text(folder / family / "data.yaml", _yolo.data_yaml(parts, ds.layout.title, family))


#: Flags of a new output file: the folder being built is new, so a file already there is a bug.
#: ``O_BINARY`` (Windows only) keeps ``\n`` as written; ``O_CLOEXEC`` exists on POSIX only.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _text(path: Path, text: str) -> None:
    """Write a new UTF-8 file (``\\n`` line ends as given) with one ``open``/``write``/``close``.

    Thousands of small files are written per conversion; this skips the buffered text layer's
    extra system calls. Mode ``0o666`` less the umask, like :func:`open`.
    """
    data = text.encode("utf-8")
    fd = os.open(path, _NEW_FILE, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
