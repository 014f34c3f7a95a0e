"""Writing images: in memory (`encode_image`) or to a file atomically (`write_image`), in any format
Pillow writes; 16-bit PNG through OpenCV (`esrgan.io.png16`), where Pillow writes 8 bits only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from esrgan.io.formats import format_for_path
from esrgan.io.image import DEFAULT_QUALITY, ImageData
from esrgan.io.png16 import encode_png16
from esrgan.utils import atomic_write

if TYPE_CHECKING:
    import torch


def _quantise(t: torch.Tensor, max_value: int, dtype: type[np.generic]) -> np.ndarray:
    # One float copy (clamp), then in place: outputs can be gigapixels.
    arr = t.detach().float().clamp(0.0, 1.0).mul_(max_value).round_().permute(1, 2, 0).numpy()
    arr = arr.astype(dtype)
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


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
    import torch

    channels = image.pixels if image.alpha is None else torch.cat([image.pixels, image.alpha], 0)
    sixteen = image.bit_depth == 16 and fmt == "PNG"
    arr = _quantise(channels, 65535, np.uint16) if sixteen else _quantise(channels, 255, np.uint8)
    return encode_array(arr, fmt, quality=quality, icc_profile=image.icc_profile)


def encode_array(
    arr: np.ndarray, fmt: str, *, quality: int = DEFAULT_QUALITY, icc_profile: bytes | None = None
) -> bytes:
    """Encode quantised pixels in memory as Pillow format `fmt`: (H,W) grey or (H,W,C) with C = 2 (grey,
    alpha), 3 (RGB) or 4 (RGBA), uint8, or uint16 for PNG. What `encode_image` does once it has
    quantised; needs no torch (the warm start path)."""
    from PIL import Image

    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    # preinit() registers the common formats; init() imports every plugin (0.15 s), only when needed.
    Image.preinit()
    if fmt not in Image.SAVE:
        Image.init()
    if fmt not in Image.SAVE:
        raise ValueError(f"cannot write images in format {fmt!r}")
    if arr.dtype == np.uint16 and fmt == "PNG":
        return encode_png16(arr, icc_profile=icc_profile)
    pil = Image.fromarray(arr)
    kwargs = _save_kwargs(fmt, quality, icc_profile)
    # In memory, also for files: Pillow's raw encoders (BMP, TGA, PPM, ...) write to a file descriptor
    # and take a short write on a full disk for success, leaving a truncated image.
    encoded = io.BytesIO()
    try:
        pil.save(encoded, format=fmt, **kwargs)
    except OSError as e:
        alpha = arr.ndim == 3 and arr.shape[2] in (2, 4)
        if not alpha or "mode" not in str(e):
            raise
        # The format cannot store alpha (JPEG, PPM, ...): write the colour channels alone.
        encoded = io.BytesIO()
        pil.convert("L" if arr.shape[2] == 2 else "RGB").save(encoded, format=fmt, **kwargs)
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
    return _write(path, encode_image(image, format_for_path(path), quality=quality))


def write_array(
    path: str | Path,
    arr: np.ndarray,
    *,
    quality: int = DEFAULT_QUALITY,
    icc_profile: bytes | None = None,
) -> Path:
    """`write_image` for quantised pixels (`encode_array`'s layouts); needs no torch."""
    path = Path(path)
    return _write(path, encode_array(arr, format_for_path(path), quality=quality, icc_profile=icc_profile))


def _write(path: Path, data: bytes) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return path
