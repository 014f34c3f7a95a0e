"""Inference: image I/O with colour handling, tiled and precision-aware super-resolution.

from esrgan.weights import load_generator
from esrgan.inference import Upscaler, read_image, upscale_image, write_image

up = Upscaler(load_generator("realesrgan-x4plus"), tile="auto", precision="auto")
write_image("out.png", upscale_image(up, read_image("in.png")))
"""

from esrgan.inference.image_io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageData,
    ImageError,
    format_for_path,
    read_image,
    read_rgb,
    write_image,
)
from esrgan.inference.precision import DeviceError, resolve_device, resolve_precision
from esrgan.inference.tiling import CostModel, TilePlan, parse_memory, plan_tiles, tiled_apply
from esrgan.inference.upscaler import Upscaler, upscale_image

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "CostModel",
    "DeviceError",
    "ImageData",
    "ImageError",
    "TilePlan",
    "Upscaler",
    "format_for_path",
    "parse_memory",
    "plan_tiles",
    "read_image",
    "read_rgb",
    "resolve_device",
    "resolve_precision",
    "tiled_apply",
    "upscale_image",
    "write_image",
]
