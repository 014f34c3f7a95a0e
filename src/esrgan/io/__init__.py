"""Reading and writing media files: the floor below data, inference, evaluation and serving.

One function per verb (`read_image`, `probe_image`, `write_image`, ...), the codec libraries (Pillow,
OpenCV for 16-bit PNG) hidden behind them; video (`probe_video`, `read_video`, `write_video`,
`join_videos`) through PyAV in `video` and `video_write`. Importing does no I/O and loads no codec
library.

    from esrgan.io import read_image, write_image

    image = read_image("in.png")  # ImageData: float32 (C,H,W) RGB in [0, 1], alpha, bit depth, ICC
    write_image("out.webp", image)
"""

from typing import TYPE_CHECKING, Any

from esrgan.io.formats import (
    IMAGE_EXTENSIONS,
    format_for_path,
    is_image_file,
    is_video_file,
    sniff_format,
)
from esrgan.io.image import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_QUALITY,
    IN_MEMORY,
    ImageData,
    ImageError,
    ImageInfo,
    ImageSource,
)
from esrgan.io.image_read import apply_orientation, decode_array, probe_image, read_image, read_rgb
from esrgan.io.image_write import encode_array, encode_image, write_array, write_image

if TYPE_CHECKING:
    from esrgan.io.video import VideoError, VideoInfo, probe_video, read_video
    from esrgan.io.video_write import join_videos, write_video

# Video needs torch and PyAV: loaded at first use, so reading and writing images (the warm start path
# of `esrgan upscale`) imports neither.
_LAZY = {
    "VideoError": "esrgan.io.video",
    "VideoInfo": "esrgan.io.video",
    "probe_video": "esrgan.io.video",
    "read_video": "esrgan.io.video",
    "join_videos": "esrgan.io.video_write",
    "write_video": "esrgan.io.video_write",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY",
    "IMAGE_EXTENSIONS",
    "IN_MEMORY",
    "ImageData",
    "ImageError",
    "ImageInfo",
    "ImageSource",
    "VideoError",
    "VideoInfo",
    "apply_orientation",
    "decode_array",
    "encode_array",
    "encode_image",
    "format_for_path",
    "is_image_file",
    "is_video_file",
    "join_videos",
    "probe_image",
    "probe_video",
    "read_image",
    "read_rgb",
    "read_video",
    "sniff_format",
    "write_array",
    "write_image",
    "write_video",
]
