"""What an image is to the package, between the file readers and writers and everything above them.

`ImageData` carries pixels ready for a model (float32 in [0, 1], channels first, RGB order) with what
writing them back needs (alpha, bit depth, ICC profile); `ImageInfo` is what a header says before any
pixel is decoded; `ImageError` is the one error every reader and writer raises for a bad file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeAlias

if TYPE_CHECKING:  # only annotations: the warm start path reads images without importing torch
    import torch

DEFAULT_MAX_PIXELS = 100_000_000
"""Default decompression-bomb limit (input pixels): 100 MP, e.g. 10000 x 10000."""

DEFAULT_QUALITY = 95

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
