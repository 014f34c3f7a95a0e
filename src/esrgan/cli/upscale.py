"""`esrgan upscale`: super-resolve files, folders and globs with any supported model.

Parsing and printing only; the work is `esrgan.inference.batch`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import torch
import typer

from esrgan.cli._common import EXIT_FAILED, fail, parse_tile
from esrgan.cli._report import nothing_to_do, report_plan, report_results
from esrgan.inference import Upscaler
from esrgan.inference.batch import load_upscaler, upscale_jobs
from esrgan.inference.int8 import drops_help as int8_drops_help
from esrgan.inference.jobs import (
    BatchTotals,
    FileResult,
    Job,
    SetupError,
    check_ext,
    check_out_dir,
    plan_jobs,
)
from esrgan.inference.memory import parse_memory
from esrgan.inference.precision import AUTO_INT8_MAX_DROP_DB
from esrgan.inference.resize import check_outscale
from esrgan.inference.scaleout import upscale_jobs_shared
from esrgan.inference.sharding import Group, device_for, mine, shard_from_env, thread_share
from esrgan.inference.tiling import DEFAULT_TILE_OVERLAP, ProgressFn
from esrgan.inference.video import DEFAULT_SEGMENT_SECONDS, VideoOptions
from esrgan.io import DEFAULT_MAX_PIXELS
from esrgan.io.video_write import DEFAULT_CRF, VIDEO_CODECS, check_codec
from esrgan.weights.zoo import DEFAULT_MODEL

Inputs = Annotated[
    list[str],
    typer.Argument(
        metavar="INPUTS...",
        help="Image and video files, folders, or glob patterns (quote them; ** recurses).",
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model", "-m", help=f"Weights file (any format) or registered name (default: {DEFAULT_MODEL})."
    ),
]
OutDir = Annotated[
    Path | None,
    typer.Option(
        "--out-dir", "-o", help="Write outputs here (mirroring sub-folders) instead of beside each input."
    ),
]
Suffix = Annotated[str, typer.Option(help="Appended to each output's file name.")]
Ext = Annotated[
    str | None, typer.Option(help="Output format by extension (png, jpg, webp, ...); default: keep.")
]
Recursive = Annotated[bool, typer.Option("--recursive", "-r", help="Scan folders recursively.")]
Tile = Annotated[
    str, typer.Option(help="Tile side in input pixels; 'auto' picks it from free memory, 0 disables tiling.")
]
TileOverlap = Annotated[
    int | None,
    typer.Option(
        min=0,
        help=f"Overlap between neighbouring tiles (input pixels); seams get half of it as context. "
        f"Default {DEFAULT_TILE_OVERLAP}, or half the tile for tiles under {2 * DEFAULT_TILE_OVERLAP}.",
    ),
]
MaxMemory = Annotated[
    str | None,
    typer.Option(
        help="Memory budget for --tile auto, e.g. 2GiB or 1500MB (B, KB/KiB, MB/MiB, GB/GiB): the "
        "process's peak RAM on the CPU, torch's on a GPU. Default: half of what is free.",
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        help="auto (CPU: the fastest of ONNX Runtime/OpenVINO/torch fp32, bf16 where the CPU has it and "
        f"int8 for models whose measured drop is at most {AUTO_INT8_MAX_DROP_DB} dB, among those whose "
        "image is at least 45 dB from eager fp32's here (50 dB on CPUs without native bf16), measured "
        "once per model and machine; CUDA: fp16), "
        "fp32 (eager's image), bf16, fp16 or int8 (CPU, OpenVINO; the model is quantised "
        f"once and cached; measured drop vs fp32: {int8_drops_help()})."
    ),
]
Runtime = Annotated[
    str,
    typer.Option(
        help="auto (on the CPU, whichever --precision auto measured fastest; the model is exported once "
        "and cached), torch, onnxruntime or openvino."
    ),
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda[:N] or mps.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")]
Quality = Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")]
MaxPixels = Annotated[
    int, typer.Option(min=0, help="Refuse inputs with more pixels (decompression bombs); 0 = no limit.")
]
Outscale = Annotated[
    float | None,
    typer.Option(
        help="Final scale (e.g. 2 with an x4 model): the model runs at its own scale, then one bicubic "
        "resize to the input's size times this. Default: the model's scale.",
    ),
]
VideoCodec = Annotated[
    str | None,
    typer.Option(help=f"Video encoder: {', '.join(VIDEO_CODECS)}. Default: libx264 (libvpx-vp9 for webm)."),
]
Crf = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=63,
        help="Video constant quality, lower is better (0: lossless except libsvtav1). Default per "
        f"encoder: {', '.join(f'{k} {v}' for k, v in DEFAULT_CRF.items())}.",
    ),
]
SegmentSeconds = Annotated[
    float,
    typer.Option(
        help="Videos are encoded in segments of about this length, each kept in a work folder beside the "
        "output (.NAME.parts) until all are joined; --resume loses at most one.",
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue interrupted videos from their finished segments (same settings only)."
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-file lines.")]


def upscale(
    inputs: Inputs,
    model: Model = None,
    out_dir: OutDir = None,
    suffix: Suffix = "_sr",
    ext: Ext = None,
    recursive: Recursive = False,
    tile: Tile = "auto",
    tile_overlap: TileOverlap = None,
    max_memory: MaxMemory = None,
    precision: Precision = "auto",
    device: Device = "auto",
    runtime: Runtime = "auto",
    overwrite: Overwrite = False,
    quality: Quality = 95,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    outscale: Outscale = None,
    video_codec: VideoCodec = None,
    crf: Crf = None,
    segment_seconds: SegmentSeconds = DEFAULT_SEGMENT_SECONDS,
    resume: Resume = False,
    quiet: Quiet = False,
) -> None:
    """Upscale images and videos with an ESRGAN-family model (tiled, any size, any device).

    Writes NAME_sr.EXT beside each input, or under --out-dir. Videos (mp4, mkv, mov, webm, avi) keep
    their timestamps, audio and subtitles; see --video-codec, --crf, --resume.
    Existing outputs are kept unless --overwrite is given. Once a model's measured path is OpenVINO or
    ONNX Runtime, later plain runs of it start without torch (same output; ESRGAN_WARM_START=0: off).
    Exit status: 0 all done, 1 some inputs failed, 2 bad options or model.
    """
    tile_value = parse_tile(tile)
    if outscale is not None:
        try:
            outscale = check_outscale(outscale)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--outscale") from None
    memory_value = _parse_max_memory(max_memory)
    try:
        ext = check_ext(ext)
    except ValueError as exc:
        raise fail(f"--ext {exc}") from None
    try:
        video = VideoOptions(
            codec=video_codec,
            crf=crf,
            segment_seconds=segment_seconds,
            resume=resume,
            model=model or DEFAULT_MODEL,
        )
        if video_codec is not None:
            check_codec(video_codec, Path("x.mkv"))
    except ValueError as exc:
        raise fail(str(exc)) from None
    shard = shard_from_env()
    plan = plan_jobs(
        inputs, recursive=recursive, out_dir=out_dir, suffix=suffix, ext=ext, overwrite=overwrite
    )
    # In a shared run (torchrun, srun) every process plans the same jobs; the first one reports the plan.
    jobs = plan.to_run(overwrite=overwrite)
    totals = report_plan(plan, overwrite=overwrite, show=shard.rank == 0)
    if not jobs:
        raise typer.Exit(nothing_to_do(totals))
    if shard.shared:
        device = device_for(shard, device)
        if not device.startswith("cuda"):
            torch.set_num_threads(thread_share(shard))
    try:
        if out_dir is not None:
            check_out_dir(out_dir)
        upscaler, warnings = load_upscaler(
            model,
            device=device,
            precision=precision,
            tile=tile_value,
            tile_overlap=tile_overlap,
            max_memory=memory_value,
            runtime=runtime,
            progress=not quiet,
        )
    except SetupError as exc:
        raise fail(str(exc)) from None
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    if upscaler.precision == "auto":
        _choose_path(upscaler, model or DEFAULT_MODEL, quiet=quiet)
        if not shard.shared and tile_value == "auto" and tile_overlap is None and memory_value is None:
            _remember(upscaler, model, precision=precision, runtime=runtime)
    if upscaler.precision == "int8":
        _prepare_int8(upscaler, model or DEFAULT_MODEL, quiet=quiet)
    tile_progress = None if quiet else tile_bar
    frame_bar = None if quiet or shard.rank else _frame_bar
    group = Group(shard=shard)
    group.start()
    try:
        if shard.shared:
            results: Iterable[FileResult] = upscale_jobs_shared(
                upscaler,
                jobs,
                shard=shard,
                group=group,
                max_pixels=max_pixels or None,
                quality=quality,
                outscale=outscale,
                video=video,
                tile_progress=tile_progress,
                frame_progress=frame_bar,
            )
        else:
            results = upscale_jobs(
                upscaler,
                jobs,
                max_pixels=max_pixels or None,
                quality=quality,
                outscale=outscale,
                tile_progress=tile_progress,
                video=video,
                frame_progress=frame_bar,
            )
        count = len(mine(jobs, shard))
        _report_results(results, totals, upscaler, count=count, quiet=quiet, outscale=outscale)
    finally:
        group.close()
    if totals.failed:
        raise typer.Exit(EXIT_FAILED)


def _choose_path(upscaler: Upscaler, model: str, *, quiet: bool) -> None:
    """Let `auto` make its measured choice before the first image (the first run on a machine measures,
    saying so with a progress bar; later runs read the cache)."""
    try:
        upscaler.prepare(progress=not quiet)
    except (ValueError, OSError, RuntimeError) as exc:
        raise fail(f"{model}: {' '.join(str(exc).split())}") from None


def _remember(upscaler: Upscaler, model: str | None, *, precision: str, runtime: str) -> None:
    """Let the next run of this request start without torch (`esrgan.inference.warm`) when the measured
    choice is a runtime that needs none; a cache that cannot be written costs only that."""
    from esrgan.inference.warm import remember

    with contextlib.suppress(OSError):
        remember(upscaler, spec=model, precision=precision, runtime=runtime)


def _prepare_int8(upscaler: Upscaler, model: str, *, quiet: bool) -> None:
    """Quantise (first use) or load the int8 model before the first image, saying what takes the time."""
    from esrgan.inference.export import ExportError
    from esrgan.inference.int8 import Int8Error, cached_int8_path

    try:
        if not quiet and not cached_int8_path(upscaler.model).with_suffix(".json").is_file():
            typer.echo(
                f"quantising {model} to int8 (once, then cached; seconds for a small model, "
                "about a minute for a 23-block one)...",
                err=True,
            )
        upscaler.prepare(progress=not quiet)
    except (Int8Error, ExportError, OSError, RuntimeError) as exc:
        raise fail(f"{model}: int8: {' '.join(str(exc).split())}") from None
    if not quiet and upscaler.int8_report is not None:
        typer.echo(upscaler.int8_report.summary(), err=True)


def _parse_max_memory(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_memory(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max-memory") from None


def _report_results(
    results: Iterable[FileResult],
    totals: BatchTotals,
    upscaler: Upscaler,
    *,
    count: int,
    quiet: bool,
    outscale: float | None = None,
) -> None:
    path = (str(upscaler.device), upscaler.path, upscaler.scale)
    report_results(results, totals, path=path, count=count, quiet=quiet, outscale=outscale)


@contextmanager
def tile_bar(job: Job, n_tiles: int) -> Iterator[ProgressFn]:
    """A transient per-file progress bar over tiles (hidden for single-tile images and when piped)."""
    from tqdm import tqdm

    off = True if n_tiles < 2 else None
    with tqdm(
        total=n_tiles, desc=job.src.name, unit="tile", leave=False, disable=off, file=sys.stderr
    ) as bar:

        def advance(done: int, total: int) -> None:
            bar.update(1)

        yield advance


@contextmanager
def _frame_bar(job: Job, frames: int, done: int) -> Iterator[Callable[[int], None]]:
    """A per-video progress bar over frames, with frames/s and the time left."""
    from tqdm import tqdm

    with tqdm(
        total=frames,
        initial=done,
        desc=job.src.name,
        unit="frame",
        leave=False,
        file=sys.stderr,
        smoothing=0.1,
    ) as bar:

        def advance(n: int) -> None:
            bar.update(n)

        yield advance


def register(app: typer.Typer) -> None:
    app.command("upscale")(upscale)
