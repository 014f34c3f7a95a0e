"""Uploads to `ImageData` and back to bytes, in memory: sniff, check the header, then decode.

The format comes from the file's first bytes, never from its name or declared content type, and the
pixel count from its header, so an oversized image (a decompression bomb) is refused before any pixel
is decoded. Outputs are 8-bit; grayscale and alpha are kept.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.nn import functional as F

from esrgan.inference import ImageData
from esrgan.serving.errors import ApiError

if TYPE_CHECKING:
    from PIL import Image as PILImage

SUPPORTED_INPUTS = "PNG, JPEG, WebP, GIF, BMP or TIFF"
# TypeError and KeyError too: Pillow raises them on damaged TIFF and GIF files (found by fuzzing).
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    TypeError,
    KeyError,
)
_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def sniff_format(head: bytes) -> str | None:
    """Pillow format name from an image's magic bytes, or None for anything this service does not read."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
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


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES[fmt]


def extension(fmt: str) -> str:
    return _EXTENSIONS[fmt]


def open_upload(data: bytes, *, max_pixels: int) -> PILImage.Image:
    """Open `data` and read its header only; 415 for an unsupported format, 413 above `max_pixels`."""
    from PIL import Image, UnidentifiedImageError

    fmt = sniff_format(data[:32])
    if fmt is None:
        raise ApiError(415, f"not an image this service reads: send {SUPPORTED_INPUTS}")
    try:
        img = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        # Pillow's own guard, far above ours: refused from the header as well.
        raise ApiError(413, f"image is far above the limit of {max_pixels / 1e6:g} MP") from None
    except UnidentifiedImageError:
        raise ApiError(400, f"corrupt {fmt} image: its header cannot be read") from None
    except _DECODE_ERRORS as e:
        raise ApiError(400, f"corrupt {fmt} image header ({e})") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ApiError(
            413,
            f"image is {width}x{height} = {width * height / 1e6:.1f} MP, above the limit of "
            f"{max_pixels / 1e6:g} MP",
        )
    if width < 1 or height < 1:
        raise ApiError(400, f"image has no pixels ({width}x{height})")
    try:
        frames = getattr(img, "n_frames", 1)  # reads every frame header
    except _DECODE_ERRORS as e:
        raise ApiError(400, f"corrupt {fmt} image ({e})") from None
    if frames > 1:
        raise ApiError(415, f"animated or multi-page images are not supported ({frames} frames)")
    return img


def _tensor(arr: np.ndarray, max_value: float) -> torch.Tensor:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return t.permute(2, 0, 1).contiguous().div_(max_value)


def decode_upload(img: PILImage.Image) -> ImageData:
    """Decode an image opened by `open_upload` (EXIF orientation applied, ICC profile kept)."""
    from PIL import ImageOps

    fmt = img.format
    try:
        img.load()
        icc = img.info.get("icc_profile") or None
        img = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS as e:
        raise ApiError(400, f"corrupt or truncated {fmt} image ({e})") from None
    mode = img.mode
    alpha: torch.Tensor | None = None
    if mode in ("1", "L"):
        pixels = _tensor(np.asarray(img.convert("L")), 255.0)
    elif mode in ("LA", "La"):
        t = _tensor(np.asarray(img.convert("LA")), 255.0)
        pixels, alpha = t[:1], t[1:]
    elif mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.float64)
        pixels = _tensor(np.clip(arr, 0, 65535), 65535.0)
    elif mode == "CMYK":
        pixels, icc = _tensor(np.asarray(img.convert("RGB")), 255.0), None  # the profile described CMYK
    elif mode in ("P", "PA", "RGBA", "RGBa") or (mode == "RGB" and "transparency" in img.info):
        has_alpha = mode != "P" or "transparency" in img.info or getattr(img.palette, "mode", "") == "RGBA"
        t = _tensor(np.asarray(img.convert("RGBA" if has_alpha else "RGB")), 255.0)
        pixels, alpha = t[:3], (t[3:] if has_alpha else None)
    elif mode in ("RGB", "RGBX", "YCbCr"):
        pixels = _tensor(np.asarray(img.convert("RGB")), 255.0)
    else:
        raise ApiError(415, f"unsupported image mode {mode!r}")
    return ImageData(pixels=pixels, alpha=alpha, bit_depth=8, format=fmt, icc_profile=icc)


def _resize(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # antialias matters when shrinking (outscale below the model's scale); bicubic overshoot is clamped.
    out = F.interpolate(
        t.unsqueeze(0), size=(height, width), mode="bicubic", align_corners=False, antialias=True
    )
    return out[0].clamp_(0.0, 1.0)


def resize_image(image: ImageData, *, height: int, width: int) -> ImageData:
    """Bicubic resize of colour and alpha to an exact size (no-op when it already has it)."""
    if (image.height, image.width) == (height, width):
        return image
    alpha = None if image.alpha is None else _resize(image.alpha, height, width)
    return replace(image, pixels=_resize(image.pixels, height, width), alpha=alpha)


def encode_image(image: ImageData, *, fmt: str, quality: int) -> bytes:
    """8-bit PNG, JPEG (4:4:4, alpha dropped) or WebP bytes, with the ICC profile where there is one."""
    from PIL import Image

    alpha = image.alpha if fmt != "JPEG" else None
    channels = image.pixels if alpha is None else torch.cat([image.pixels, alpha], 0)
    arr = (
        channels.detach()
        .float()
        .clamp(0.0, 1.0)
        .mul_(255.0)
        .round_()
        .to(torch.uint8)
        .permute(1, 2, 0)
        .numpy()
    )
    pil = Image.fromarray(np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr))
    kwargs: dict[str, object] = {}
    if image.icc_profile:
        kwargs["icc_profile"] = image.icc_profile
    if fmt == "JPEG":
        kwargs.update(quality=quality, subsampling=0)
    elif fmt == "WEBP":
        kwargs["quality"] = quality
    else:
        kwargs["compress_level"] = 6
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **kwargs)
    return buf.getvalue()
