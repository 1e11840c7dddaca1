"""Reading images and masks, and writing files atomically.

Images are decoded with Pillow without any resampling: what a function returns has the
native size of the file, in pixels.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
import zlib
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


def _read_bytes(path: Path) -> bytes:
    """The whole file, read once (images and masks are small: IRSTD files are kilobytes)."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(f"{path}: file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc.strerror or exc})") from None


def _decode_error(path: Path, exc: Exception) -> InputError:
    if isinstance(exc, Image.DecompressionBombError):
        return _bomb_error(path, exc)
    return InputError(f"{path}: cannot decode image ({exc.__class__.__name__}: {exc})")


#: Errors Pillow raises for a corrupt or unsupported file.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _open(path: Path, data: bytes | None = None) -> Image.Image:
    """Decode an image (``data``: the file's bytes when already read) within the pixel limit."""
    if data is None:
        data = _read_bytes(path)
    check_pixels(path, _header_size(path, data))
    try:
        with warnings.catch_warnings():
            # Our own limit was checked above; Pillow's default warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except _DECODE_ERRORS as exc:
        raise _decode_error(path, exc) from None
    return image


#: Channels per Pillow mode (what convert writes as an image's depth).
_BANDS_PER_MODE = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "LA": 2, "PA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}

#: A PNG file starts with its signature and then the IHDR chunk: length, type, width, height.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SIGNATURE_IHDR = _PNG_SIGNATURE + b"\x00\x00\x00\rIHDR"
#: PNG colour type -> (allowed bit depths, channels stored), from the PNG specification
#: (grayscale, RGB, palette, grayscale + alpha, RGBA); Pillow opens them with as many bands.
_PNG_COLOUR_TYPES = {0: ((1, 2, 4, 8, 16), 1), 2: ((8, 16), 3), 3: ((1, 2, 4, 8), 1), 4: ((8, 16), 2), 6: ((8, 16), 4)}
#: Bytes of a chunk's length, type and CRC fields.
_CHUNK_LENGTH, _CHUNK_TYPE_BYTES, _CHUNK_CRC = 4, 4, 4
#: A chunk type Pillow accepts (the specification asks for ASCII letters).
_CHUNK_TYPE = re.compile(rb"\w{4}")


def _png_header(data: bytes) -> tuple[tuple[int, int], int] | None:
    """``((H, W), channels)`` from a PNG's leading IHDR chunk, or ``None`` if it has none or an
    invalid one (such files go through Pillow, which reports what is wrong)."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE_IHDR):
        return None
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    bit_depth, colour_type = data[24], data[25]
    depths, channels = _PNG_COLOUR_TYPES.get(colour_type, ((), 0))
    if not width or not height or bit_depth not in depths:
        return None
    return (height, width), channels


def _check_png_chunks(path: Path, data: bytes) -> None:
    """Verify every chunk of a PNG held in memory: its CRC, and that none is cut short.

    The same checks as Pillow's ``verify()`` (every chunk up to ``IEND`` has a valid type and a
    matching CRC-32 of its type and data; ``IEND``, which carries no data, ends the walk), on
    the bytes already read, so a file is read once for both the check and the decode. Flipped
    bytes in an IDAT chunk whose CRC was left stale fail here; so does a truncated file.
    """
    view = memoryview(data)
    pos, end = len(_PNG_SIGNATURE), len(data)
    while True:
        if pos + _CHUNK_LENGTH + _CHUNK_TYPE_BYTES > end:
            raise InputError(f"{path}: cannot decode image (truncated PNG file)")
        length = int.from_bytes(view[pos : pos + _CHUNK_LENGTH], "big")
        kind = bytes(view[pos + _CHUNK_LENGTH : pos + _CHUNK_LENGTH + _CHUNK_TYPE_BYTES])
        if not _CHUNK_TYPE.fullmatch(kind):
            raise InputError(f"{path}: cannot decode image (broken PNG file: chunk {kind!r})")
        if kind == b"IEND":
            return
        body = pos + _CHUNK_LENGTH
        stop = body + _CHUNK_TYPE_BYTES + length
        if stop + _CHUNK_CRC > end:
            raise InputError(f"{path}: cannot decode image (truncated PNG file in chunk {kind!r})")
        if zlib.crc32(view[body:stop]) != int.from_bytes(view[stop : stop + _CHUNK_CRC], "big"):
            raise InputError(f"{path}: cannot decode image (broken PNG file: bad checksum in chunk {kind!r})")
        pos = stop + _CHUNK_CRC


def _inspect(path: Path, data: bytes, *, decode: bool) -> tuple[int, Image.Image | None]:
    """Verify an image file held in memory; return ``(channels, decoded image or None)``.

    A PNG with a standard header is checked chunk by chunk (:func:`_check_png_chunks`) and
    decoded only when ``decode``; any other file is decoded by Pillow (that is its check).
    """
    header = _png_header(data)
    if header is not None:
        check_pixels(path, header[0])
        _check_png_chunks(path, data)
        return header[1], (_open(path, data) if decode else None)
    image = _open(path, data)  # the pixel limit, and a full decode as the check
    if image.format == "PNG":
        _check_png_chunks(path, data)
    return _BANDS_PER_MODE.get(image.mode, len(image.getbands())), image


def verify_image(path: Path) -> int:
    """Check that an image file is intact (and within the pixel limit); return its channel count.

    PNG files are verified chunk by chunk without being decompressed: every chunk's CRC is
    checked, so flipped bytes in an IDAT chunk whose CRC was left stale fail, and so does a
    truncated file. Other formats are decoded fully. Images and masks go through this same
    check (:func:`read_mask`). The file is read once.
    """
    return _inspect(path, _read_bytes(path), decode=False)[0]


def _header_size(path: Path, data: bytes) -> tuple[int, int]:
    """``(H, W)`` from a PNG header in memory, else from Pillow (:func:`image_size`)."""
    header = _png_header(data)
    return header[0] if header is not None else image_size(path)


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


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        return np.asarray(image).astype(np.uint16 if image.mode.startswith("I;16") else np.int32)
    if image.mode != "L":
        image = image.convert("RGBA" if image.mode in ("P", "PA") else image.mode).convert("L")
    return np.asarray(image)


def read_gray(path: Path) -> np.ndarray:
    """Read an image as one channel.

    RGB, RGBA, palette, 16-bit and grayscale files all work: colour is converted to luminance
    (ITU-R 601-2, Pillow's ``"L"``), alpha is dropped, palettes are expanded. 16-bit grayscale
    stays 16-bit (``uint16``).

    Returns
    -------
    image : ndarray (H, W), uint8 or uint16
    """
    return _to_gray(_open(path))


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
    It is read from disk once; the check and the decode use the same bytes.
    """
    _, image = _inspect(path, _read_bytes(path), decode=True)
    return _to_gray(image)


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
