"""Reading and writing images for inference, keeping what a user expects of the output.

RGB channel order end to end; grayscale stays grayscale; alpha is carried separately; 16-bit PNGs stay
16-bit (Pillow keeps 16-bit grayscale, OpenCV decodes 16-bit colour, and 16-bit files are written by
the small PNG encoder below); EXIF orientation is applied on read; the ICC profile is carried over.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from esrgan.utils import atomic_write

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from esrgan.inference.upscaler import Upscaler

DEFAULT_MAX_PIXELS = 100_000_000
"""Default decompression-bomb limit (input pixels): 100 MP, e.g. 10000 x 10000."""

DEFAULT_QUALITY = 95

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR_TYPES_16 = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}
# ITU-R BT.601 luma, the weights Pillow uses for RGB -> L, so a grey round trip matches Pillow's.
_LUMA = (0.299, 0.587, 0.114)
_ORIENTATION_TAG = 0x0112


class ImageError(ValueError):
    """An input or output image cannot be handled; the message is `<file>: <reason>` on one line."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")


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


@contextlib.contextmanager
def _own_pixel_limit() -> Iterator[None]:
    # read_image enforces its own --max-pixels right after the header is parsed; Pillow's fixed
    # global limit (and its warning) would otherwise pre-empt a user's higher limit.
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _png_header(head: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None when `head` is not a PNG."""
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


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


def _to_tensor(arr: np.ndarray, max_value: float) -> torch.Tensor:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32))
    return t.permute(2, 0, 1).contiguous().div_(max_value)


def _split(arr: np.ndarray, max_value: float, gray: bool, has_alpha: bool) -> tuple[torch.Tensor, ...]:
    t = _to_tensor(arr, max_value)
    n = 1 if gray else 3
    return t[:n], (t[n : n + 1] if has_alpha else None)


def _decode_png16(path: Path, data: bytes, color_type: int, orientation: int) -> tuple:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        raise ImageError(path, "corrupt 16-bit PNG (OpenCV could not decode it)")
    arr = apply_orientation(arr, orientation)
    if arr.ndim == 2:
        return _split(arr, 65535.0, gray=True, has_alpha=False)
    channels = arr.shape[2]
    # OpenCV returns BGR(A), and grey+alpha expanded to BGRA.
    rgb = arr[..., 2::-1]
    if color_type == 4:
        gray_alpha = np.stack([rgb[..., 0], arr[..., 3]], axis=-1)
        return _split(gray_alpha, 65535.0, gray=True, has_alpha=True)
    if channels == 4:
        return _split(np.concatenate([rgb, arr[..., 3:4]], axis=-1), 65535.0, gray=False, has_alpha=True)
    return _split(rgb, 65535.0, gray=False, has_alpha=False)


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


def _decode_pillow(path: Path, img: PILImage.Image, icc: bytes | None) -> tuple:
    """-> (pixels, alpha, bit_depth, icc) from a loaded, orientation-corrected Pillow image."""
    mode = img.mode
    if mode in ("1", "L"):
        return (*_split(np.asarray(img.convert("L")), 255.0, True, False), 8, icc)
    if mode in ("LA", "La"):
        return (*_split(np.asarray(img.convert("LA")), 255.0, True, True), 8, icc)
    if mode in ("P", "PA"):
        palette_mode = img.palette.mode if img.palette is not None else ""
        has_alpha = mode == "PA" or "transparency" in img.info or palette_mode == "RGBA"
        rgb = img.convert("RGBA" if has_alpha else "RGB")
        return (*_split(np.asarray(rgb), 255.0, False, has_alpha), 8, icc)
    if mode in ("RGB", "RGBX", "YCbCr"):
        return (*_split(np.asarray(img.convert("RGB")), 255.0, False, False), 8, icc)
    if mode in ("RGBA", "RGBa"):
        return (*_split(np.asarray(img.convert("RGBA")), 255.0, False, True), 8, icc)
    if mode == "CMYK":
        # The output is RGB, so a CMYK profile must not be attached to it.
        return (*_split(np.asarray(_cmyk_to_rgb(img, icc)), 255.0, False, False), 8, None)
    if mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.uint16)
        return (*_split(arr, 65535.0, True, False), 16, icc)
    if mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageError(path, "unsupported 32-bit integer image (values outside 0..65535)")
        return (*_split(arr.astype(np.uint16), 65535.0, True, False), 16, icc)
    raise ImageError(
        path, f"unsupported image mode {mode!r} (supported: 1, L, LA, P, RGB, RGBA, CMYK, 16-bit)"
    )


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """Read an image file into an `ImageData` (EXIF orientation applied, ICC profile kept).

    Raises `ImageError` (one line naming the file) for a missing, unreadable, corrupt or truncated file,
    an unsupported mode, a multi-frame image, or more than `max_pixels` pixels (None or 0: no limit).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ImageError(path, e.strerror or str(e)) from None

    decode_errors = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError)
    with _own_pixel_limit():
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError(path, "not an image, or a format Pillow cannot read") from None
        except decode_errors as e:
            raise ImageError(path, f"corrupt image header ({e})") from None
        width, height = img.size
        if max_pixels and width * height > max_pixels:
            raise ImageError(
                path,
                f"{width}x{height} = {width * height / 1e6:.1f} MP is above the limit of "
                f"{max_pixels / 1e6:g} MP (decompression-bomb guard; raise --max-pixels to allow it)",
            )
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            raise ImageError(path, f"multi-frame image ({frames} frames) is not supported")
        try:
            img.load()
        except decode_errors as e:
            raise ImageError(path, f"corrupt or truncated image ({e})") from None
    fmt = img.format
    icc = img.info.get("icc_profile") or None
    try:
        orientation = int(img.getexif().get(_ORIENTATION_TAG, 1) or 1)
    except (*decode_errors, TypeError):
        orientation = 1  # unreadable EXIF: keep the stored orientation rather than refuse the image

    png = _png_header(data[:33]) if fmt == "PNG" else None
    if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
        # Pillow reduces 16-bit colour PNGs to 8 bits; decode those with OpenCV instead.
        pixels, alpha = _decode_png16(path, data, png[1], orientation)
        return ImageData(pixels=pixels, alpha=alpha, bit_depth=16, format=fmt, icc_profile=icc, source=path)
    try:
        img = ImageOps.exif_transpose(img)
    except decode_errors as e:
        raise ImageError(path, f"bad EXIF orientation data ({e})") from None
    pixels, alpha, bit_depth, icc = _decode_pillow(path, img, icc)
    return ImageData(
        pixels=pixels, alpha=alpha, bit_depth=bit_depth, format=fmt, icc_profile=icc, source=path
    )


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


def write_image(
    path: str | Path,
    image: ImageData,
    *,
    quality: int = DEFAULT_QUALITY,
) -> Path:
    """Write `image` atomically (no partial file on failure), in the format of `path`'s extension.

    16-bit data stays 16-bit in PNG; other formats get 8 bits. Alpha is dropped for formats that
    cannot hold it (e.g. JPEG). The ICC profile is embedded where the format supports it.
    """
    from PIL import Image

    path = Path(path)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    fmt = format_for_path(path)
    channels = image.pixels if image.alpha is None else torch.cat([image.pixels, image.alpha], 0)
    if image.bit_depth == 16 and fmt == "PNG":
        encoded = encode_png16(_quantise(channels, 65535, np.uint16), icc_profile=image.icc_profile)
        with atomic_write(path) as tmp:
            tmp.write_bytes(encoded)
        return path
    pil = Image.fromarray(_quantise(channels, 255, np.uint8))
    kwargs = _save_kwargs(fmt, quality, image.icc_profile)
    with atomic_write(path) as tmp:
        try:
            pil.save(tmp, format=fmt, **kwargs)
        except OSError as e:
            if image.alpha is None or "mode" not in str(e):
                raise
            # The format cannot store alpha (JPEG, PPM, ...): write the colour channels alone.
            pil.convert("L" if image.grayscale else "RGB").save(tmp, format=fmt, **kwargs)
    return path


# -------------------------------------------------------------------------------------------- upscale


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def upscale_image(
    upscaler: Upscaler,
    image: ImageData,
    *,
    on_tile: Callable[[int, int], None] | None = None,
) -> ImageData:
    """Super-resolve an image: colour through the model, alpha by bicubic, grayscale kept grayscale."""
    x = image.pixels.unsqueeze(0)
    in_ch = upscaler.in_channels
    if in_ch == 3:
        # Grayscale runs as replicated RGB (what RGB models were trained on) and is converted back.
        out = upscaler.upscale(x.expand(1, 3, -1, -1), on_tile=on_tile)
        pixels = _luma(out[0]) if image.grayscale else out[0]
    elif in_ch == 1:
        # A single-channel model handles each colour channel as its own grey image.
        out = upscaler.upscale(x.transpose(0, 1), on_tile=on_tile)
        pixels = out.transpose(0, 1)[0]
    else:
        raise ValueError(f"model takes {in_ch} input channels; only 1 or 3 are supported for images")
    alpha = None
    if image.alpha is not None:
        alpha = F.interpolate(
            image.alpha.unsqueeze(0), scale_factor=upscaler.scale, mode="bicubic", align_corners=False
        )[0].clamp_(0.0, 1.0)
    # The upscaler's output is already clamped; writers clamp again before quantising.
    return replace(image, pixels=pixels, alpha=alpha)
