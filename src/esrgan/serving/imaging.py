"""What the API adds to the package's image reader and writer: the formats it takes and gives, their
content types, and `ImageError` as a 400/413/415 answer.

Uploads are decoded from memory (never written to disk) by `esrgan.io`: the format
comes from the file's first bytes, never from its name or declared content type, and the pixel count
from its header, so an oversized image (a decompression bomb) is refused before any pixel is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from esrgan.io import (
    ImageData,
    ImageError,
    ImageInfo,
    probe_image,
    read_image,
    sniff_format,
)
from esrgan.serving.errors import ApiError

INPUT_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
"""Pillow formats the service decodes; no other decoder of Pillow ever sees an upload."""
SUPPORTED_INPUTS = "PNG, JPEG, WebP, GIF, BMP or TIFF"
_CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
_STATUS = {"too_large": 413, "unsupported": 415}
_NAME = "upload"
T = TypeVar("T")


def content_type(fmt: str) -> str:
    return _CONTENT_TYPES[fmt]


def extension(fmt: str) -> str:
    return _EXTENSIONS[fmt]


def _upload(reader: Callable[..., T], data: bytes, max_pixels: int) -> T:
    """`reader` (header or whole image) on the upload's bytes in memory, its `ImageError` as an answer:
    415 for what the service does not read, 413 above the pixel limit, 400 for a damaged image."""
    if sniff_format(data[:32]) not in INPUT_FORMATS:
        raise ApiError(415, f"not an image this service reads: send {SUPPORTED_INPUTS}")
    try:
        return reader(data, max_pixels=max_pixels, formats=INPUT_FORMATS, name=_NAME)
    except ImageError as e:
        raise ApiError(_STATUS.get(e.kind, 400), e.reason) from None


def open_upload(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Read the upload's header only (format, size), before the request is queued."""
    return _upload(probe_image, data, max_pixels)


def decode_upload(data: bytes, *, max_pixels: int) -> ImageData:
    """Decode the upload (EXIF orientation applied, ICC profile kept, 16 bits kept)."""
    return _upload(read_image, data, max_pixels)
