"""The final resize to an asked scale (`outscale`): the model runs at its own scale, then one
high-quality resize to the exact size. Shared by `esrgan upscale` (images and video) and the service."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch.nn import functional as F

from esrgan.io import ImageData


def output_size(width: int, height: int, outscale: float) -> tuple[int, int]:
    """(width, height) of an input of this size at `outscale`, rounded, at least 1 pixel each."""
    return max(1, round(width * outscale)), max(1, round(height * outscale))


def check_outscale(outscale: float) -> float:
    """`outscale` as a float; ValueError unless it is a finite number above 0."""
    value = float(outscale)
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"outscale must be a number above 0, got {outscale!r}")
    return value


def resize_pixels(t: torch.Tensor, *, height: int, width: int) -> torch.Tensor:
    """Bicubic resize of (C,H,W) or (N,C,H,W) floats in [0, 1] to an exact size, clamped to [0, 1]."""
    if tuple(t.shape[-2:]) == (height, width):
        return t
    batched = t if t.dim() == 4 else t.unsqueeze(0)
    # antialias matters when shrinking (outscale below the model's scale); bicubic overshoot is clamped.
    out = F.interpolate(batched, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    out = out.clamp_(0.0, 1.0)
    return out if t.dim() == 4 else out[0]


def resize_image(image: ImageData, *, height: int, width: int) -> ImageData:
    """Bicubic resize of colour and alpha to an exact size (no-op when it already has it)."""
    if (image.height, image.width) == (height, width):
        return image
    alpha = None if image.alpha is None else resize_pixels(image.alpha, height=height, width=width)
    return replace(image, pixels=resize_pixels(image.pixels, height=height, width=width), alpha=alpha)
