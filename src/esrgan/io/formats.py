"""Which files are images and in which format: extensions for folder scans, the format sniffed from a
file's first bytes (never from its name), and the format an output path's extension asks for."""

from __future__ import annotations

import os
from pathlib import Path

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

VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi"})
"""Extensions (lower case) that folder scans and output naming treat as video."""
OUTPUT_VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov")
"""Containers a video is written to; other inputs (e.g. .avi) give .mp4 unless --ext says otherwise."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_image_file(path: str | Path) -> bool:
    """Whether `path` names an image by its extension (see `IMAGE_EXTENSIONS`)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a video by its extension (see `VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def sniff_format(head: bytes) -> str | None:
    """Pillow format name from an image's first bytes (PNG, JPEG, WEBP, GIF, BMP, TIFF), or None."""
    if head.startswith(PNG_SIGNATURE):
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


def format_for_path(path: str | Path) -> str:
    """Pillow format name that writes `path`'s extension; ValueError for an unknown/unwritable one."""
    from PIL import Image

    ext = Path(path).suffix.lower()
    if not ext:
        raise ValueError(f"{path}: no file extension to choose an image format from")
    # preinit() registers Pillow's common formats (PNG, JPEG, BMP, GIF, PPM) without importing all of its
    # plugins, which init() does: 0.15 s of a small `esrgan upscale`. The rest only when needed.
    Image.preinit()
    fmt = Image.EXTENSION.get(ext)
    if fmt is None or fmt not in Image.SAVE:
        Image.init()
        fmt = Image.registered_extensions().get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ValueError(f"{path}: cannot write images with extension {ext!r}")
    return fmt
