"""`esrgan test`: protocol-exact PSNR/SSIM (Y and RGB) and LPIPS of a model (or bicubic) on benchmarks.

Parsing and printing only; the work is `esrgan.evaluation.run_test`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esrgan.cli._common import fail, parse_tile

# From the metric itself: importing esrgan.evaluation here would cost every command a second at start-up.
from esrgan.metrics.lpips import LPIPS_HEADS_FILE, LPIPS_VGG_FILE

Model = Annotated[
    str, typer.Option("--model", "-m", help="'bicubic', a weights file (any format) or a registered name.")
]
Datasets = Annotated[
    str,
    typer.Option(
        "--datasets",
        "-d",
        help=(
            "Comma-separated: set5, set14, bsds100 (BSDS500 val), bsds100-real (BSDS500 val with "
            "real-photo LR: blur, noise, JPEG), or image folders."
        ),
    ),
]
DataRoot = Annotated[
    Path | None,
    typer.Option(
        help="Folder holding Set5/x4, Set14/x4, BSDS500/val (default: $ESRGAN_DATA or esrgan's data folder)."
    ),
]
Scale = Annotated[
    int | None, typer.Option(help="Upscaling factor (default: the model's; 4 for bicubic).", min=1)
]
OutDir = Annotated[Path, typer.Option("--out-dir", "-o", help="Where results and the report go.")]
ShowBest = Annotated[
    int, typer.Option(help="The report shows this many best and worst images per dataset.", min=0)
]
Figures = Annotated[
    str, typer.Option(help="Comparison figures for 'report' images (best/worst), 'all' or 'none'.")
]
SaveImages = Annotated[bool, typer.Option(help="Also write every SR image as PNG.")]
LRSourceOpt = Annotated[
    str,
    typer.Option(
        help="'degrade': LR = MATLAB bicubic of HR (standard protocol); 'given': the provided LR files."
    ),
]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
Precision = Annotated[
    str,
    typer.Option(
        help="fp32 (default for evaluation), fp16, bf16, int8 (CPU, OpenVINO: measures the quantised "
        "model; quantised once and cached) or auto."
    ),
]
Runtime = Annotated[
    str,
    typer.Option(
        help="torch (eager, default), onnxruntime (CPU fp32: the same output, faster; exported once) or auto."
    ),
]
Tile = Annotated[str, typer.Option(help="Model input tile size in pixels, 'auto', or 0 for whole images.")]
Lpips = Annotated[bool, typer.Option("--lpips/--no-lpips", help="Compute LPIPS (needs VGG16 + heads).")]
LpipsVgg = Annotated[
    Path | None,
    typer.Option(
        help=f"VGG16 weights for LPIPS (default: {LPIPS_VGG_FILE} in $ESRGAN_WEIGHTS, ./weights or "
        "the user data folder's esrgan/weights)."
    ),
]
LpipsHeads = Annotated[
    Path | None,
    typer.Option(help=f"LPIPS v0.1 heads (default: {LPIPS_HEADS_FILE} beside the VGG16 file's default)."),
]
Progress = Annotated[bool, typer.Option(help="Show progress bars.")]


def test(
    model: Model,
    datasets: Datasets = "set5,set14",
    data_root: DataRoot = None,
    scale: Scale = None,
    out_dir: OutDir = Path("outputs/test"),
    show_best: ShowBest = 3,
    figures: Figures = "report",
    save_images: SaveImages = False,
    lr_source: LRSourceOpt = "degrade",
    device: Device = "auto",
    precision: Precision = "fp32",
    runtime: Runtime = "torch",
    tile: Tile = "auto",
    lpips: Lpips = True,
    lpips_vgg: LpipsVgg = None,
    lpips_heads: LpipsHeads = None,
    progress: Progress = True,
) -> None:
    """Evaluate a model on SR benchmarks per the standard protocol.

    HR is cropped to a multiple of the scale, LR made by MATLAB-exact bicubic, the output rounded to
    uint8; PSNR/SSIM on BT.601 Y and on RGB with a scale-pixel border crop; LPIPS-VGG on whole images.
    Writes results.json, results.csv, report.html and figures/ under --out-dir.
    """
    from rich.console import Console

    from esrgan.evaluation import (
        EvaluationError,
        EvaluationOptions,
        OptionError,
        parse_figures,
        parse_lr_source,
        run_test,
    )
    from esrgan.evaluation.report import rich_tables

    try:
        options = EvaluationOptions(
            model=model,
            datasets=datasets.split(","),
            data_root=data_root,
            out_dir=out_dir,
            scale=scale,
            device=device,
            precision=precision,
            runtime=runtime,
            tile=parse_tile(tile),
            # Checked after --tile, as EvaluationOptions would: the same first error when several are wrong.
            lr_source=parse_lr_source(lr_source),
            figures=parse_figures(figures),
            lpips=lpips,
            lpips_vgg=lpips_vgg,
            lpips_heads=lpips_heads,
            show_best=show_best,
            save_images=save_images,
            progress=progress,
        )
        run = run_test(options, on_note=lambda note: typer.echo(f"note: {note}", err=True))
    except OptionError as exc:
        raise fail(f"--{exc.option.replace('_', '-')}: {exc.reason}") from None
    except EvaluationError as exc:
        raise fail(str(exc)) from None
    console = Console()
    for table in rich_tables(run.results, title=run.title):
        console.print(table)
    console.print(f"wrote {run.out_dir / 'results.json'}, results.csv and report.html")


def register(app: typer.Typer) -> None:
    app.command("test")(test)
