"""Inference: tiled and precision-aware super-resolution (image files: `esrgan.io`).

from esrgan.inference import Upscaler, upscale_image
from esrgan.io import read_image, write_image
from esrgan.weights import load_generator

up = Upscaler(load_generator("realesrgan-x4plus"), tile="auto", precision="auto")
write_image("out.png", upscale_image(up, read_image("in.png")))
"""

from esrgan.inference.memory import CostModel, parse_memory
from esrgan.inference.precision import DeviceError, resolve_device, resolve_precision
from esrgan.inference.tiling import TilePlan, plan_tiles, tiled_apply
from esrgan.inference.upscaler import Upscaler, upscale_image

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
