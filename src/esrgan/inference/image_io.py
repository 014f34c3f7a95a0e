"""Reading and writing image files: the one reader of the package (inference, datasets, benchmarks).

RGB channel order end to end; grayscale stays grayscale; alpha is carried separately; 16-bit PNGs stay
16-bit (Pillow keeps 16-bit grayscale; 16-bit colour PNGs, which Pillow reduces to 8 bits, are decoded
by the small PNG decoder below, and 16-bit files are written by the matching encoder); EXIF orientation
is applied on read; the ICC profile is carried over. Pillow and numpy only.

Sources are paths, bytes or binary file objects, all decoded in memory: the service reads uploads with
the same code as the command line reads files. The pixel count is checked from the header before any
pixel is decoded, and `formats` restricts which of Pillow's decoders may run (from the sniffed bytes).
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeAlias

import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided

from esrgan.utils import atomic_write

if TYPE_CHECKING:
    from PIL import Image as PILImage

DEFAULT_MAX_PIXELS = 100_000_000
"""Default decompression-bomb limit (input pixels): 100 MP, e.g. 10000 x 10000."""

DEFAULT_QUALITY = 95

IMAGE_EXTENSIONS = frozenset(
    {
        ".png",
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".webp",
        ".bmp",
        ".tif",
        ".tiff",
        ".gif",
        ".tga",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".qoi",
        ".avif",
    }
)
"""Extensions (lower case) of the files a folder scan picks up; a file named explicitly is always tried."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour type -> channels (grey, grey+alpha, RGB, RGBA; palettes are never 16-bit).
_PNG_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4}
# Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_ORIENTATION_TAG = 0x0112


def is_image_file(path: str | Path) -> bool:
    """Whether `path` names an image by its extension (see `IMAGE_EXTENSIONS`)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


ImageSource: TypeAlias = "str | os.PathLike[str] | bytes | BinaryIO"
"""What the readers take: a path, the file's bytes, or a binary file object (read to its end)."""

ErrorKind = Literal["unreadable", "unsupported", "too_large", "corrupt"]

IN_MEMORY = "<memory>"
"""How errors name an in-memory source that was given no name."""


class ImageError(ValueError):
    """An input or output image cannot be handled; the message is `<file>: <reason>` on one line.

    `kind` says why, for callers that answer differently (the service: 415, 413 or 400): the source
    cannot be read, is no image or one of an unsupported format/mode/frame count, has too many pixels,
    or is damaged.
    """

    def __init__(self, path: str | Path, reason: str, *, kind: ErrorKind = "corrupt") -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        self.kind: ErrorKind = kind
        super().__init__(f"{self.path}: {self.reason}")


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """What an image's header says, before any pixel is decoded."""

    format: str
    """Pillow format name (PNG, JPEG, ...)."""
    width: int
    """As stored, before EXIF orientation (which may swap width and height)."""
    height: int


@dataclass(kw_only=True)
class ImageData:
    """An image ready for a model: float32 pixels in [0, 1], channels first, RGB order."""

    pixels: torch.Tensor
    """(C,H,W), C = 1 (grayscale) or 3 (RGB)."""
    alpha: torch.Tensor | None = None
    """(1,H,W) opacity, or None."""
    bit_depth: int = 8
    """8 or 16: the depth to write back (16 only where the output format can hold it)."""
    format: str | None = None
    """Pillow format name of the source file (PNG, JPEG, ...), or None."""
    icc_profile: bytes | None = field(default=None, repr=False)
    source: Path | None = None

    def __post_init__(self) -> None:
        if self.pixels.dim() != 3 or self.pixels.shape[0] not in (1, 3):
            raise ValueError(f"pixels must be (1|3, H, W), got {tuple(self.pixels.shape)}")
        if self.alpha is not None and (
            self.alpha.dim() != 3 or self.alpha.shape[0] != 1 or self.alpha.shape[1:] != self.pixels.shape[1:]
        ):
            raise ValueError(
                f"alpha must be (1, H, W) matching pixels {tuple(self.pixels.shape)}, "
                f"got {tuple(self.alpha.shape)}"
            )
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")

    @property
    def height(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[2])

    @property
    def grayscale(self) -> bool:
        return self.pixels.shape[0] == 1

    @property
    def mode(self) -> str:
        """Pillow-style mode name: L, LA, RGB or RGBA."""
        base = "L" if self.grayscale else "RGB"
        return base + ("A" if self.alpha is not None else "")

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


# ----------------------------------------------------------------------------------------------- read


_pixel_limit_lock = threading.Lock()
_pixel_limit_users = 0
_pillow_max_pixels: int | None = None


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[None]:
    # _decode enforces its own max_pixels right after the header is parsed; Pillow's fixed global limit
    # would otherwise pre-empt a user's higher limit. Counted, so that threads reading at the same time
    # restore Pillow's value only when the last one is done.
    global _pixel_limit_users, _pillow_max_pixels
    from PIL import Image

    with _pixel_limit_lock:
        if _pixel_limit_users == 0:
            _pillow_max_pixels = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _pixel_limit_users += 1
    try:
        yield
    finally:
        with _pixel_limit_lock:
            _pixel_limit_users -= 1
            if _pixel_limit_users == 0:
                Image.MAX_IMAGE_PIXELS = _pillow_max_pixels


@contextlib.contextmanager
def _damaged(path: str | Path, what: str) -> Iterator[None]:
    """Turn what Pillow raises on damaged data into one `ImageError` line (out of memory stays itself).

    Pillow's decoders answer malformed files with OSError and ValueError mostly, but also TypeError,
    KeyError, IndexError, struct.error, ZeroDivisionError, ... (seen with scripts/fuzz_images.py).
    """
    try:
        yield
    except (ImageError, MemoryError):
        raise
    except Exception as e:
        raise ImageError(path, f"{what} ({' '.join(str(e).split()) or type(e).__name__})") from None


def _png_header(head: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's first chunk, or None when it is no IHDR."""
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, color_type = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, color_type


def _check_size(path: str | Path, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels and width * height > max_pixels:
        raise ImageError(
            path,
            f"{width}x{height} = {width * height / 1e6:.1f} MP is above the limit of "
            f"{max_pixels / 1e6:g} MP (decompression-bomb guard)",
            kind="too_large",
        )


def apply_orientation(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H,W[,C]) array, as `PIL.ImageOps.exif_transpose` does."""

    def transpose(a: np.ndarray) -> np.ndarray:
        return np.swapaxes(a, 0, 1)

    ops: dict[int, Callable[[np.ndarray], np.ndarray]] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: transpose,
        6: lambda a: np.rot90(a, -1),
        7: lambda a: transpose(a[::-1, ::-1]),
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


_UNFILTER_BLOCK_BYTES = 1 << 24
# Average and Paeth rows take one numpy step per anti-diagonal (height + width - 1 of them, ~0.1 ms each):
# 2^18 covers any realistic shape (a 100000 x 1000 panorama needs 101k); a 1 x 10^8 strip would take hours.
_MAX_DIAGONALS = 1 << 18


def _unfilter_simple(raw: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Undo None, Sub and Up filters of (h, width, bpp) bytes, vectorised over blocks of rows."""
    h, width, bpp = raw.shape
    out = np.empty_like(raw)
    block = max(1, _UNFILTER_BLOCK_BYTES // max(1, width * bpp))
    prev = np.zeros((width, bpp), np.uint8)
    for y0 in range(0, h, block):
        rows, k = raw[y0 : y0 + block], kinds[y0 : y0 + block]
        part = rows.copy()
        sub = k == 1
        if sub.any():
            part[sub] = np.cumsum(rows[sub], axis=1, dtype=np.uint8)  # wraps modulo 256, as PNG says
        up = k == 2
        if up.any():
            # A run of Up rows adds up column-wise from the last None/Sub row before it (or the previous
            # block's last row): a cumulative sum, minus the sum just before that row.
            part = np.cumsum(part, axis=0, dtype=np.uint8)
            anchor = np.maximum.accumulate(np.where(up, -1, np.arange(len(k))))
            restart = anchor > 0
            part[restart] -= part[anchor[restart] - 1]
            part[anchor < 0] += prev  # rows before the block's first None/Sub row continue from `prev`
        out[y0 : y0 + block] = part
        prev = part[-1]
    return out


def _unfilter(rows: np.ndarray, width: int, bpp: int) -> np.ndarray:
    """Undo the PNG row filters of `rows` (h, 1 + width*bpp: filter type, then bytes) -> (h, width, bpp)."""
    h = rows.shape[0]
    kinds = rows[:, 0]
    if int(kinds.max()) > 4:
        raise ValueError(f"unknown PNG filter type {int(kinds.max())}")
    raw = rows[:, 1:].reshape(h, width, bpp)
    if int(kinds.max()) <= 2:
        return _unfilter_simple(raw, kinds)
    if h + width - 1 > _MAX_DIAGONALS:
        raise ValueError(
            f"{width}x{h} with Average/Paeth filters is too elongated for the 16-bit decoder "
            f"(width + height above {_MAX_DIAGONALS})"
        )
    # Average and Paeth need each row's left neighbour first; but every filter reads only the left, upper
    # and upper-left pixels, so the pixels of one anti-diagonal (x + y = t) are independent: one
    # vectorised step per anti-diagonal, on strided views of a buffer with a zero row and column around.
    padded = np.zeros((h + 1, width + 1, bpp), np.uint8)
    flat, src = padded.reshape(-1), np.ascontiguousarray(rows).reshape(-1)
    row_out, row_in = (width + 1) * bpp, width * bpp + 1

    def diagonal(y: int, x: int, n: int, *, writeable: bool = False) -> np.ndarray:
        # n pixels from padded[y, x] going one row down and one pixel left each time
        start = flat[y * row_out + x * bpp :]
        return as_strided(start, shape=(n, bpp), strides=(row_out - bpp, 1), writeable=writeable)

    for t in range(h + width - 1):
        y0, y1 = max(0, t - width + 1), min(h - 1, t)
        n, x0 = y1 - y0 + 1, t - y0
        a = diagonal(y0 + 1, x0, n).astype(np.int16)
        b = diagonal(y0, x0 + 1, n).astype(np.int16)
        c = diagonal(y0, x0, n).astype(np.int16)
        kind = kinds[y0 : y1 + 1, None]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = np.select([kind == 1, kind == 2, kind == 3, kind == 4], [a, b, (a + b) >> 1, paeth], 0)
        filtered = as_strided(src[y0 * row_in + 1 + x0 * bpp :], shape=(n, bpp), strides=(row_in - bpp, 1))
        diagonal(y0 + 1, x0 + 1, n, writeable=True)[...] = (filtered + pred).astype(np.uint8)
    return padded[1:, 1:]


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each chunk up to IEND; a truncated last chunk ends the file."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        yield kind, data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return
        pos += 12 + length


def decode_png16(data: bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode a 16-bit PNG to an (H,W,C) uint16 array in the file's channel order (C: 1 grey, 2 grey+alpha,
    3 RGB, 4 RGBA); interlaced files included. ValueError for anything else, a damaged file, or more than
    `max_pixels` pixels (checked before anything is decompressed).

    Pillow reduces 16-bit colour PNGs to 8 bits; this keeps every bit, like `encode_png16` writes them.
    Decompression stops at the size the header announces, so a zlib bomb costs no more than the image.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    chunks = _png_chunks(data)
    kind, header = next(chunks, (b"", b""))
    # The header must come first, as the spec and Pillow (whose size the pixel limit checked) read it.
    if kind != b"IHDR" or len(header) != 13:
        raise ValueError("missing PNG header")
    width, height, depth, color_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 16 or color_type not in _PNG_CHANNELS:
        raise ValueError(f"not a 16-bit PNG without palette (bit depth {depth}, colour type {color_type})")
    if not 0 < width < 2**31 or not 0 < height < 2**31:
        raise ValueError(f"invalid PNG size {width}x{height}")
    if compression != 0 or filtering != 0 or interlace not in (0, 1):
        raise ValueError(
            f"invalid PNG header (compression {compression}, filter {filtering}, interlace {interlace})"
        )
    if max_pixels and width * height > max_pixels:
        raise ValueError(f"{width}x{height} pixels is above the limit of {max_pixels}")
    channels = _PNG_CHANNELS[color_type]
    bpp = 2 * channels
    passes = []
    for x0, y0, dx, dy in _ADAM7 if interlace else ((0, 0, 1, 1),):
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w > 0 and h > 0:
            passes.append((x0, y0, dx, dy, w, h))
    expected = sum(h * (w * bpp + 1) for *_, w, h in passes)
    raw = bytearray()
    inflate = zlib.decompressobj()
    try:
        for kind, payload in chunks:
            if kind == b"IHDR":  # Pillow takes the last one before the data as the size: be strict
                raise ValueError("more than one PNG header")
            if kind == b"IDAT" and len(raw) < expected:
                raw += inflate.decompress(inflate.unconsumed_tail + payload, expected - len(raw))
    except zlib.error as e:
        raise ValueError(f"corrupt compressed image data ({e})") from None
    if len(raw) < expected:
        raise ValueError(f"image data is shorter than the header says ({len(raw)} of {expected} bytes)")
    out = np.empty((height, width, bpp), np.uint8)
    pos = 0
    for x0, y0, dx, dy, w, h in passes:
        size = h * (w * bpp + 1)
        rows = np.frombuffer(raw, np.uint8, count=size, offset=pos).reshape(h, w * bpp + 1)
        out[y0::dy, x0::dx] = _unfilter(rows, w, bpp)
        pos += size
    return out.view(">u2").reshape(height, width, channels).astype(np.uint16)


@dataclass(frozen=True, kw_only=True)
class _Decoded:
    array: np.ndarray
    """(H,W,C) uint8 or uint16: the colour channels, then alpha if any."""
    colours: int
    """1 (grey) or 3 (RGB)."""
    alpha: bool
    icc: bytes | None
    format: str | None


def _cmyk_to_rgb(img: PILImage.Image, icc: bytes | None) -> PILImage.Image:
    # A CMYK profile describes the CMYK data: use it to reach sRGB when littleCMS is available.
    if icc:
        try:
            from PIL import ImageCms
        except ImportError:
            return img.convert("RGB")
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (OSError, ImageCms.PyCMSError):
            converted = None
        if converted is not None:
            return converted
    return img.convert("RGB")


def _pixels(arr: np.ndarray) -> np.ndarray:
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode_pillow(path: str | Path, img: PILImage.Image, icc: bytes | None, fmt: str | None) -> _Decoded:
    """A loaded, orientation-corrected Pillow image as an array of its colour (+ alpha) channels."""
    mode = img.mode

    def decoded(arr: np.ndarray, colours: int, alpha: bool, profile: bytes | None = icc) -> _Decoded:
        return _Decoded(array=_pixels(arr), colours=colours, alpha=alpha, icc=profile, format=fmt)

    if mode in ("1", "L"):
        return decoded(np.asarray(img.convert("L")), 1, False)
    if mode in ("LA", "La"):
        return decoded(np.asarray(img.convert("LA")), 1, True)
    if mode in ("P", "PA"):
        palette_mode = img.palette.mode if img.palette is not None else ""
        has_alpha = mode == "PA" or "transparency" in img.info or palette_mode == "RGBA"
        return decoded(np.asarray(img.convert("RGBA" if has_alpha else "RGB")), 3, has_alpha)
    if mode in ("RGBX", "YCbCr") or (mode == "RGB" and "transparency" not in img.info):
        return decoded(np.asarray(img.convert("RGB")), 3, False)
    if mode in ("RGB", "RGBA", "RGBa"):  # RGB here has a transparent colour (PNG tRNS): alpha from it
        return decoded(np.asarray(img.convert("RGBA")), 3, True)
    if mode == "CMYK":
        # The output is RGB, so a CMYK profile must not be attached to it.
        return decoded(np.asarray(_cmyk_to_rgb(img, icc)), 3, False, profile=None)
    if mode.startswith("I;16"):
        return decoded(np.asarray(img).astype(np.uint16), 1, False)
    if mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageError(
                path, "unsupported 32-bit integer image (values outside 0..65535)", kind="unsupported"
            )
        return decoded(arr.astype(np.uint16), 1, False)
    raise ImageError(
        path,
        f"unsupported image mode {mode!r} (supported: 1, L, LA, P, RGB, RGBA, CMYK, 16-bit)",
        kind="unsupported",
    )


def _read_source(source: ImageSource, name: str | None) -> tuple[bytes, str | Path]:
    """The bytes of `source` and how errors name it (the path, else `name`, a file's name or IN_MEMORY)."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), name or IN_MEMORY
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            return path.read_bytes(), path
        except OSError as e:
            raise ImageError(path, e.strerror or str(e), kind="unreadable") from None
    file_name = getattr(source, "name", None)
    label = name or (file_name if isinstance(file_name, str) else IN_MEMORY)
    try:
        data = source.read()
    except OSError as e:
        raise ImageError(label, e.strerror or str(e), kind="unreadable") from None
    if not isinstance(data, bytes):
        raise TypeError(f"{label}: expected a binary file object, got {type(data).__name__} from read()")
    return data, label


def sniff_format(head: bytes) -> str | None:
    """Pillow format name from an image's first bytes (PNG, JPEG, WEBP, GIF, BMP, TIFF), or None."""
    if head.startswith(_PNG_SIGNATURE):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head.startswith(b"BM") and len(head) >= 18:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return None


def _open(
    data: bytes, label: str | Path, max_pixels: int | None, formats: Collection[str] | None
) -> PILImage.Image:
    """Open `data` and read its header only: format, size (checked against `max_pixels`), frame count.

    With `formats`, the format sniffed from the first bytes must be one of them, and only its decoder
    runs; without, Pillow tries every format it knows (TGA and others have no magic bytes to sniff).
    Call inside `_own_pixel_limit()`.
    """
    from PIL import Image, UnidentifiedImageError

    sniffed = sniff_format(data[:32])
    allowed: list[str] | None = None
    if formats is not None:
        if sniffed is None or sniffed not in formats:
            raise ImageError(label, f"not an image of format {', '.join(formats)}", kind="unsupported")
        allowed = [sniffed]
    with _damaged(label, "corrupt image header"):
        try:
            img = Image.open(io.BytesIO(data), formats=allowed)
        except UnidentifiedImageError:
            if sniffed is not None:
                raise ImageError(label, f"corrupt {sniffed} image: its header cannot be read") from None
            raise ImageError(
                label, "not an image, or a format Pillow cannot read", kind="unsupported"
            ) from None
    width, height = img.size
    _check_size(label, width, height, max_pixels)
    png = _png_header(data[:33]) if img.format == "PNG" else None
    if png is not None:  # Pillow's size is the last header's; decode_png16 reads the first
        _check_size(label, png[0], png[1], max_pixels)
    if width < 1 or height < 1:
        raise ImageError(label, f"image has no pixels ({width}x{height})")
    with _damaged(label, "corrupt image header"):
        frames = getattr(img, "n_frames", 1)  # reads every frame's header
    if frames > 1:
        raise ImageError(label, f"multi-frame image ({frames} frames) is not supported", kind="unsupported")
    return img


def _decode(
    source: ImageSource, max_pixels: int | None, formats: Collection[str] | None, name: str | None
) -> tuple[_Decoded, str | Path]:
    """Decode an image (EXIF orientation applied, ICC profile kept); errors as `ImageError`."""
    data, label = _read_source(source, name)
    with warnings.catch_warnings():
        # Pillow warns (two lines on stderr each) about damaged tags and EXIF blocks it skips; the image
        # is then either decoded or refused with an ImageError, which is what a caller reports.
        warnings.simplefilter("ignore")
        return _decode_bytes(data, label, max_pixels, formats), label


def _decode_bytes(
    data: bytes, label: str | Path, max_pixels: int | None, formats: Collection[str] | None
) -> _Decoded:
    from PIL import ImageOps

    with _own_pixel_limit():
        img = _open(data, label, max_pixels, formats)
        with _damaged(label, "corrupt or truncated image"):
            img.load()
    fmt = img.format
    icc = img.info.get("icc_profile") or None
    try:
        orientation = int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except MemoryError:
        raise
    except Exception:
        orientation = 1  # unreadable EXIF: keep the stored orientation rather than refuse the image

    png = _png_header(data[:33]) if fmt == "PNG" else None
    if png is not None and png[2] == 16 and png[3] in (2, 4, 6):
        # Pillow reduces 16-bit colour (and grey+alpha) PNGs to 8 bits: decode those ourselves, from the
        # first header (its size was checked by _open).
        try:
            arr = apply_orientation(decode_png16(data, max_pixels=max_pixels), orientation)
        except ValueError as e:
            raise ImageError(label, f"corrupt 16-bit PNG ({e})") from None
        colours = 1 if png[3] == 4 else 3
        return _Decoded(array=arr, colours=colours, alpha=png[3] != 2, icc=icc, format=fmt)
    with _damaged(label, "bad EXIF orientation data"):
        upright = ImageOps.exif_transpose(img)
    with _damaged(label, "corrupt image data"):
        return _decode_pillow(label, upright, icc, fmt)


def probe_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Collection[str] | None = None,
    name: str | None = None,
) -> ImageInfo:
    """Read an image's header only: its format and size, refused as `read_image` would refuse them.

    For callers that must say no before paying for decoding (the service, before queueing a request):
    `ImageError` for a source that is no image, not one of `formats` (Pillow names, sniffed from the
    bytes), above `max_pixels`, empty or multi-frame. `name` names an in-memory source in errors.
    """
    data, label = _read_source(source, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with _own_pixel_limit():
            img = _open(data, label, max_pixels, formats)
    return ImageInfo(format=str(img.format), width=img.size[0], height=img.size[1])


def read_image(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Collection[str] | None = None,
    name: str | None = None,
) -> ImageData:
    """Read an image file, its bytes or a binary file object into an `ImageData` (EXIF orientation
    applied, ICC profile kept), decoding in memory.

    Raises `ImageError` (one line naming the file, or `name` for in-memory sources) for a missing,
    unreadable, corrupt or truncated file, an unsupported mode, a multi-frame image, a format not in
    `formats` (Pillow names, sniffed from the bytes; None: any), or more than `max_pixels` pixels (None
    or 0: no limit), the last two checked from the header before any pixel is decoded.
    """
    d, label = _decode(source, max_pixels, formats, name)
    bit_depth = 16 if d.array.dtype == np.uint16 else 8
    t = torch.from_numpy(d.array.astype(np.float32)).permute(2, 0, 1).contiguous()
    t.div_(65535.0 if bit_depth == 16 else 255.0)
    return ImageData(
        pixels=t[: d.colours],
        alpha=t[d.colours :] if d.alpha else None,
        bit_depth=bit_depth,
        format=d.format,
        icc_profile=d.icc,
        source=label if isinstance(label, Path) else None,
    )


def read_rgb(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Collection[str] | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Read an image as a new (H,W,3) RGB array at its own depth (uint8, or uint16 for 16-bit files).

    What datasets and benchmarks want: grayscale replicated to three channels, alpha dropped. Same
    sources, decoding and errors as `read_image`.
    """
    d, _ = _decode(source, max_pixels, formats, name)
    colour = d.array[:, :, : d.colours]
    return np.repeat(colour, 3, axis=2) if d.colours == 1 else np.array(colour, order="C")


# ---------------------------------------------------------------------------------------------- write


def format_for_path(path: str | Path) -> str:
    """Pillow format name that writes `path`'s extension; ValueError for an unknown/unwritable one."""
    from PIL import Image

    ext = Path(path).suffix.lower()
    if not ext:
        raise ValueError(f"{path}: no file extension to choose an image format from")
    Image.init()
    fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{path}: cannot write images with extension {ext!r}")
    return fmt


def _quantise(t: torch.Tensor, max_value: int, dtype: type[np.generic]) -> np.ndarray:
    # One float copy (clamp), then in place: outputs can be gigapixels.
    arr = t.detach().float().clamp(0.0, 1.0).mul_(max_value).round_().permute(1, 2, 0).numpy()
    arr = arr.astype(dtype)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode_png16(arr: np.ndarray, *, icc_profile: bytes | None = None, level: int = 6) -> bytes:
    """Encode an (H,W) or (H,W,C) uint16 array (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG.

    Neither Pillow nor OpenCV writes every 16-bit layout (grey+alpha, ICC with colour); this does.
    Rows use the PNG "Sub" filter, computed in bulk with numpy.
    """
    if arr.dtype != np.uint16:
        raise ValueError(f"expected uint16, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    h, w, c = arr.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}.get(c)
    if color_type is None:
        raise ValueError(f"cannot write {c} channels as PNG")
    raw = np.ascontiguousarray(arr, dtype=">u2").view(np.uint8).reshape(h, w * c * 2)
    bpp = c * 2
    filtered = raw.copy()
    filtered[:, bpp:] -= raw[:, :-bpp]  # uint8 arithmetic wraps modulo 256, as PNG specifies
    rows = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)  # filter byte 1 = Sub
    out = [_PNG_SIGNATURE, _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))]
    if icc_profile:
        out.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc_profile)))
    out.append(_png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def _save_kwargs(fmt: str, quality: int, icc: bytes | None) -> dict[str, object]:
    kw: dict[str, object] = {}
    if icc:
        kw["icc_profile"] = icc
    if fmt == "JPEG":
        # 4:4:4 chroma: subsampling would throw away the colour detail the model just made.
        kw.update(quality=quality, subsampling=0)
    elif fmt in ("WEBP", "AVIF"):
        kw["quality"] = quality
    elif fmt == "PNG":
        kw["compress_level"] = 6
    return kw


def encode_image(image: ImageData, fmt: str, *, quality: int = DEFAULT_QUALITY) -> bytes:
    """Encode `image` in memory as Pillow format `fmt` (PNG, JPEG, WEBP, ...).

    16-bit data stays 16-bit in PNG; other formats get 8 bits. Alpha is dropped for formats that
    cannot hold it (e.g. JPEG). The ICC profile is embedded where the format supports it.
    """
    from PIL import Image

    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    Image.init()
    if fmt not in Image.SAVE:
        raise ValueError(f"cannot write images in format {fmt!r}")
    channels = image.pixels if image.alpha is None else torch.cat([image.pixels, image.alpha], 0)
    if image.bit_depth == 16 and fmt == "PNG":
        return encode_png16(_quantise(channels, 65535, np.uint16), icc_profile=image.icc_profile)
    pil = Image.fromarray(_quantise(channels, 255, np.uint8))
    kwargs = _save_kwargs(fmt, quality, image.icc_profile)
    # In memory, also for files: Pillow's raw encoders (BMP, TGA, PPM, ...) write to a file descriptor
    # and take a short write on a full disk for success, leaving a truncated image.
    encoded = io.BytesIO()
    try:
        pil.save(encoded, format=fmt, **kwargs)
    except OSError as e:
        if image.alpha is None or "mode" not in str(e):
            raise
        # The format cannot store alpha (JPEG, PPM, ...): write the colour channels alone.
        encoded = io.BytesIO()
        pil.convert("L" if image.grayscale else "RGB").save(encoded, format=fmt, **kwargs)
    return encoded.getvalue()


def write_image(
    path: str | Path,
    image: ImageData,
    *,
    quality: int = DEFAULT_QUALITY,
) -> Path:
    """Write `image` atomically (no partial file on failure), in the format of `path`'s extension.

    Encoded by `encode_image`: 16-bit PNG, alpha and ICC profile where the format holds them.
    """
    path = Path(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    data = encode_image(image, format_for_path(path), quality=quality)
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path
