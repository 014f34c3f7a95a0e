"""Inference: tiled and precision-aware super-resolution (image files: `esrgan.io`).

from esrgan.inference import Upscaler, upscale_image
from esrgan.io import read_image, write_image
from esrgan.weights import load_generator

up = Upscaler(load_generator("realesrgan-x4plus"), tile="auto", precision="auto")
write_image("out.png", upscale_image(up, read_image("in.png")))

The names below load at first use: `esrgan.inference.warm`, the start of a small `esrgan upscale` on a
machine that has run the model before, must not import torch through this package.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrgan.inference.memory import CostModel, parse_memory
    from esrgan.inference.precision import DeviceError, resolve_device, resolve_precision
    from esrgan.inference.tiling import TilePlan, plan_tiles, tiled_apply
    from esrgan.inference.upscaler import Upscaler, upscale_image

_LAZY = {
    "CostModel": "memory",
    "parse_memory": "memory",
    "DeviceError": "precision",
    "resolve_device": "precision",
    "resolve_precision": "precision",
    "TilePlan": "tiling",
    "plan_tiles": "tiling",
    "tiled_apply": "tiling",
    "Upscaler": "upscaler",
    "upscale_image": "upscaler",
}

__all__ = [
    "CostModel",
    "DeviceError",
    "TilePlan",
    "Upscaler",
    "parse_memory",
    "plan_tiles",
    "resolve_device",
    "resolve_precision",
    "tiled_apply",
    "upscale_image",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
