"""Reading images: the one reader of the package (datasets, benchmarks, inference, the service).

RGB channel order end to end; grayscale stays grayscale; alpha is carried separately; 16-bit PNGs stay
16-bit (Pillow keeps 16-bit grayscale; 16-bit colour and grey+alpha PNGs, which Pillow reduces to 8
bits, are decoded by OpenCV through `esrgan.io.png16`); EXIF orientation is applied; the ICC profile is
kept. Pillow decodes everything else.

Sources are paths, bytes or binary file objects, all decoded in memory: the service reads uploads with
the same code as the command line reads files. The pixel count is checked from the header before any
pixel is decoded, and `formats` restricts which of Pillow's decoders may run (from the sniffed bytes).
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from esrgan.io.formats import sniff_format
from esrgan.io.image import (
    DEFAULT_MAX_PIXELS,
    IN_MEMORY,
    ImageData,
    ImageError,
    ImageInfo,
    ImageSource,
)
from esrgan.io.png16 import decode_png16, png_header

if TYPE_CHECKING:
    from PIL import Image as PILImage

_ORIENTATION_TAG = 0x0112

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


@dataclass(frozen=True, kw_only=True)
class Decoded:
    """An image as decoded, before it becomes a tensor (`decode_array`)."""

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


def _decode_pillow(path: str | Path, img: PILImage.Image, icc: bytes | None, fmt: str | None) -> Decoded:
    """A loaded, orientation-corrected Pillow image as an array of its colour (+ alpha) channels."""
    mode = img.mode

    def decoded(arr: np.ndarray, colours: int, alpha: bool, profile: bytes | None = icc) -> Decoded:
        return Decoded(array=_pixels(arr), colours=colours, alpha=alpha, icc=profile, format=fmt)

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
    png = png_header(data[:33]) if img.format == "PNG" else None
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
) -> tuple[Decoded, str | Path]:
    """Decode an image (EXIF orientation applied, ICC profile kept); errors as `ImageError`."""
    data, label = _read_source(source, name)
    with warnings.catch_warnings():
        # Pillow warns (two lines on stderr each) about damaged tags and EXIF blocks it skips; the image
        # is then either decoded or refused with an ImageError, which is what a caller reports.
        warnings.simplefilter("ignore")
        return _decode_bytes(data, label, max_pixels, formats), label


def _decode_bytes(
    data: bytes, label: str | Path, max_pixels: int | None, formats: Collection[str] | None
) -> Decoded:
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

    png = png_header(data[:33]) if fmt == "PNG" else None
    if png is not None and png[2] == 16 and png[3] in (2, 4, 6):
        # Pillow reduces 16-bit colour (and grey+alpha) PNGs to 8 bits: OpenCV decodes those, from the
        # first header (its size was checked by _open).
        try:
            arr = apply_orientation(decode_png16(data, max_pixels=max_pixels), orientation)
        except ValueError as e:
            raise ImageError(label, f"corrupt 16-bit PNG ({e})") from None
        colours = 1 if png[3] == 4 else 3
        return Decoded(array=arr, colours=colours, alpha=png[3] != 2, icc=icc, format=fmt)
    with _damaged(label, "bad EXIF orientation data"):
        upright = ImageOps.exif_transpose(img)
    with _damaged(label, "corrupt image data"):
        return _decode_pillow(label, upright, icc, fmt)


def decode_array(
    source: ImageSource,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Collection[str] | None = None,
    name: str | None = None,
) -> Decoded:
    """Decode an image as `read_image` does (same checks and errors) but stop at its array: uint8 or
    uint16 (H,W,C), the colour channels then alpha. Needs no torch (the warm start path)."""
    return _decode(source, max_pixels, formats, name)[0]


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
    import torch  # here, not at import: `decode_array` serves the warm start path without torch

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
