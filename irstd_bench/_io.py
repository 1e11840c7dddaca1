"""Reading images, masks, ``.npy`` arrays and JSON files, and writing files atomically.

Every command reads its inputs here, so every command applies the same checks:

- images and masks (:func:`read_gray`, :func:`read_rgb`, :func:`read_mask`, :func:`verify_image`):
  the pixel limit (``--max-pixels``) on the declared size before decoding, every PNG chunk's CRC,
  and the IDAT stream inflating to exactly the declared size (other formats: a full decode);
  masks must hold one value per pixel (no colour, no varying alpha);
- ``.npy`` arrays (:func:`read_array`): the pixel limit on the header's shape before loading,
  never pickles;
- JSON (:func:`read_json`): any parse failure (syntax, a 5000-digit integer, deep nesting, a
  repeated key) is one :class:`~irstd_bench.errors.InputError` naming the file.

Images are decoded with Pillow without any resampling: what a function returns has the
native size of the file, in pixels.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import stat
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


def listed_name(path: Path) -> str:
    """The name of a file found by listing a folder, refused (:class:`InputError`) when it is not
    UTF-8 text: every file irstd-bench writes (JSON, CSV, Markdown) is UTF-8, so such a name
    could be neither written nor printed and would stop a command half-way."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(path.name)
        raise InputError(f"{path.parent}: file name {shown!r} is not UTF-8 text; rename it") from None
    return path.name


def refuse_special_file(path: Path) -> None:
    """Refuse a path that is a pipe, a device or a socket: reading ``/dev/zero`` or a FIFO
    never ends, so every reader of user files checks this before it reads."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # missing or unreadable: the reader's own open names it
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(f"{path}: not a regular file (a pipe, device or socket)")


def check_pixels(path: str | Path, hw: tuple[int, int]) -> None:
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
    refuse_special_file(path)
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


def _open(path: Path, data: bytes) -> Image.Image:
    """Decode an image held in memory, fully (every compressed byte is inflated), within the pixel limit."""
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
    compression, filtering, interlace = data[26], data[27], data[28]
    if not width or not height or bit_depth not in depths or compression or filtering or interlace not in (0, 1):
        return None
    return (height, width), channels


#: Adam7 interlacing passes: (x offset, y offset, x step, y step), from the PNG specification.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
#: Most bytes inflated at a time while checking a PNG's compressed data (the output is discarded).
_INFLATE_STEP = 1 << 20


def _png_raw_bytes(data: bytes) -> int:
    """Bytes the IDAT stream of a PNG with a standard header (:func:`_png_header`) inflates to:
    every pass's rows of ``1 + ceil(width x bits per pixel / 8)`` bytes (a filter byte each)."""
    (height, width), channels = _png_header(data)
    bits = data[24] * channels
    total = 0
    for x0, y0, dx, dy in _ADAM7 if data[28] == 1 else ((0, 0, 1, 1),):
        pass_w, pass_h = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if pass_w and pass_h:
            total += pass_h * (1 + (pass_w * bits + 7) // 8)
    return total


def _check_idat(path: Path, parts: list[memoryview], expected: int) -> None:
    """The IDAT data, inflated (and discarded, a megabyte at a time), must be one complete zlib
    stream (its Adler-32 checked) holding exactly the ``expected`` bytes the header declares."""
    inflater = zlib.decompressobj()
    total = 0
    try:
        for part in parts:
            while part and total <= expected:
                total += len(inflater.decompress(part, _INFLATE_STEP))
                part = inflater.unconsumed_tail
        total += len(inflater.flush())
    except zlib.error as exc:
        raise InputError(f"{path}: cannot decode image (compressed image data does not inflate: {exc})") from None
    if total != expected or not inflater.eof:
        ended = "" if inflater.eof else ", and the compressed stream does not end"
        raise InputError(
            f"{path}: cannot decode image (compressed image data inflates to {total} bytes{ended}; "
            f"the header declares {expected})"
        )


def _check_png_chunks(path: Path, data: bytes) -> None:
    """Verify every chunk of a PNG held in memory, and its compressed image data.

    Every chunk up to ``IEND`` has a valid type and a matching CRC-32 of its type and data (what
    Pillow's ``verify()`` checks; ``IEND``, which carries no data, ends the walk), none is cut
    short, and, for a PNG with a standard header, the IDAT data inflates to exactly the bytes
    the header declares (:func:`_check_idat`): flipped bytes in an IDAT chunk whose CRC was left
    stale fail, so do a truncated file and an IDAT stream that does not inflate (with a valid
    CRC). It runs on the bytes already read, so a file is read once for both check and decode.
    """
    view = memoryview(data)
    pos, end = len(_PNG_SIGNATURE), len(data)
    idat: list[memoryview] = []
    while True:
        if pos + _CHUNK_LENGTH + _CHUNK_TYPE_BYTES > end:
            raise InputError(f"{path}: cannot decode image (truncated PNG file)")
        length = int.from_bytes(view[pos : pos + _CHUNK_LENGTH], "big")
        kind = bytes(view[pos + _CHUNK_LENGTH : pos + _CHUNK_LENGTH + _CHUNK_TYPE_BYTES])
        if not _CHUNK_TYPE.fullmatch(kind):
            raise InputError(f"{path}: cannot decode image (broken PNG file: chunk {kind!r})")
        if kind == b"IEND":
            break
        body = pos + _CHUNK_LENGTH
        stop = body + _CHUNK_TYPE_BYTES + length
        if stop + _CHUNK_CRC > end:
            raise InputError(f"{path}: cannot decode image (truncated PNG file in chunk {kind!r})")
        if zlib.crc32(view[body:stop]) != int.from_bytes(view[stop : stop + _CHUNK_CRC], "big"):
            raise InputError(f"{path}: cannot decode image (broken PNG file: bad checksum in chunk {kind!r})")
        if kind == b"IDAT":
            idat.append(view[body + _CHUNK_TYPE_BYTES : stop])
        pos = stop + _CHUNK_CRC
    if _png_header(data) is not None:
        _check_idat(path, idat, _png_raw_bytes(data))


def _inspect(path: Path, data: bytes, *, decode: bool = True) -> tuple[int, Image.Image | None]:
    """Verify an image file held in memory; return ``(channels, decoded image or None)``.

    The one check of every image and mask any command reads: the pixel limit on the declared
    size (before any decompression), then for a PNG every chunk's CRC and its compressed data
    inflating to the declared size (:func:`_check_png_chunks`; Pillow skips the CRCs of IDAT
    chunks and stops inflating once it has its pixels); a PNG is decoded by Pillow only when
    ``decode``. Any other file is checked by a full decode.
    """
    header = _png_header(data)
    if header is not None:
        check_pixels(path, header[0])
        _check_png_chunks(path, data)
        return header[1], (_open(path, data) if decode else None)
    image = _open(path, data)
    if image.format == "PNG":
        _check_png_chunks(path, data)
    return _BANDS_PER_MODE.get(image.mode, len(image.getbands())), image


def _read_image(path: Path) -> Image.Image:
    """An image file read once, verified and decoded (:func:`_inspect`)."""
    return _inspect(path, _read_bytes(path))[1]


def verify_image(path: Path) -> int:
    """Check that an image file is intact (and within the pixel limit); return its channel count.

    The same check as every reader here (:func:`_inspect`): the pixel limit, every PNG chunk's
    CRC and its IDAT data inflating to exactly the declared size (flipped bytes under a stale
    CRC fail, so do a truncated file and an IDAT that does not inflate); other formats are
    decoded fully. The file is read once.
    """
    return _inspect(path, _read_bytes(path), decode=False)[0]


def _header_size(path: Path, data: bytes) -> tuple[int, int]:
    """``(H, W)`` declared by an image file held in memory (its header only; nothing is decoded)."""
    header = _png_header(data)
    if header is not None:
        return header[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
    except _DECODE_ERRORS as exc:
        raise _decode_error(path, exc) from None
    return height, width


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
    stays 16-bit (``uint16``). The file is verified first (:func:`verify_image`'s checks).

    Returns
    -------
    image : ndarray (H, W), uint8 or uint16
    """
    return _to_gray(_read_image(path))


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as 3 channels, uint8 ``(H, W, 3)``; grayscale is replicated (checks of :func:`read_gray`)."""
    image = _read_image(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        gray = np.asarray(image).astype(np.float64)
        gray = (255 * gray / max(gray.max(), 1)).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


#: Pillow modes that carry colour or transparency next to the value a mask needs.
_COLOUR_MODES = ("P", "PA", "LA", "RGB", "RGBA", "RGBX", "RGBa", "La", "CMYK", "YCbCr", "LAB", "HSV")


def _single_value(path: Path, image: Image.Image) -> np.ndarray:
    """The one value per pixel of a mask or score-map image stored with colour or alpha bands.

    Such a file is accepted only when it says nothing its gray value does not: red, green and
    blue equal at every pixel (gray saved as colour) and alpha the same at every pixel. A red
    target on black, or a target drawn only in the alpha channel, would otherwise be read
    through the luminance (76 for pure red, nothing for alpha) and scored wrong without a word.
    """
    rgba = np.asarray(image.convert("RGBA"))
    if np.any(rgba[..., 3] != rgba.flat[3]):
        raise InputError(
            f"{path}: mask or score map with a varying alpha channel (transparency); "
            "save it as a grayscale image (one value per pixel)"
        )
    if np.any(rgba[..., 0] != rgba[..., 1]) or np.any(rgba[..., 0] != rgba[..., 2]):
        raise InputError(
            f"{path}: mask or score map in colour (red, green and blue differ); "
            "save it as a grayscale image (one value per pixel)"
        )
    return np.ascontiguousarray(rgba[..., 0])


def read_mask(path: Path) -> np.ndarray:
    """Read a mask, label image or score-map image as one channel ``(H, W)``; values are kept as stored.

    The file is verified first like an image (:func:`verify_image`: the pixel limit, PNG chunk
    CRCs, a full decode): a corrupt mask would otherwise decode to wrong pixels, and wrong
    targets, silently. It is read from disk once; the check and the decode use the same bytes.
    A file with colour or alpha bands is accepted only when they agree with one gray value
    per pixel (:func:`_single_value`); otherwise it is an :class:`InputError` naming the file.

    Returns
    -------
    mask : ndarray (H, W)
        ``uint8``, ``uint16`` or ``int32`` as stored; ``float32`` for a float TIFF (finite values).
    """
    image = _read_image(path)
    if image.mode in _COLOUR_MODES:
        return _single_value(path, image)
    if image.mode == "F":  # a 32-bit float TIFF: scores as stored (a conversion to 8 bits rounds 0.7 to 1)
        values = np.asarray(image, np.float32)
        if not np.isfinite(values).all():
            raise InputError(f"{path}: mask or score map holds NaN or infinite values")
        return values
    return _to_gray(image)


#: Largest ``.npy`` header read, bytes (numpy's own default).
_NPY_MAX_HEADER = 10_000


def read_array(path: Path) -> np.ndarray:
    """Read a ``.npy`` array, checking its header before loading anything.

    The header's shape is held to the pixel limit (``--max-pixels``: the product of its
    dimensions, so ``(1, H, W)`` counts ``H x W``), so a 20000 x 20000 map is refused by name
    before 1.6 GB are read; object arrays are refused (``allow_pickle=False``).
    """
    path = Path(path)
    refuse_special_file(path)
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(file, max_header_size=_NPY_MAX_HEADER)
            elif version == (2, 0):
                shape, _, _ = np.lib.format.read_array_header_2_0(file, max_header_size=_NPY_MAX_HEADER)
            else:
                raise InputError(f"{path}: unsupported .npy format version {version}")
            pixels = math.prod(shape)
            if pixels > max_pixels():
                raise InputError(
                    f"{path}: .npy declares shape {tuple(shape)} ({pixels} values), over the limit of "
                    f"{max_pixels()} (raise it with --max-pixels)"
                )
            file.seek(0)
            return np.lib.format.read_array(file, allow_pickle=False, max_header_size=_NPY_MAX_HEADER)
    except InputError:
        raise
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"{path}: cannot read .npy ({exc.__class__.__name__}: {exc})") from None


#: First characters of the reason a too-long message of the JSON parser is cut to.
_JSON_REASON_CHARS = 160


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's members; a key given twice is an error (which value counts is ambiguous)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def read_json(path: Path):
    """A JSON file's content; any failure to read or parse it is one :class:`InputError` naming it.

    Covers a missing or unreadable file, text that is not UTF-8, a syntax error, an integer
    beyond Python's digit limit, nesting deeper than the parser's recursion limit, and a key
    repeated within one object (``{"score": 0.1, "score": 0.9}``: which one counts?).
    ``NaN``/``Infinity`` literals parse (to floats): value checks downstream name them.
    """
    path = Path(path)
    refuse_special_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a JSON file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise InputError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, an integer over the digit limit, a repeated key
        reason = str(exc).split(";")[0]
        raise InputError(f"{path}: not valid JSON ({reason[:_JSON_REASON_CHARS]})") from None


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
