"""Batch upscaling (`esrgan upscale` below argument parsing): jobs to output files.

`esrgan.inference.jobs.plan_jobs` turns files, folders and globs into (input, output) jobs (pure path
logic, no torch); `load_upscaler` prepares the model; `upscale_jobs` runs the jobs and yields one
`FileResult` per file, a failure being a one-line message rather than an exception, so a caller reports
it and the other files still run.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import replace

import torch

from esrgan.inference import DeviceError, Upscaler, upscale_image
from esrgan.inference.jobs import FileResult, Job, SetupError, job_failure
from esrgan.inference.resize import output_size, resize_image
from esrgan.inference.tiling import ProgressFn, default_tile_overlap
from esrgan.inference.video import VideoJob, VideoOptions, upscale_video
from esrgan.io import DEFAULT_MAX_PIXELS, is_video_file, read_image, write_image
from esrgan.io.video import VideoError


def load_upscaler(
    model: str | None = None,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str = "auto",
    tile_overlap: int | None = None,
    max_memory: int | None = None,
    runtime: str = "auto",
    progress: bool = True,
) -> tuple[Upscaler, list[str]]:
    """The `Upscaler` for `model` (None: the zoo's default model), and the warnings raised while preparing
    it (e.g. emulated bf16) for the caller to show. `tile_overlap` None: `default_tile_overlap(tile)`."""
    from esrgan.inference.int8 import KNOWN_DROPS, known_drop
    from esrgan.weights import WeightsError, build_generator, resolve_weights
    from esrgan.weights.zoo import DEFAULT_MODEL

    spec = model or DEFAULT_MODEL
    try:
        weights = resolve_weights(spec, progress=progress)
        generator = build_generator(weights)
    except (WeightsError, OSError, ValueError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise SetupError(text if spec in text else f"{spec}: {text}") from None
    overlap = default_tile_overlap(tile) if tile_overlap is None else tile_overlap
    drop = known_drop(spec)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            upscaler = Upscaler(
                generator,
                device=device,
                precision=precision,
                tile=tile,
                tile_overlap=overlap,
                max_memory=max_memory,
                runtime=runtime,
                int8_drop_db=None if drop is None else drop.worst_db,
            )
        except (DeviceError, ValueError) as exc:
            raise SetupError(str(exc)) from None
    upscaler.weights_file = weights.path
    found = [str(w.message) for w in caught]
    if upscaler.precision == "int8" and drop is None:
        measured = ", ".join(KNOWN_DROPS) or "none"
        found.append(
            f"the int8 quality of {spec} has not been measured (measured: {measured}); compare "
            "`esrgan test --precision int8` with --precision fp32 before relying on it"
        )
    return upscaler, found


TileProgress = Callable[[Job, int], AbstractContextManager[ProgressFn | None]]
"""Called with a job and its tile count before it runs; the context's value is called after each tile."""
FrameProgress = Callable[[Job, int, int], AbstractContextManager[Callable[[int], None] | None]]
"""Called with a video job, its frame count and the frames already done (resumed); the context's value
is called with the number of frames each batch finishes."""


def upscale_jobs(
    upscaler: Upscaler,
    jobs: Iterable[Job],
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    quality: int = 95,
    outscale: float | None = None,
    tile_progress: TileProgress | None = None,
    video: VideoOptions | None = None,
    frame_progress: FrameProgress | None = None,
) -> Iterator[FileResult]:
    """Read, upscale and write each job's image (outputs written atomically), yielding its result.

    `outscale`: the final size relative to the input (None: the model's scale); the model runs at its
    own scale, then one bicubic resize gives the exact size (`esrgan.inference.resize`). Videos (by
    extension) are upscaled by `esrgan.inference.video` with `video`'s settings (its outscale is
    `outscale`).

    A file that cannot be read, is too large (`max_pixels`; None: no limit), runs out of memory or
    cannot be written gives a result with an error, and the next job runs.
    """
    video_options = replace(video or VideoOptions(), outscale=outscale)
    for job in jobs:
        if is_video_file(job.src):
            yield _video_job(upscaler, job, video_options, frame_progress)
            continue
        try:
            image = read_image(job.src, max_pixels=max_pixels)
            progress: AbstractContextManager[ProgressFn | None] = nullcontext()
            if tile_progress is not None:
                batch = 1 if upscaler.in_channels == 3 else image.pixels.shape[0]
                progress = tile_progress(job, upscaler.num_tiles(image.height, image.width, batch))
            with progress as on_tile:
                result = upscale_image(upscaler, image, on_tile=on_tile)
            if outscale is not None:
                width, height = output_size(image.width, image.height, outscale)
                result = resize_image(result, height=height, width=width)
            write_image(job.dst, result, quality=quality)
        except (MemoryError, OSError, ValueError) as exc:
            yield FileResult(job, job_failure(job, exc))
        except torch.cuda.OutOfMemoryError:
            yield FileResult(job, job_failure(job, MemoryError()))
        else:
            yield FileResult(job, megapixels_in=image.megapixels, megapixels_out=result.megapixels)


def _video_job(
    upscaler: Upscaler, job: Job, options: VideoOptions, frame_progress: FrameProgress | None
) -> FileResult:
    """One video job, its failure as a one-line result (the output never appears half written)."""
    with ExitStack() as stack:
        # The bar opens once the video is planned (its frame count known) and closes with the job.
        holder: list[Callable[[int], None] | None] = []

        def on_start(planned: VideoJob, done: int) -> None:
            if frame_progress is not None:
                holder.append(stack.enter_context(frame_progress(job, planned.info.frames, done)))

        def on_frames(n: int) -> None:
            if holder and holder[0] is not None:
                holder[0](n)

        try:
            result = upscale_video(
                upscaler, job.src, job.dst, options=options, on_start=on_start, on_frames=on_frames
            )
        except VideoError as exc:
            return FileResult(job, str(exc))
        except (torch.cuda.OutOfMemoryError, MemoryError):
            return FileResult(job, f"{job.src}: out of memory (try a smaller --tile)")
        except OSError as exc:
            return FileResult(job, f"{job.dst}: cannot write output ({exc.strerror or exc})")
        except ValueError as exc:
            return FileResult(job, f"{job.src}: {exc}")
    return FileResult(
        job,
        megapixels_in=result.megapixels_in,
        megapixels_out=result.megapixels_out,
        warnings=result.warnings,
    )
