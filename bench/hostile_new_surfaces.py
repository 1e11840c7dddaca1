"""A hostile battery over the newer surfaces: ``compare``, ``reproduce --protocol --resume`` on a CPU, ``audit``.

Each case runs the command as a user would (a child process, ``python -m irstd_bench``) in a
fresh scratch folder and checks the contract of ``docs/CONTRACTS.md``:

- refused input: exit code 2, one ``Error:`` line on stderr naming the file or value (click's
  own usage errors, also exit 2, count as one), no traceback, nothing written, every file that
  was there before byte-identical;
- accepted input: exit code 0 and a correct result (each case checks its own).

Usage (from the repository root; scratch under ``/tmp/trust3/battery`` by default)::

    PYTHONPATH=$PWD nice -n 5 env OMP_NUM_THREADS=1 python bench/hostile_new_surfaces.py [--only compare]
        [--slow] [--scratch DIR] [--json OUT]

``--slow`` adds the reproduce cases that train (``--smoke``, minutes each on a CPU). Prints one
line per case (``ok``/``FAIL`` and why) and a count per surface; exit 1 if a case failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


# ------------------------------------------------------------------------------------------ harness
@dataclass
class Done:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def cli(*args, cwd: Path, timeout: float = 600, env: dict | None = None) -> Done:
    """Run ``irstd-bench ARGS`` in ``cwd``; a hang is reported as rc -9."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})}
    try:
        done = subprocess.run([PYTHON, "-m", "irstd_bench", *map(os.fsdecode, args)], cwd=cwd, env=environ,
                              capture_output=True, text=True, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired as exc:
        return Done(-9, str(exc.stdout or ""), f"TIMEOUT after {timeout} s")
    return Done(done.returncode, done.stdout, done.stderr)


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` -> a digest of its content (folders: 'dir', links: their target)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        elif path.is_file():
            try:
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                out[rel] = "unreadable"
        else:
            out[rel] = "special"
    return out


def refused(done: Done, needle: str | tuple[str, ...] | None = None) -> str | None:
    """Why ``done`` is not a clean refusal (``None``: it is)."""
    if done.rc != 2:
        return f"exit {done.rc}, expected 2: {done.text.strip()[-300:]}"
    if "Traceback" in done.text:
        return "traceback: " + done.text.strip()[-300:]
    lines = [ln for ln in done.err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    usage = lines and lines[0].startswith("Usage:")
    if len(errors) != 1 or (not usage and len(lines) != 1):
        return f"not one Error line: {done.err.strip()[-300:]!r}"
    needles = (needle,) if isinstance(needle, str) else needle or ()
    for n in needles:
        if n not in errors[0]:
            return f"message lacks {n!r}: {errors[0][:300]}"
    return None


@dataclass
class Case:
    surface: str
    name: str
    run: Callable[[Path], str | None]  # scratch folder -> None (held) or why it failed
    slow: bool = False


@dataclass
class Battery:
    cases: list[Case] = field(default_factory=list)

    def case(self, surface: str, name: str, slow: bool = False):
        def add(fn):
            self.cases.append(Case(surface, name, fn, slow))
            return fn
        return add


battery = Battery()
#: The refusals' messages of the case running now (printed with --show).
MESSAGES: list[str] = []


def expect_refusal(folder: Path, args, needle=None, *, cwd: Path | None = None, timeout: float = 600) -> str | None:
    """Run, and check a clean refusal that left ``folder`` exactly as it was."""
    before = snapshot(folder)
    done = cli(*args, cwd=cwd or folder, timeout=timeout)
    why = refused(done, needle)
    if why:
        return why
    MESSAGES.append(done.err.strip().splitlines()[-1])
    after = snapshot(folder)
    if after != before:
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        return f"refusal changed files: {changed[:5]}"
    return None


# ------------------------------------------------------------------------------------------ compare inputs
SIZE = 40
N_IMAGES = 12


def _truth(seed=0, n=N_IMAGES):
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(1, 4))
        corner = rng.integers(0, SIZE - 8, size=(k, 2))
        out.append((f"im{i:02d}", np.concatenate([corner, corner + 5], axis=1)))
    return out


def _preds(gt, found: float, seed: int):
    import numpy as np

    from irstd_bench.evaluate import Prediction

    rng = np.random.default_rng(seed)
    out = []
    for stem, boxes in gt:
        kept = [b for b in boxes if rng.random() < found]
        boxes_out = np.array(kept + [[0, SIZE - 4, 3, SIZE - 1]], np.int64).reshape(-1, 4)
        scores = rng.uniform(0.5, 1.0, len(boxes_out))
        out.append(Prediction.from_boxes(stem, boxes_out, scores, (SIZE, SIZE)))
    return out


def write_run(folder: Path, name: str, *, found=0.8, seed=1, gt=None, split="test", matcher="iou:0.5",
              dataset="synthetic") -> Path:
    """An eval results JSON (and its CSVs) of boxes on a small synthetic split, in ``folder``."""
    from irstd_bench.evaluate import evaluate
    from irstd_bench.targets import boxes_to_targets

    gt = gt if gt is not None else _truth()
    truth = [(stem, boxes_to_targets(boxes, (SIZE, SIZE))) for stem, boxes in gt]
    meta = {"method": name, "dataset": dataset, "split": split}
    result = evaluate(truth, _preds(gt, found, seed), matcher=matcher, conf=0.5, bootstrap=0, meta=meta)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    result.write(path)
    return path


def edit(path: Path, change: Callable[[dict], object]) -> Path:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def pair(folder: Path) -> tuple[Path, Path]:
    return write_run(folder, "good", found=0.9, seed=1), write_run(folder, "fair", found=0.5, seed=2)


def compare_refuses(folder: Path, change: Callable[[dict], object] | None, needle, *, text: str | None = None,
                    extra=()) -> str | None:
    a, b = pair(folder)
    if text is not None:
        b.write_text(text)
    elif change is not None:
        edit(b, change)
    return expect_refusal(folder, ["compare", a, b, "--bootstrap", "50", "--out", folder / "cmp.json", *extra], needle)


def _set(path: str, value):
    keys = path.split(".")

    def change(d):
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


def _drop(path: str):
    keys = path.split(".")

    def change(d):
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]
    return change


B = "fair.json"  # the edited file, named in every refusal

MALFORMED = {
    "empty file": (None, "", B),
    "not JSON": (None, "{oops", B),
    "top-level list": (None, "[]", B),
    "top-level null": (None, "null", B),
    "BOM then garbage": (None, "\ufeff\x00\x01", B),
    "5000-digit integer": (None, '{"schema": ' + "9" * 5000 + "}", B),
    "nesting 100k deep": (None, "[" * 100_000 + "]" * 100_000, B),
    "repeated key": (None, '{"schema": "irstd-bench/results", "schema": "x"}', B),
    "other schema": (_set("schema", "irstd-bench/compare"), B),
    "schema_version 2": (_set("schema_version", 2), B),
    "schema_version true": (_set("schema_version", True), B),
    "schema_version '1'": (_set("schema_version", "1"), B),
    "metrics missing": (_drop("metrics"), B),
    "metrics a list": (_set("metrics", []), B),
    "f1 NaN": (_set("metrics.f1", float("nan")), (B, "f1")),
    "f1 Infinity": (_set("metrics.f1", float("inf")), (B, "f1")),
    "f1 2.0": (_set("metrics.f1", 2.0), (B, "f1")),
    "f1 a string": (_set("metrics.f1", "0.5"), (B, "f1")),
    "tp negative": (_set("metrics.tp", -1), (B, "tp")),
    "ap50 huge": (_set("metrics.ap50", 1e308), (B, "ap50")),
    "method empty": (_set("method", " "), (B, "method")),
    "split a number": (_set("split", 3), (B, "split")),
    "per_image a list": (_set("per_image", []), (B, "per_image")),
    "per_image.gt negative": (lambda d: d["per_image"]["gt"].__setitem__(0, -1), (B, "per_image.gt")),
    "per_image.gt huge int": (lambda d: d["per_image"]["gt"].__setitem__(0, 10**30), (B, "per_image.gt")),
    "per_image.tp huge int": (lambda d: d["per_image"]["tp"].__setitem__(0, 2**63), (B, "per_image")),
    "per_image.gt float": (lambda d: d["per_image"]["gt"].__setitem__(0, 1.5), (B, "per_image.gt")),
    "per_image.gt bool": (lambda d: d["per_image"]["gt"].__setitem__(0, True), (B, "per_image.gt")),
    "per_image lengths differ": (lambda d: d["per_image"]["pred"].pop(), (B, "per_image.pred")),
    "per_image image twice": (lambda d: d["per_image"]["image"].__setitem__(1, d["per_image"]["image"][0]),
                              (B, "twice")),
    "per_image image a number": (lambda d: d["per_image"]["image"].__setitem__(0, 7), (B, "per_image.image")),
    "per_image tp > gt": (lambda d: d["per_image"]["tp"].__setitem__(0, 99), (B, "per_image.tp")),
    "ap50 score NaN": (lambda d: d["per_image"]["ap50"]["scores"].__setitem__(0, float("nan")), (B, "ap50")),
    "ap50 score a string": (lambda d: d["per_image"]["ap50"]["scores"].__setitem__(0, "x"), (B, "ap50")),
    "ap50 hit 2": (lambda d: d["per_image"]["ap50"]["hits"].__setitem__(0, 2), (B, "ap50")),
    "ap50 hits short": (lambda d: d["per_image"]["ap50"]["hits"].pop(), (B, "ap50.hits")),
    "ap50 candidates huge": (lambda d: d["per_image"]["ap50"]["candidates"].__setitem__(0, 10**12), (B, "ap50")),
    "ap50 an empty list": (_set("per_image.ap50", []), (B, "ap50")),
    # the per-image numbers are what is resampled: they must add up to the results' own metrics
    "per_image.tp disagrees with metrics.tp": (
        lambda d: d["per_image"]["tp"].__setitem__(0, max(0, d["per_image"]["tp"][0] - 1)), (B, "tp")),
    "per_image.pred disagrees with metrics": (
        lambda d: d["per_image"]["pred"].__setitem__(0, d["per_image"]["pred"][0] + 5), (B, "fp")),
    "metrics.f1 forged (counts left)": (_set("metrics.f1", 0.999), (B, "f1")),
    "metrics.ap50 forged": (_set("metrics.ap50", 0.999), (B, "ap50")),
    "an AP candidate's score raised (AP50 no longer the stated one)": (
        lambda d: d["per_image"]["ap50"]["scores"].__setitem__(-1, 1e6), (B, "ap50")),
    "no per_image, CSV gone": (lambda d: (d.pop("per_image"), d.__setitem__("per_image_csv", "nope.csv")),
                               (B, "per-image")),
    "no per_image, CSV a number": (lambda d: (d.pop("per_image"), d.__setitem__("per_image_csv", 5)),
                                   (B, "per_image_csv")),
    "no per_image, CSV is /etc/passwd": (
        lambda d: (d.pop("per_image"), d.__setitem__("per_image_csv", "/etc/passwd")), "/etc/passwd"),
    # /tmp is then an input: --out under it is refused first (naming /tmp), which is as good
    "no per_image, CSV is a folder": (lambda d: (d.pop("per_image"), d.__setitem__("per_image_csv", "/tmp")),
                                      None),
    "no per_image, CSV is /dev/zero": (
        lambda d: (d.pop("per_image"), d.__setitem__("per_image_csv", "/dev/zero")), (B,)),
    "zero images": (lambda d: d.__setitem__("per_image", {"image": [], "gt": [], "pred": [], "tp": [],
                                                          "pixels": None, "ap50": None}), (B,)),
}


def _malformed(name, spec):
    change, *rest = spec
    if change is None:
        text, needle = rest
        return lambda f: compare_refuses(f, None, needle, text=text)
    (needle,) = rest
    return lambda f: compare_refuses(f, change, needle)


for _name, _spec in MALFORMED.items():
    battery.case("compare", f"malformed: {_name}")(_malformed(_name, _spec))


@battery.case("compare", "two good runs: table, JSON, p-values in (0, 1]")
def _(f):
    a, b = pair(f)
    done = cli("compare", a, b, "--bootstrap", "200", "--out", f / "cmp.json", cwd=f)
    if done.rc != 0:
        return done.text[-300:]
    data = json.loads((f / "cmp.json").read_text())
    if not all(0 < p["p_value"] <= 1 for p in data["pairs"]) or len(data["pairs"]) != 2:
        return f"bad pairs {data['pairs']}"
    return None


@battery.case("compare", "two runs of zero images: one line, not a crash")
def _(f):
    empty = {"image": [], "gt": [], "pred": [], "tp": [], "pixels": None, "ap50": None}

    def zero(d):
        d["per_image"] = dict(empty)
        d["metrics"].update(tp=0, fp=0, fn=0, precision=None, recall=None, f1=None, ap50=None)
        d.pop("per_image_csv", None)
    a, b = pair(f)
    edit(a, zero)
    edit(b, zero)
    return expect_refusal(f, ["compare", a, b, "--bootstrap", "20", "--out", f / "cmp.json"], "nothing to compare")


@battery.case("compare", "the same file twice: difference 0, p 1")
def _(f):
    a, _ = pair(f)
    done = cli("compare", a, a, "--bootstrap", "100", "--out", f / "cmp.json", cwd=f)
    if done.rc != 0:
        return done.text[-300:]
    data = json.loads((f / "cmp.json").read_text())
    return None if all(p["difference"] == 0 and p["p_value"] == 1 for p in data["pairs"]) else str(data["pairs"])


@battery.case("compare", "images in another order: same answer as in order")
def _(f):
    a, b = pair(f)
    shuffled = f / "shuffled" / "fair.json"
    shuffled.parent.mkdir()
    data = json.loads(b.read_text())
    pi = data["per_image"]
    order = list(reversed(range(len(pi["image"]))))
    starts = [sum(pi["ap50"]["candidates"][:i]) for i in range(len(order))]
    ap = pi["ap50"]
    new_scores, new_hits = [], []
    for i in order:
        s, n = starts[i], ap["candidates"][i]
        new_scores += ap["scores"][s:s + n]
        new_hits += ap["hits"][s:s + n]
    for k in ("image", "gt", "pred", "tp"):
        pi[k] = [pi[k][i] for i in order]
    ap["candidates"] = [ap["candidates"][i] for i in order]
    ap["scores"], ap["hits"] = new_scores, new_hits
    data.pop("per_image_csv", None)
    data.pop("per_target_csv", None)
    shuffled.write_text(json.dumps(data))
    one = cli("compare", a, b, "--bootstrap", "100", cwd=f)
    two = cli("compare", a, shuffled, "--bootstrap", "100", cwd=f)
    if one.rc or two.rc:
        return (one.text + two.text)[-300:]
    return None if one.out == two.out else f"{one.out}\n!=\n{two.out}"


@battery.case("compare", "older results (per-image CSV only): F1 compared, AP50 noted")
def _(f):
    a, b = pair(f)
    edit(b, lambda d: d.pop("per_image"))
    done = cli("compare", a, b, "--bootstrap", "50", cwd=f)
    return None if done.rc == 0 and "AP50 not compared" in done.out else done.text[-300:]


SPLIT_MISMATCH = {
    "another split": (dict(split="val"), "split"),
    "another matcher": (dict(matcher="centroid:3"), "matcher"),
    "another dataset": (dict(dataset="other"), "dataset"),
    "fewer images": (dict(gt=_truth()[:-1]), "different image sets"),
    "other ground truth": (dict(gt=_truth(seed=5)), "ground-truth targets"),
}
for _name, (_kw, _needle) in SPLIT_MISMATCH.items():
    def _mismatch(f, kw=_kw, needle=_needle):
        a = write_run(f, "good")
        b = write_run(f / "o", "other", **kw)
        return expect_refusal(f, ["compare", a, b, "--out", f / "cmp.json"], needle)
    battery.case("compare", f"mismatch: {_name}")(_mismatch)


@battery.case("compare", "split name differs by a trailing space only")
def _(f):
    a, b = pair(f)
    edit(b, _set("split", "test "))
    return expect_refusal(f, ["compare", a, b, "--out", f / "cmp.json"], "split")


@battery.case("compare", "one results file")
def _(f):
    a, _ = pair(f)
    return expect_refusal(f, ["compare", a], "two or more")


@battery.case("compare", "a results file that does not exist")
def _(f):
    a, _ = pair(f)
    return expect_refusal(f, ["compare", a, f / "nope.json"], "nope.json")


@battery.case("compare", "a folder as a results file")
def _(f):
    a, _ = pair(f)
    (f / "d.json").mkdir()
    return expect_refusal(f, ["compare", a, f / "d.json"], "d.json")


@battery.case("compare", "a FIFO as a results file (never blocks)")
def _(f):
    a, _ = pair(f)
    os.mkfifo(f / "fifo.json")
    return expect_refusal(f, ["compare", a, f / "fifo.json"], "fifo.json", timeout=60)


@battery.case("compare", "/dev/zero as a results file")
def _(f):
    a, _ = pair(f)
    return expect_refusal(f, ["compare", a, "/dev/zero"], "/dev/zero", timeout=60)


@battery.case("compare", "a compare output given as a results file")
def _(f):
    a, b = pair(f)
    cli("compare", a, b, "--bootstrap", "20", "--out", f / "cmp.json", cwd=f)
    return expect_refusal(f, ["compare", a, f / "cmp.json"], "cmp.json")


@battery.case("compare", "--bootstrap 0 / -1 / nan / 1e12 / a word")
def _(f):
    a, b = pair(f)
    for value in ("0", "-1", "nan", "1000000000000", "many"):
        why = expect_refusal(f, ["compare", a, b, "--bootstrap", value, "--out", f / "cmp.json"], "--bootstrap",
                             timeout=120)
        if why:
            return f"--bootstrap {value}: {why}"
    return None


@battery.case("compare", "--bootstrap-seed -1 / 2**70")
def _(f):
    a, b = pair(f)
    why = expect_refusal(f, ["compare", a, b, "--bootstrap-seed", "-1"], "--bootstrap-seed")
    if why:
        return why
    done = cli("compare", a, b, "--bootstrap", "20", "--bootstrap-seed", str(2**70), cwd=f)
    return None if done.rc == 0 or not refused(done, "--bootstrap-seed") else done.text[-300:]


@battery.case("compare", "a method name with a line break and an escape sequence stays on its row")
def _(f):
    a, b = pair(f)
    edit(b, _set("method", "evil\n# heading\x1b[2J"))
    done = cli("compare", a, b, "--bootstrap", "20", cwd=f)
    if done.rc != 0:
        return done.text[-300:]
    if "\x1b" in done.out or any(ln.startswith("# heading") for ln in done.out.splitlines()):
        return "control characters reach the terminal: " + repr(done.out[:400])
    return None


@battery.case("compare", "odd file names: spaces, leading dash, unicode, newline")
def _(f):
    a, b = pair(f)
    for name in ("with space.json", "-dash.json", "ünï código.json", "new\nline.json"):
        target = f / name
        shutil.copy(b, target)
        done = cli("compare", "--bootstrap", "20", "--", a, target, cwd=f)
        if done.rc != 0:
            return f"{name!r}: {done.text[-300:]}"
    return None


@battery.case("compare", "a non-UTF-8 file name")
def _(f):
    a, b = pair(f)
    target = os.fsencode(f) + b"/caf\xe9.json"
    shutil.copy(b, target)
    return expect_refusal(f, ["compare", a, os.fsdecode(target)], "UTF-8")


# --out
@battery.case("compare", "--out over a user's file")
def _(f):
    a, b = pair(f)
    (f / "mine.json").write_text('{"mine": 1}')
    return expect_refusal(f, ["compare", a, b, "--out", f / "mine.json"], "mine.json")


@battery.case("compare", "--out --force over a user's file")
def _(f):
    a, b = pair(f)
    (f / "mine.json").write_text('{"mine": 1}')
    return expect_refusal(f, ["compare", a, b, "--out", f / "mine.json", "--force"], "mine.json")


@battery.case("compare", "--out --force over a user's empty file / binary file / `[]`")
def _(f):
    a, b = pair(f)
    for content in (b"", b"\x89PNG\r\n", b"[]"):
        (f / "mine.json").write_bytes(content)
        why = expect_refusal(f, ["compare", a, b, "--out", f / "mine.json", "--force"], "mine.json")
        if why:
            return f"{content!r}: {why}"
    return None


@battery.case("compare", "--out is one of the inputs (--force)")
def _(f):
    a, b = pair(f)
    return expect_refusal(f, ["compare", a, b, "--out", b, "--force"], "input")


@battery.case("compare", "--out is an input's per-image CSV (--force)")
def _(f):
    a, b = pair(f)
    csv = f / json.loads(b.read_text())["per_image_csv"]
    return expect_refusal(f, ["compare", a, b, "--out", csv, "--force"], csv.name)


@battery.case("compare", "--out is a symlink to a user's file (--force)")
def _(f):
    a, b = pair(f)
    (f / "mine.json").write_text('{"mine": 1}')
    (f / "link.json").symlink_to(f / "mine.json")
    return expect_refusal(f, ["compare", a, b, "--out", f / "link.json", "--force"], "link.json")


@battery.case("compare", "--out is a dangling symlink")
def _(f):
    a, b = pair(f)
    (f / "link.json").symlink_to(f / "elsewhere.json")
    return expect_refusal(f, ["compare", a, b, "--out", f / "link.json", "--force"], "link.json")


@battery.case("compare", "--out is a folder")
def _(f):
    a, b = pair(f)
    (f / "outdir").mkdir()
    return expect_refusal(f, ["compare", a, b, "--out", f / "outdir"], "outdir")


@battery.case("compare", "--out under a file (its parent is a file)")
def _(f):
    a, b = pair(f)
    (f / "plain").write_text("x")
    return expect_refusal(f, ["compare", a, b, "--out", f / "plain" / "cmp.json"], "plain")


@battery.case("compare", "--out in a new folder: created, and the JSON whole")
def _(f):
    a, b = pair(f)
    done = cli("compare", a, b, "--bootstrap", "20", "--out", f / "new" / "deep" / "cmp.json", cwd=f)
    if done.rc != 0:
        return done.text[-300:]
    return None if json.loads((f / "new/deep/cmp.json").read_text())["schema"] == "irstd-bench/compare" else "bad"


@battery.case("compare", "--out over our own earlier compare: needs --force, then replaced")
def _(f):
    a, b = pair(f)
    cli("compare", a, b, "--bootstrap", "20", "--out", f / "cmp.json", cwd=f)
    why = expect_refusal(f, ["compare", a, b, "--bootstrap", "30", "--out", f / "cmp.json"], "--force")
    if why:
        return why
    done = cli("compare", a, b, "--bootstrap", "30", "--out", f / "cmp.json", "--force", cwd=f)
    ok = done.rc == 0 and json.loads((f / "cmp.json").read_text())["bootstrap"]["resamples"] == 30
    return None if ok else done.text[-300:]


@battery.case("compare", "--out --force over an earlier compare the user edited (still our schema)")
def _(f):
    a, b = pair(f)
    cli("compare", a, b, "--bootstrap", "20", "--out", f / "cmp.json", cwd=f)
    edit(f / "cmp.json", lambda d: d.__setitem__("my_notes", "keep"))
    done = cli("compare", a, b, "--bootstrap", "20", "--out", f / "cmp.json", "--force", cwd=f)
    # Content rule (docs/CONTRACTS.md): a JSON file carrying our schema is ours; replacing it is the contract.
    return None if done.rc == 0 else done.text[-300:]


@battery.case("compare", "--out in a folder it cannot write")
def _(f):
    a, b = pair(f)
    locked = f / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.geteuid() == 0:
            return None  # root writes anywhere: nothing to check
        return expect_refusal(f, ["compare", a, b, "--out", locked / "cmp.json"], "locked")
    finally:
        locked.chmod(0o700)


@battery.case("compare", "two compares on one --out at once: one wins, one exits 2, the JSON whole")
def _(f):
    a, b = pair(f)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    results = []
    for trial in range(3):
        out = f / f"cmp{trial}.json"
        procs = [subprocess.Popen([PYTHON, "-m", "irstd_bench", "compare", str(a), str(b), "--bootstrap",
                                   str(300 + k), "--out", str(out)], cwd=f, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for k in range(2)]
        codes = sorted(p.wait(timeout=300) for p in procs)
        errs = "".join(p.stderr.read() for p in procs)
        if "Traceback" in errs:
            return "traceback: " + errs[-300:]
        data = json.loads(out.read_text())
        results.append((codes, data["bootstrap"]["resamples"]))
        if codes not in ([0, 2], [0, 0]) or codes == [0, 0]:
            return f"trial {trial}: exit codes {codes}: {errs[-300:]}"
    return None


@battery.case("compare", "killed (SIGTERM) while running: no --out, no temporaries")
def _(f):
    a, b = pair(f)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([PYTHON, "-m", "irstd_bench", "compare", str(a), str(b), "--bootstrap", "3000000",
                             "--out", str(f / "cmp.json")], cwd=f, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err = proc.stderr.read()
    left = [p.name for p in f.iterdir() if p.name.startswith(".") or p.name == "cmp.json"]
    if left:
        return f"left {left}"
    return "traceback: " + err[-300:] if "Traceback" in err and "KeyboardInterrupt" not in err else None


# ------------------------------------------------------------------------------------------ reproduce (CPU)
REPRO = ["reproduce", "--smoke", "--protocol", "cpu-windows-256", "--only", "acm", "--commit", "abc"]


@battery.case("reproduce", "--resume without --protocol")
def _(f):
    return expect_refusal(f, ["reproduce", "--smoke", "--resume", "--out", f / "r"], "--protocol")


@battery.case("reproduce", "--resume with no earlier run (absent --out)")
def _(f):
    return expect_refusal(f, [*REPRO, "--resume", "--out", f / "r"], "r")


@battery.case("reproduce", "--resume over an empty folder")
def _(f):
    (f / "r").mkdir()
    return expect_refusal(f, [*REPRO, "--resume", "--out", f / "r"], "work/runs")


@battery.case("reproduce", "--resume over a user's folder (files, no work/)")
def _(f):
    (f / "r").mkdir()
    (f / "r" / "notes.txt").write_text("mine")
    return expect_refusal(f, [*REPRO, "--resume", "--out", f / "r"], "r")


@battery.case("reproduce", "--resume over a user's folder that happens to hold work/runs/ and work/commands.txt")
def _(f):
    root = _nuaa_like(f)
    (f / "r" / "work" / "runs").mkdir(parents=True)
    (f / "r" / "work" / "commands.txt").write_text("my own notes\n")
    (f / "r" / "work" / "logs").mkdir()
    (f / "r" / "work" / "logs" / "train_acm-authors-s0.log").write_text("my log\n")
    return expect_refusal(f, ["reproduce", "--root", root, "--protocol", "cpu-windows-256", "--only", "acm",
                              "--device", "cpu", "--resume", "--out", f / "r", "--budget-s", "200"],
                          "not an output of irstd-bench reproduce", timeout=300)


@battery.case("reproduce", "--out a file")
def _(f):
    (f / "r").write_text("x")
    return expect_refusal(f, [*REPRO, "--out", f / "r"], "r")


@battery.case("reproduce", "--protocol unknown")
def _(f):
    return expect_refusal(f, ["reproduce", "--smoke", "--protocol", "nope", "--out", f / "r"], "nope")


@battery.case("reproduce", "--parallel/--threads without --protocol")
def _(f):
    return expect_refusal(f, ["reproduce", "--smoke", "--parallel", "2", "--out", f / "r"], "--protocol")


@battery.case("reproduce", "--out inside the dataset root (--root)")
def _(f):
    root = _nuaa_like(f)
    return expect_refusal(f, ["reproduce", "--root", root, "--protocol", "cpu-windows-256", "--out", root / "repro",
                              "--device", "cpu"], "dataset root")


@battery.case("reproduce", "--resume --out inside the dataset root (--root)")
def _(f):
    root = _nuaa_like(f)
    (root / "repro" / "work" / "runs").mkdir(parents=True)
    return expect_refusal(f, ["reproduce", "--root", root, "--protocol", "cpu-windows-256", "--resume",
                              "--out", root / "repro", "--device", "cpu"], "dataset root")


@battery.case("reproduce", "--pack-dir over a user's folder with --resume")
def _(f):
    (f / "r" / "work" / "runs").mkdir(parents=True)
    (f / "pack").mkdir()
    (f / "pack" / "RUNS.md").write_text("mine")
    return expect_refusal(f, [*REPRO, "--resume", "--out", f / "r", "--pack-dir", f / "pack"], None)


def _nuaa_like(f: Path) -> Path:
    """A small NUAA-SIRST-layout tree (the tests' fixture) for the cases that need a --root."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_engine_models import make_nuaa_like

    return make_nuaa_like(f / "nuaa", [(40, 40)] * 8)


# The cases below train (a --smoke reproduce, minutes on a CPU): one first call, shared. Each case
# spoils one file of it, expects a refusal that changes nothing, and puts the file back.
RUN = "work/runs/acm-authors-s0"
_FIRST: dict[str, Path] = {}


def _first_run(f: Path) -> Path:
    """The output of one ``reproduce --smoke --protocol`` call (1 epoch), made once."""
    if "out" not in _FIRST:
        out = f / "r"
        done = cli(*REPRO, "--out", out, "--max-epochs", "1", "--budget-s", "1500", cwd=f, timeout=1500)
        assert done.rc == 0, "first call failed: " + done.text[-400:]
        _FIRST["out"] = out
    return _FIRST["out"]


def _resume_refused(f: Path, name: str, spoil: Callable[[Path], None], needle, args=None) -> str | None:
    out = _first_run(f)
    target = out / name
    saved = target.read_bytes() if target.is_file() else None
    spoil(target)
    try:
        args = args or [*REPRO, "--resume", "--out", out, "--max-epochs", "2", "--budget-s", "1500"]
        return expect_refusal(out.parent, args, needle, timeout=1500)
    finally:
        if saved is not None:
            target.write_bytes(saved)


@battery.case("reproduce", "resume with a corrupt last.pt", slow=True)
def _(f):
    return _resume_refused(f, f"{RUN}/last.pt", lambda p: p.write_bytes(b"not a checkpoint"), "last.pt")


@battery.case("reproduce", "resume with a last.pt of another kind (a JSON)", slow=True)
def _(f):
    return _resume_refused(f, f"{RUN}/last.pt", lambda p: p.write_text("{}"), "last.pt")


@battery.case("reproduce", "resume with a corrupt results.csv", slow=True)
def _(f):
    return _resume_refused(f, f"{RUN}/results.csv", lambda p: p.write_bytes(b"\x00\xff garbage\n1,2,3\n"),
                           "results.csv")


@battery.case("reproduce", "resume with args.json a JSON list", slow=True)
def _(f):
    return _resume_refused(f, f"{RUN}/args.json", lambda p: p.write_text("[1, 2]"), "args.json")


@battery.case("reproduce", "resume with args.json not JSON", slow=True)
def _(f):
    return _resume_refused(f, f"{RUN}/args.json", lambda p: p.write_text("{oops"), "args.json")


@battery.case("reproduce", "resume with args.json of another seed", slow=True)
def _(f):
    def spoil(p):
        data = json.loads(p.read_text())
        data["seed"] = 7
        p.write_text(json.dumps(data))
    return _resume_refused(f, f"{RUN}/args.json", spoil, "seed")


@battery.case("reproduce", "resume with the run's manifest gone (not ours any more)", slow=True)
def _(f):
    return _resume_refused(f, f"{RUN}/.irstd-bench-output.json", lambda p: p.unlink(), "not an irstd-bench training")


@battery.case("reproduce", "resume with another --protocol: refused before the report is touched", slow=True)
def _(f):
    out = _first_run(f)
    args = ["reproduce", "--smoke", "--protocol", "authors-sizes", "--only", "acm", "--commit", "abc", "--resume",
            "--out", out, "--max-epochs", "2", "--budget-s", "1500"]
    return _resume_refused(f, "work/unused", lambda p: None, "protocol", args=args)


@battery.case("reproduce", "resume with a user's file in report/: refused, the file kept", slow=True)
def _(f):
    mine = _first_run(f) / "report" / "mine.txt"
    why = _resume_refused(f, "report/mine.txt", lambda p: p.write_text("keep"), "mine.txt")
    kept = mine.is_file() and mine.read_text() == "keep"
    mine.unlink(missing_ok=True)
    return why or (None if kept else "the user's report/mine.txt is gone")


@battery.case("reproduce", "commands.txt removed, then killed (SIGTERM) mid-training, then --resume finishes",
              slow=True)
def _(f):
    out = _first_run(f)
    (out / "report" / "mine.txt").unlink(missing_ok=True)
    (out / "work" / "commands.txt").unlink()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([PYTHON, "-m", "irstd_bench", *map(str, REPRO), "--resume", "--out", str(out),
                             "--max-epochs", "3", "--budget-s", "1500"], cwd=f, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 1200
    csv = out / RUN / "results.csv"
    while time.monotonic() < deadline and proc.poll() is None:
        if csv.is_file() and len(csv.read_text().splitlines()) >= 3:  # header, epoch 1, epoch 2
            break
        time.sleep(2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
    err = proc.stderr.read()
    if "Traceback" in err and "KeyboardInterrupt" not in err:
        return "traceback on SIGTERM: " + err[-300:]
    again = cli(*REPRO, "--resume", "--out", out, "--max-epochs", "3", "--budget-s", "1500", cwd=f, timeout=1500)
    if again.rc != 0:
        return f"resume after kill: exit {again.rc}: {again.text[-400:]}"
    runs = json.loads((out / "report" / "summary.json").read_text())["runs"]
    rows = len(csv.read_text().splitlines())
    ok = runs[0]["epochs_done"] == 3 and runs[0]["status"] == "scored" and rows == 4
    return None if ok else f"runs {runs}, results.csv rows {rows}"


# ------------------------------------------------------------------------------------------ audit
def _audit_base(f: Path) -> tuple[Path, Path]:
    """The tests' crafted NUDT-SIRST tree (4 images of 32x32) and convert's COCO, VOC and YOLO of it."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_audit import _tree

    root = _tree(f / "NUDT-SIRST")
    done = cli("convert", root, "--out", f / "conv", "--split", "all", "--format", "coco,voc,yolo", "--no-progress",
               cwd=f)
    assert done.rc == 0, done.text
    return root, f / "conv"


def _yolo(conv: Path) -> Path:
    return conv / "yolo" / "all" / "labels" / "all"


def audit_refuses(f: Path, fmt: str, spoil: Callable[[Path, Path], Path], needle, extra=()) -> str | None:
    """Spoil a copy of convert's labels (``spoil(conv, labels) -> labels``), then expect a refusal."""
    root, conv = _audit_base(f)
    labels = {"yolo": _yolo(conv), "coco": conv / "coco" / "all.json", "voc": conv / "voc"}[fmt]
    labels = spoil(conv, labels) or labels
    return expect_refusal(f, ["audit", root, "--labels", labels, "--format", fmt, "--out", f / "audit.json",
                              "--no-progress", *extra], needle)


def audit_runs(f: Path, fmt: str, spoil, check: Callable[[dict, Done], str | None]) -> str | None:
    root, conv = _audit_base(f)
    labels = {"yolo": _yolo(conv), "coco": conv / "coco" / "all.json", "voc": conv / "voc"}[fmt]
    labels = spoil(conv, labels) or labels
    done = cli("audit", root, "--labels", labels, "--format", fmt, "--out", f / "audit.json", "--no-progress", cwd=f)
    if done.rc != 0 or "Traceback" in done.text:
        return f"exit {done.rc}: {done.text[-300:]}"
    return check(json.loads((f / "audit.json").read_text()), done)


def _line(text: str, stem: str = "000001"):
    def spoil(conv, labels):
        (labels / f"{stem}.txt").write_text(text)
    return spoil


YOLO_LINES = {
    "4 fields": ("0 0.5 0.5 0.1\n", "000001.txt:1"),
    "6 fields": ("0 0.5 0.5 0.1 0.1 0.9\n", "000001.txt:1"),
    "class 1": ("1 0.5 0.5 0.1 0.1\n", "000001.txt:1"),
    "class 0.0": ("0.0 0.5 0.5 0.1 0.1\n", "000001.txt:1"),
    "class -0": ("-0 0.5 0.5 0.1 0.1\n", None),  # int('-0') == 0: the target class, read
    "NaN centre": ("0 nan 0.5 0.1 0.1\n", "000001.txt:1"),
    "inf size": ("0 0.5 0.5 inf 0.1\n", "000001.txt:1"),
    "negative width": ("0 0.5 0.5 -0.1 0.1\n", "000001.txt:1"),
    "centre 1e300": ("0 1e300 0.5 0.1 0.1\n", "000001.txt:1"),
    "size 1e300": ("0 0.5 0.5 0.1 1e300\n", "000001.txt:1"),
    "box far outside the image (cx = 5)": ("0 5 0.5 0.1 0.1\n", "000001.txt:1"),
    "box wholly left of the image (cx = -0.5)": ("0 -0.5 0.5 0.1 0.1\n", "000001.txt:1"),
    "a word": ("0 zero 0.5 0.1 0.1\n", "000001.txt:1"),
    "binary bytes": ("\x00\xff\xfe", "000001.txt"),
}


def _yolo_case(text, needle):
    if needle is None:
        return lambda f: audit_runs(f, "yolo", _line(text), lambda data, done: None)
    if text == "\x00\xff\xfe":
        def spoil(conv, labels):
            (labels / "000001.txt").write_bytes(b"\x00\xff\xfe")
        return lambda f: audit_refuses(f, "yolo", spoil, needle)
    return lambda f: audit_refuses(f, "yolo", _line(text), needle)


for _name, (_text, _needle) in YOLO_LINES.items():
    battery.case("audit", f"yolo: {_name}")(_yolo_case(_text, _needle))


@battery.case("audit", "yolo: convert's own labels audit equal")
def _(f):
    return audit_runs(f, "yolo", lambda c, l: None,
                      lambda d, done: None if d["summary"]["images_equal"] == 4 else str(d["summary"]))


@battery.case("audit", "yolo: a box one pixel past the far edge is an edge mismatch, not a refusal")
def _(f):
    # 000003's target is x 1..4, y 28..30 of 32: a box to y1 = 33 (one past the image) is a convention, reported.
    def spoil(conv, labels):
        (labels / "000003.txt").write_text(f"0 {2.5 / 32:.6f} {30.5 / 32:.6f} {3 / 32:.6f} {5 / 32:.6f}\n")
    return audit_runs(f, "yolo", spoil,
                      lambda d, done: None if d["summary"]["edge_mismatches"] + d["summary"]["other"] == 1
                      else str(d["summary"]))


@battery.case("audit", "yolo: a missing label file (no boxes) and an extra one (no image)")
def _(f):
    def spoil(conv, labels):
        (labels / "000001.txt").unlink()
        (labels / "999999.txt").write_text("0 0.5 0.5 0.1 0.1\n")

    def check(d, done):
        ok = d["images_without_labels"] == ["000001"] and d["names_without_image"] == ["999999"]
        return None if ok and "warning" in done.out else f"{d['images_without_labels']} {d['names_without_image']}"
    return audit_runs(f, "yolo", spoil, check)


@battery.case("audit", "yolo: a folder with no label file")
def _(f):
    def spoil(conv, labels):
        empty = conv / "empty"
        empty.mkdir()
        return empty
    return audit_refuses(f, "yolo", spoil, "no .txt")


@battery.case("audit", "yolo: a label 'file' that is a FIFO or a folder is not read")
def _(f):
    def spoil(conv, labels):
        os.mkfifo(labels / "000002x.txt")
        (labels / "000003y.txt").mkdir()
    return audit_runs(f, "yolo", spoil, lambda d, done: None if d["summary"]["images"] == 4 else str(d))


@battery.case("audit", "yolo: a non-UTF-8 label file name")
def _(f):
    def spoil(conv, labels):
        shutil.copy(labels / "000001.txt", os.fsencode(labels) + b"/caf\xe9.txt")
    root, conv = _audit_base(f)
    spoil(conv, _yolo(conv))
    done = cli("audit", root, "--labels", _yolo(conv), "--format", "yolo", "--out", f / "audit.json", "--no-progress",
               cwd=f)
    if "Traceback" in done.text or done.rc not in (0, 2):
        return f"exit {done.rc}: {done.text[-300:]}"
    return refused(done) if done.rc == 2 else None


@battery.case("audit", "yolo: two names of one image (0001 and 000001)")
def _(f):
    def spoil(conv, labels):
        shutil.copy(labels / "000001.txt", labels / "0001.txt")
    return audit_refuses(f, "yolo", spoil, "both name image 000001")


def _coco(change):
    def spoil(conv, labels):
        data = json.loads(labels.read_text())
        change(data)
        labels.write_text(json.dumps(data))
    return spoil


COCO_CASES = {
    "duplicate image ids": (lambda d: d["images"][1].__setitem__("id", d["images"][0]["id"]), "duplicate image id"),
    "duplicate file names": (lambda d: d["images"][1].__setitem__("file_name", d["images"][0]["file_name"]),
                             "duplicate image"),
    "two names of one image (0001.png, 000001.png)": (
        lambda d: d["images"][1].__setitem__("file_name", "0001.png"), "both name image"),
    "annotation of an unknown image id": (lambda d: d["annotations"][0].__setitem__("image_id", 999), "999"),
    "bbox NaN": (lambda d: d["annotations"][0].__setitem__("bbox", [float("nan"), 1, 2, 2]), "annotations[0]"),
    "bbox outside the image": (lambda d: d["annotations"][0].__setitem__("bbox", [5000, 5000, 2, 2]),
                               "annotations[0]"),
    "bbox a string": (lambda d: d["annotations"][0].__setitem__("bbox", "1,2,3,4"), "annotations[0]"),
    "bbox 1e300": (lambda d: d["annotations"][0].__setitem__("bbox", [1e300, 1, 2, 2]), "annotations[0]"),
    "width 0": (lambda d: d["images"][0].__setitem__("width", 0), "width"),
    "width 10^12": (lambda d: (d["images"][0].__setitem__("width", 10**12),
                               [a.pop("segmentation", None) for a in d["annotations"]]), "images[0]"),
    "images not a list": (lambda d: d.__setitem__("images", {}), "images"),
    "annotations of a second category (e.g. 'ignore')": (
        lambda d: (d["categories"].append({"id": 2, "name": "ignore"}),
                   d["annotations"][0].__setitem__("category_id", 2)), "categor"),
    "annotation of a category the file does not list": (
        lambda d: d["annotations"][0].__setitem__("category_id", 7), "categor"),
    "duplicate annotation ids": (lambda d: d["annotations"][1].__setitem__("id", d["annotations"][0]["id"]),
                                 "annotation id"),
    "file_name null": (lambda d: d["images"][0].__setitem__("file_name", None), "file_name"),
}
for _name, (_change, _needle) in COCO_CASES.items():
    battery.case("audit", f"coco: {_name}")(
        lambda f, change=_change, needle=_needle: audit_refuses(f, "coco", _coco(change), needle))


@battery.case("audit", "coco: not JSON / 100k-deep nesting / a 5000-digit integer")
def _(f):
    root, conv = _audit_base(f)
    for i, text in enumerate(("{oops", "[" * 100_000 + "]" * 100_000, '{"images": [' + "9" * 5000 + "]}")):
        path = f / f"bad{i}.json"
        path.write_text(text)
        why = expect_refusal(f, ["audit", root, "--labels", path, "--format", "coco", "--out", f / "audit.json"],
                             path.name)
        if why:
            return f"{text[:20]!r}: {why}"
    return None


@battery.case("audit", "coco: convert's own COCO audits equal")
def _(f):
    return audit_runs(f, "coco", lambda c, l: None,
                      lambda d, done: None if d["summary"]["images_equal"] == 4 else str(d["summary"]))


def _voc(stem: str, text: str):
    def spoil(conv, labels):
        (labels / "Annotations" / f"{stem}.xml").write_text(text)
    return spoil


def _voc_box(xmin, ymin, xmax, ymax, name="target", size=(32, 32), filename="000001.png", head=""):
    return (f"{head}<annotation><filename>{filename}</filename><size><width>{size[1]}</width>"
            f"<height>{size[0]}</height></size><object><name>{name}</name><bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object></annotation>")


XXE = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/hostname">]>'
       "<annotation><filename>&xxe;</filename><size><width>32</width><height>32</height></size></annotation>")
XXE_PARAM = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]>'
             "<annotation><filename>000001.png</filename><size><width>32</width><height>32</height></size>"
             "</annotation>")
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
          + "".join(f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(9))
          + "]><annotation><filename>&j;</filename><size><width>32</width><height>32</height></size></annotation>")
VOC_CASES = {
    "not XML": ("<annotation><size>", "000001.xml"),
    "external entity (file:///etc/hostname) is never read": (XXE, "000001.xml"),
    "external parameter entity": (XXE_PARAM, "000001.xml"),
    "billion laughs": (LAUGHS, "000001.xml"),
    "no size": ("<annotation><filename>000001.png</filename></annotation>", "000001.xml"),
    "size 0": (_voc_box(5, 5, 7, 7, size=(0, 32)), "000001.xml"),
    "size -32": (_voc_box(5, 5, 7, 7, size=(-32, 32)), "000001.xml"),
    "xmin a word": (_voc_box("five", 5, 7, 7), "000001.xml"),
    "xmin NaN": (_voc_box("nan", 5, 7, 7), "000001.xml"),
    "xmin inf": (_voc_box("inf", 5, 7, 7), "000001.xml"),
    "xmin 1e300": (_voc_box("1e300", 5, 7, 7), "000001.xml"),
    "xmin > xmax": (_voc_box(9, 5, 7, 7), "000001.xml"),
    "box far outside the image": (_voc_box(500, 500, 510, 510), "000001.xml"),
    "object of another class ('person') beside targets": (
        _voc_box(5, 5, 7, 7).replace("</annotation>", "<object><name>person</name><bndbox><xmin>26</xmin>"
                                     "<ymin>21</ymin><xmax>26</xmax><ymax>21</ymax></bndbox></object></annotation>"),
        "person"),
    "area_px a word": (_voc_box(5, 5, 7, 7).replace("</bndbox>", "</bndbox><area_px>x</area_px>"), "000001.xml"),
}
for _name, (_text, _needle) in VOC_CASES.items():
    battery.case("audit", f"voc: {_name}")(
        lambda f, text=_text, needle=_needle: audit_refuses(f, "voc", _voc("000001", text), needle))


@battery.case("audit", "voc: an external entity's content never reaches any output")
def _(f):
    secret = f / "secret.txt"
    secret.write_text("SECRET-42")
    text = XXE.replace("file:///etc/hostname", secret.as_uri())
    root, conv = _audit_base(f)
    (conv / "voc" / "Annotations" / "000001.xml").write_text(text)
    done = cli("audit", root, "--labels", conv / "voc", "--format", "voc", "--out", f / "audit.json", cwd=f)
    leaked = "SECRET-42" in done.text or ((f / "audit.json").exists() and "SECRET-42" in (f / "audit.json").read_text())
    return "external entity expanded" if leaked else refused(done, "000001.xml")


@battery.case("audit", "voc: xmin 5.7 (a fraction) is kept, never truncated: an edge mismatch of 0.7 px")
def _(f):
    def check(d, done):
        diffs = [x for r in d["records"] for x in r["differences"] if x["kind"] == "edge_mismatch"]
        return None if diffs and diffs[0]["box"][0] == 4.7 else str(d["records"])
    return audit_runs(f, "voc", _voc("000001", _voc_box("5.7", 5, 7, 7)), check)


@battery.case("audit", "voc: convert's own VOC audits equal")
def _(f):
    return audit_runs(f, "voc", lambda c, l: None,
                      lambda d, done: None if d["summary"]["images_equal"] == 4 else str(d["summary"]))


@battery.case("audit", "voc: a filename that names no image ('../../etc/passwd') is listed, not read")
def _(f):
    return audit_runs(f, "voc", _voc("000001", _voc_box(5, 5, 7, 7, filename="../../etc/passwd")),
                      lambda d, done: None if d["names_without_image"] == ["passwd"] else str(d["names_without_image"]))


# --out and --csv
@battery.case("audit", "--out over a user's file")
def _(f):
    (f / "mine.json").write_text('{"mine": 1}')
    return audit_refuses(f, "yolo", lambda c, l: None, "mine.json", extra=("--out", f / "mine.json"))


@battery.case("audit", "--out --force over a user's file")
def _(f):
    (f / "mine.json").write_text('{"mine": 1}')
    return audit_refuses(f, "yolo", lambda c, l: None, "mine.json", extra=("--out", f / "mine.json", "--force"))


@battery.case("audit", "--csv --force over a user's CSV")
def _(f):
    (f / "mine.csv").write_text("a,b\n")
    return audit_refuses(f, "yolo", lambda c, l: None, "mine.csv", extra=("--csv", f / "mine.csv", "--force"))


@battery.case("audit", "--csv --force over a user's CSV that an earlier audit JSON of ours names")
def _(f):
    root, conv = _audit_base(f)
    args = ["audit", root, "--labels", _yolo(conv), "--format", "yolo", "--no-progress", "--out", f / "audit.json"]
    first = cli(*args, "--csv", f / "t.csv", cwd=f)
    if first.rc:
        return first.text[-300:]
    (f / "t.csv").write_text("my own table\n")  # the user replaced our table with theirs
    return expect_refusal(f, [*args, "--csv", f / "t.csv", "--force"], "t.csv")


@battery.case("audit", "--out inside the dataset root / the labels / is a label file / is the COCO file")
def _(f):
    root, conv = _audit_base(f)
    for labels, fmt, out in ((_yolo(conv), "yolo", root / "audit.json"), (_yolo(conv), "yolo", _yolo(conv) / "a.json"),
                             (_yolo(conv), "yolo", _yolo(conv) / "000001.txt"),
                             (conv / "coco" / "all.json", "coco", conv / "coco" / "all.json")):
        why = expect_refusal(f, ["audit", root, "--labels", labels, "--format", fmt, "--out", out, "--force"],
                             "--out")
        if why:
            return f"--out {out}: {why}"
    return None


@battery.case("audit", "--csv is an image of the dataset (--force)")
def _(f):
    root, conv = _audit_base(f)
    return expect_refusal(f, ["audit", root, "--labels", _yolo(conv), "--format", "yolo", "--out", f / "a.json",
                              "--csv", root / "images" / "000001.png", "--force"], "--csv")


@battery.case("audit", "--split unknown / empty split file")
def _(f):
    root, conv = _audit_base(f)
    why = expect_refusal(f, ["audit", root, "--labels", _yolo(conv), "--format", "yolo", "--out", f / "a.json",
                             "--split", "nope/test"], "nope")
    if why:
        return why
    (root / "split_EFLNet" / "empty.txt").write_text("")
    return expect_refusal(f, ["audit", root, "--labels", _yolo(conv), "--format", "yolo", "--out", f / "a.json",
                              "--split", "split_EFLNet/empty"], "empty")


@battery.case("audit", "--threshold -1 / nan; --format bogus")
def _(f):
    root, conv = _audit_base(f)
    for extra, needle in ((("--threshold", "-1"), "--threshold"), (("--threshold", "nan"), "--threshold")):
        why = expect_refusal(f, ["audit", root, "--labels", _yolo(conv), "--format", "yolo", "--out", f / "a.json",
                                 *extra], needle)
        if why:
            return why
    return expect_refusal(f, ["audit", root, "--labels", _yolo(conv), "--format", "bogus", "--out", f / "a.json"],
                          "bogus")


@battery.case("audit", "two audits on one --out at once: never both exit 0 over each other")
def _(f):
    root, conv = _audit_base(f)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = f / "a.json"
    args = [PYTHON, "-m", "irstd_bench", "audit", str(root), "--labels", str(_yolo(conv)), "--format", "yolo",
            "--out", str(out), "--no-progress"]
    procs = [subprocess.Popen(args, cwd=f, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    errs = "".join(p.stderr.read() for p in procs)
    if "Traceback" in errs or codes != [0, 2]:
        return f"exit codes {codes}: {errs[-300:]}"
    return None if json.loads(out.read_text())["schema"] == "irstd-bench/audit" else "bad JSON"


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="surface(s) to run: compare, reproduce, audit")
    parser.add_argument("--match", default="", help="only cases whose name contains this")
    parser.add_argument("--slow", action="store_true", help="also the reproduce cases that train")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/trust3/battery"))
    parser.add_argument("--json", type=Path, default=None, help="write the verdicts here")
    parser.add_argument("--show", action="store_true", help="print each refusal's message")
    args = parser.parse_args()
    shutil.rmtree(args.scratch, ignore_errors=True)
    args.scratch.mkdir(parents=True)
    verdicts = []
    for i, case in enumerate(battery.cases):
        if args.only and case.surface not in args.only or (case.slow and not args.slow):
            continue
        if args.match not in case.name:
            continue
        folder = args.scratch / f"{i:03d}"
        folder.mkdir()
        begun = time.monotonic()
        MESSAGES.clear()
        try:
            why = case.run(folder)
        except Exception as exc:  # a broken case is a failure of the battery, shown as such
            why = f"battery error: {exc.__class__.__name__}: {exc}"
        verdicts.append({"surface": case.surface, "case": case.name, "held": why is None, "why": why,
                         "messages": list(MESSAGES),
                         "s": round(time.monotonic() - begun, 1)})
        print(f"{'ok  ' if why is None else 'FAIL'} [{case.surface}] {case.name}" + ("" if why is None else f": {why}"),
              flush=True)
        for message in MESSAGES if args.show else ():
            print(f"       {message[:240]}")
    by_surface: dict[str, list[int]] = {}
    for v in verdicts:
        by_surface.setdefault(v["surface"], [0, 0])[0 if v["held"] else 1] += 1
    for surface, (held, failed) in by_surface.items():
        print(f"{surface}: {held + failed} cases, {held} held, {failed} failed")
    if args.json:
        args.json.write_text(json.dumps(verdicts, indent=1))
    return 1 if any(not v["held"] for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
