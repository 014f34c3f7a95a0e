"""The upscaling pipeline behind the API, without HTTP: options, limits, decode, infer, resize, encode."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from esrgan.inference import DeviceError, upscale_image
from esrgan.inference.precision import INFERENCE_PRECISIONS
from esrgan.inference.resize import output_size, resize_image
from esrgan.io import ImageData, ImageInfo, encode_image
from esrgan.serving.errors import ApiError
from esrgan.serving.imaging import content_type, decode_upload, extension, open_upload
from esrgan.serving.metrics import Metrics
from esrgan.serving.pool import Ticket
from esrgan.serving.progress import REQUEST_ID, ProgressBoard
from esrgan.serving.registry import ModelRegistry
from esrgan.serving.settings import BICUBIC, OUTPUT_FORMATS, ServeSettings

OPTION_NAMES = ("model", "outscale", "precision", "format", "quality", "request_id")


@dataclass(frozen=True, kw_only=True)
class UpscaleOptions:
    """A request's validated options."""

    model: str
    outscale: float
    """Final size relative to the input (any value, like Real-ESRGAN's --outscale)."""
    precision: str
    output_format: str
    """Pillow format name: PNG, JPEG or WEBP."""
    quality: int
    request_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class UpscaleResult:
    data: bytes
    content_type: str
    extension: str
    model: str
    input_size: tuple[int, int]
    """(width, height)."""
    output_size: tuple[int, int]
    timings_ms: dict[str, float]
    """decode, infer and encode, in milliseconds."""


def _number(name: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text.strip())
    except ValueError:
        raise ApiError(400, f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ApiError(400, f"{name} must be finite, got {text[:40]!r}")
    return value


def safe_filename(name: str | None, *, suffix: str, ext: str) -> str:
    """An ASCII file name for Content-Disposition, from the client's name (never used as a path)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", (name or "image").rsplit("/", 1)[-1].rsplit("\\", 1)[-1])
    stem = stem.rsplit(".", 1)[0].strip("._") or "image"
    return f"{stem[:80]}{suffix}.{ext}"


class Service:
    """Settings, models, metrics and progress shared by every request of one app."""

    def __init__(self, *, settings: ServeSettings, registry: ModelRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.metrics = Metrics()
        self.progress = ProgressBoard()

    @property
    def models(self) -> ModelRegistry:
        if self.registry is None:
            raise RuntimeError("models are not loaded yet (the app has not started)")
        return self.registry

    def parse_options(self, *sources: Mapping[str, str]) -> UpscaleOptions:
        """Options from form fields and query parameters (earlier sources win); 400 for a bad one."""
        given: dict[str, str] = {}
        for source in reversed(sources):
            given.update({k: v for k, v in source.items() if v != ""})
        unknown = sorted(set(given) - set(OPTION_NAMES))
        if unknown:
            raise ApiError(400, f"unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTION_NAMES)}")
        model = given.get("model", self.models.default)
        if model not in self.models:
            known = ", ".join([*self.models.names, BICUBIC])
            raise ApiError(400, f"unknown model {model!r}; served models: {known}")
        limit = self.settings.max_outscale
        outscale = float(self.models.scale(model))
        if "outscale" in given:
            outscale = _number("outscale", given["outscale"], float)
            if not 0 < outscale <= limit:
                raise ApiError(400, f"outscale must be above 0 and at most {limit:g}, got {outscale:g}")
        precision = given.get("precision", self.settings.precision)
        if precision not in INFERENCE_PRECISIONS:
            names = ", ".join(INFERENCE_PRECISIONS)
            raise ApiError(400, f"precision must be one of {names}, got {precision!r}")
        fmt_name = given.get("format", "png").lower()
        if fmt_name not in OUTPUT_FORMATS:
            raise ApiError(400, f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt_name!r}")
        quality = int(_number("quality", given.get("quality", "95"), int))
        if not 1 <= quality <= 100:
            raise ApiError(400, f"quality must be in 1..100, got {quality}")
        request_id = given.get("request_id")
        if request_id is not None and not REQUEST_ID.match(request_id):
            raise ApiError(400, "request_id must be 8 to 64 letters, digits, '-' or '_'")
        return UpscaleOptions(
            model=model,
            outscale=outscale,
            precision=precision,
            output_format=OUTPUT_FORMATS[fmt_name],
            quality=quality,
            request_id=request_id,
        )

    def inspect(self, data: bytes, options: UpscaleOptions) -> ImageInfo:
        """Check the upload from its header alone: format (415), input and output size (413)."""
        if not data:
            raise ApiError(400, "the uploaded file is empty")
        info = open_upload(data, max_pixels=self.settings.max_input_pixels)
        out_w, out_h = output_size(info.width, info.height, options.outscale)
        if out_w * out_h > self.settings.max_output_pixels:
            raise ApiError(
                413,
                f"output would be {out_w}x{out_h} = {out_w * out_h / 1e6:.1f} MP, above the limit of "
                f"{self.settings.max_output_pixels / 1e6:g} MP (use a smaller outscale)",
            )
        return info

    def process(self, data: bytes, options: UpscaleOptions, ticket: Ticket) -> UpscaleResult:
        """Decode (in memory), upscale, resize to the asked scale and encode (runs on a worker thread).

        16-bit inputs come back as 16-bit PNG when the output format is PNG.
        """
        rid = options.request_id
        board = self.progress
        t0 = time.perf_counter()
        board.update(rid, stage="decoding")
        image = decode_upload(data, max_pixels=self.settings.max_input_pixels)
        width, height = image.width, image.height
        out_w, out_h = output_size(width, height, options.outscale)
        t1 = time.perf_counter()
        ticket.check()
        if options.model == BICUBIC:
            board.update(rid, stage="upscaling", tiles_total=1)
            result = resize_image(image, height=out_h, width=out_w)
        else:
            result = self._upscale(image, options, ticket)
            result = resize_image(result, height=out_h, width=out_w)
        t2 = time.perf_counter()
        ticket.check()
        board.update(rid, stage="encoding")
        encoded = encode_image(result, options.output_format, quality=options.quality)
        t3 = time.perf_counter()
        self.metrics.observe_inference(model=options.model, seconds=t2 - t1, megapixels=image.megapixels)
        board.update(rid, stage="done")
        return UpscaleResult(
            data=encoded,
            content_type=content_type(options.output_format),
            extension=extension(options.output_format),
            model=options.model,
            input_size=(width, height),
            output_size=(out_w, out_h),
            timings_ms={"decode": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "encode": (t3 - t2) * 1e3},
        )

    def _upscale(self, image: ImageData, options: UpscaleOptions, ticket: Ticket) -> ImageData:
        rid = options.request_id
        try:
            upscaler = self.models.upscaler(options.model, options.precision)
        except (DeviceError, ValueError) as e:
            raise ApiError(400, f"precision {options.precision}: {e}") from None
        batch = 1 if upscaler.in_channels == 3 else image.pixels.shape[0]
        pace = self.metrics.mean_seconds_per_megapixel(options.model)
        self.progress.update(
            rid,
            stage="upscaling",
            tiles_total=upscaler.num_tiles(image.height, image.width, batch),
            expected_s=None if pace is None else pace * image.megapixels,
        )

        def on_tile(done: int, total: int) -> None:
            self.progress.update(rid, tiles_done=done, tiles_total=total)
            ticket.check()

        try:
            return upscale_image(upscaler, image, on_tile=on_tile)
        except (torch.cuda.OutOfMemoryError, MemoryError):
            raise ApiError(
                503, "out of memory for this image; try a smaller one", code="out_of_memory"
            ) from None
