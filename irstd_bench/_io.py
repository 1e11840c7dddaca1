"""Reading images and masks, and writing files atomically.

Images are decoded with Pillow without any resampling: what a function returns has the
native size of the file, in pixels.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from irstd_bench._outputs import sweep_stale_temps, temp_path
from irstd_bench.errors import InputError

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


#: Largest image irstd-bench decodes by default, in pixels (width x height): 100 megapixels, far
#: above any IRSTD release (the largest, SIRST v2, is under 1 Mpx) and far below what exhausts
#: memory. A PNG header may declare 100000 x 100000 px in a few bytes (a decompression bomb).
#: Pillow keeps its own hard stop at 2 x ``Image.MAX_IMAGE_PIXELS`` (about 179 Mpx): a larger
#: ``--max-pixels`` cannot decode beyond it (that is refused with the same one-line error).
DEFAULT_MAX_PIXELS = 100_000_000
#: Environment variable through which ``--max-pixels`` reaches every reader, worker processes
#: included (set for the duration of a command by :func:`pixel_limit`, then restored).
MAX_PIXELS_ENV = "IRSTD_BENCH_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit now in force: ``--max-pixels`` (via :data:`MAX_PIXELS_ENV`) or the default."""
    text = os.environ.get(MAX_PIXELS_ENV, "")
    try:
        value = int(text)
    except ValueError:
        return DEFAULT_MAX_PIXELS
    return value if value > 0 else DEFAULT_MAX_PIXELS


@contextlib.contextmanager
def pixel_limit(limit: int | None) -> Iterator[None]:
    """Apply ``--max-pixels`` to every image read inside the block (``None``: the default)."""
    if limit is None:
        yield
        return
    if isinstance(limit, bool) or int(limit) < 1:
        raise InputError(f"--max-pixels {limit}: must be a positive number of pixels")
    saved = os.environ.get(MAX_PIXELS_ENV)
    os.environ[MAX_PIXELS_ENV] = str(int(limit))
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(MAX_PIXELS_ENV, None)
        else:
            os.environ[MAX_PIXELS_ENV] = saved


def check_pixels(path: Path, hw: tuple[int, int]) -> None:
    """Refuse an image whose declared size exceeds the pixel limit, naming the file and its size."""
    limit = max_pixels()
    if hw[0] * hw[1] > limit:
        raise InputError(
            f"{path}: declares {hw[1]}x{hw[0]} px ({hw[0] * hw[1]} pixels), over the limit of {limit} "
            "(a decompression bomb? raise it with --max-pixels)"
        )


def _bomb_error(path: Path, exc: Exception) -> InputError:
    return InputError(f"{path}: {exc} (a decompression bomb? raise the limit with --max-pixels)")


def _open(path: Path) -> Image.Image:
    check_pixels(path, image_size(path))
    try:
        with warnings.catch_warnings():
            # Our own limit was checked above; Pillow's default warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            image.load()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot decode image ({exc.__class__.__name__}: {exc})") from None
    return image


#: Channels per Pillow mode (what convert writes as an image's depth).
_BANDS_PER_MODE = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "LA": 2, "PA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}


def verify_image(path: Path) -> int:
    """Check that an image file is intact (and within the pixel limit); return its channel count.

    PNG files are verified chunk by chunk without being decompressed: every chunk's CRC is
    checked, so flipped bytes in an IDAT chunk whose CRC was left stale fail, and so does a
    truncated file. Other formats are decoded fully. Images and masks go through this same
    check (:func:`read_mask`).
    """
    check_pixels(path, image_size(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                depth = _BANDS_PER_MODE.get(image.mode, len(image.getbands()))
                if image.format == "PNG":
                    image.verify()
                else:
                    image.load()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: cannot decode image ({exc.__class__.__name__}: {exc})") from None
    return depth


#: A PNG file starts with its signature and then the IHDR chunk: length, type, width, height.
_PNG_SIGNATURE_IHDR = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def image_size(path: Path) -> tuple[int, int]:
    """Return ``(height, width)`` in pixels of an image file, reading only its header.

    PNG sizes are read from the first 24 bytes (the IHDR chunk, which the PNG specification
    puts first); other formats, and PNG files that do not start that way, go through Pillow.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(24)
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc})") from None
    if len(head) == 24 and head.startswith(_PNG_SIGNATURE_IHDR):
        width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if width and height:
            return height, width
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, exc) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{path}: cannot decode image ({exc})") from None
    return height, width


def read_gray(path: Path) -> np.ndarray:
    """Read an image as one channel.

    RGB, RGBA, palette, 16-bit and grayscale files all work: colour is converted to luminance
    (ITU-R 601-2, Pillow's ``"L"``), alpha is dropped, palettes are expanded. 16-bit grayscale
    stays 16-bit (``uint16``).

    Returns
    -------
    image : ndarray (H, W), uint8 or uint16
    """
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.uint16 if image.mode.startswith("I;16") else np.int32)
    if image.mode != "L":
        image = image.convert("RGBA" if image.mode in ("P", "PA") else image.mode).convert("L")
    return np.asarray(image)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as 3 channels, uint8 ``(H, W, 3)``; grayscale is replicated."""
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(image).astype(np.float64)
        gray = (255 * gray / max(gray.max(), 1)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def read_mask(path: Path) -> np.ndarray:
    """Read a mask or label image as one channel ``(H, W)``; values are kept as stored.

    The file is verified first like an image (:func:`verify_image`: PNG chunk CRCs, the pixel
    limit): a corrupt mask would otherwise decode to wrong pixels, and wrong targets, silently.
    """
    verify_image(path)
    return read_gray(path)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was. The temporary
    is named so that a later run recognises it as stale if this process is killed
    (:func:`irstd_bench._outputs.sweep_stale_temps`), and the file gets the user's umask.
    ``suffix`` is kept for callers; the name no longer needs it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path.parent)
    tmp_path = temp_path(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")
