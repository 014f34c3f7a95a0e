"""`esrgan upscale`: super-resolve files, folders and globs with any supported model."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from esrgan.cli._common import parse_tile

DEFAULT_MODEL_NAME = "realesrgan-x4plus"
# Mirror esrgan.inference's defaults: importing that package here would pull torch into `--help`.
DEFAULT_MAX_PIXELS = 100_000_000
DEFAULT_TILE_OVERLAP = 48


def _error(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"error: {message}", file=sys.stderr)


def _fatal(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _model_error(spec: str, exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if spec in text else f"{spec}: {text}"


class _Advance:
    """Tile-progress callback that moves a tqdm bar one step per tile."""

    def __init__(self, bar: object) -> None:
        self.bar = bar

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(1)  # type: ignore[attr-defined]


def upscale(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUTS...", help="Image files, folders, or glob patterns (quote them; ** recurses)."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help=f"Weights file (any format) or registered name (default: {DEFAULT_MODEL_NAME}).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", "-o", help="Write outputs here (mirroring sub-folders) instead of beside each input."
        ),
    ] = None,
    suffix: Annotated[str, typer.Option(help="Appended to each output's file name.")] = "_sr",
    ext: Annotated[
        str | None, typer.Option(help="Output format by extension (png, jpg, webp, ...); default: keep.")
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Scan folders recursively.")] = False,
    tile: Annotated[
        str,
        typer.Option(
            help="Tile side in input pixels; 'auto' picks it from free memory, 0 disables tiling.",
        ),
    ] = "auto",
    tile_overlap: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=f"Overlap between neighbouring tiles (input pixels); seams get half of it as context. "
            f"Default {DEFAULT_TILE_OVERLAP}, or half the tile for tiles under {2 * DEFAULT_TILE_OVERLAP}.",
        ),
    ] = None,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 on CPUs with native bf16, fp16 on CUDA), fp32, bf16 or fp16.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda[:N] or mps.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG/WebP quality.")] = 95,
    max_pixels: Annotated[
        int,
        typer.Option(min=0, help="Refuse inputs with more pixels (decompression bombs); 0 = no limit."),
    ] = DEFAULT_MAX_PIXELS,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or per-file lines.")] = False,
) -> None:
    """Upscale images with an ESRGAN-family model (tiled, any size, any device).

    Writes NAME_sr.EXT beside each input, or under --out-dir.
    Existing outputs are kept unless --overwrite is given.
    Exit status: 0 all done, 1 some inputs failed, 2 bad options or model.
    """
    tile_value = parse_tile(tile)
    if tile_overlap is None:
        small = isinstance(tile_value, int) and 0 < tile_value < 2 * DEFAULT_TILE_OVERLAP
        tile_overlap = tile_value // 2 if small else DEFAULT_TILE_OVERLAP  # type: ignore[operator]
    model_spec = model or DEFAULT_MODEL_NAME

    import torch
    from tqdm import tqdm

    from esrgan.inference import (
        DeviceError,
        ImageError,
        Upscaler,
        format_for_path,
        read_image,
        upscale_image,
        write_image,
    )
    from esrgan.inference.batch import normalise_ext, plan_jobs
    from esrgan.weights import WeightsError, load_generator

    if ext is not None:
        try:
            format_for_path(Path("x" + (normalise_ext(ext) or "")))
        except ValueError:
            raise _fatal(f"--ext {ext}: not an image format this tool can write") from None

    plan = plan_jobs(inputs, recursive=recursive, out_dir=out_dir, suffix=suffix, ext=ext)
    failed = 0
    for problem in plan.problems:
        _error(f"{problem.path}: {problem.reason}")
        failed += 1
    jobs = list(plan.jobs)
    if overwrite:
        jobs += plan.existing
    else:
        for job in plan.existing:
            typer.echo(f"skip: {job.src}: {job.dst} exists (use --overwrite to replace it)", err=True)
    if not jobs:
        typer.echo(f"nothing to do: {failed} failed, {len(plan.existing)} skipped", err=bool(failed))
        raise typer.Exit(1 if failed else 0)

    try:
        generator = load_generator(model_spec, progress=not quiet)
    except (WeightsError, OSError, ValueError) as exc:
        raise _fatal(_model_error(model_spec, exc)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            upscaler = Upscaler(
                generator, device=device, precision=precision, tile=tile_value, tile_overlap=tile_overlap
            )
        except (DeviceError, ValueError) as exc:
            raise _fatal(str(exc)) from None
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)

    start = time.perf_counter()
    ok = 0
    mp_in = mp_out = 0.0
    show = not quiet
    bar = tqdm(
        jobs, desc="upscale", unit="img", disable=None if show and len(jobs) > 1 else True, file=sys.stderr
    )
    for job in bar:
        try:
            image = read_image(job.src, max_pixels=max_pixels or None)
            batch = 1 if upscaler.in_channels == 3 else image.pixels.shape[0]
            n_tiles = upscaler.num_tiles(image.height, image.width, batch)
            with tqdm(
                total=n_tiles,
                desc=job.src.name,
                unit="tile",
                leave=False,
                disable=None if show and n_tiles > 1 else True,
                file=sys.stderr,
            ) as tile_bar:
                result = upscale_image(upscaler, image, on_tile=_Advance(tile_bar))
            write_image(job.dst, result, quality=quality)
        except ImageError as exc:
            _error(str(exc))
            failed += 1
            continue
        except (torch.cuda.OutOfMemoryError, MemoryError):
            _error(f"{job.src}: out of memory (try a smaller --tile)")
            failed += 1
            continue
        except OSError as exc:
            _error(f"{job.dst}: cannot write output ({exc.strerror or exc})")
            failed += 1
            continue
        except ValueError as exc:
            _error(f"{job.src}: {exc}")
            failed += 1
            continue
        ok += 1
        mp_in += image.megapixels
        mp_out += result.megapixels
        if show:
            tqdm.write(f"{job.src} -> {job.dst}")
    bar.close()
    seconds = time.perf_counter() - start
    skipped = 0 if overwrite else len(plan.existing)
    typer.echo(
        f"done: {ok} ok, {failed} failed, {skipped} skipped; {mp_in:.2f} MP in -> {mp_out:.2f} MP out "
        f"in {seconds:.1f} s ({upscaler.device}, {upscaler.precision}, x{upscaler.scale})"
    )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("upscale")(upscale)
