"""`esrgan test`: protocol-exact PSNR/SSIM (Y and RGB) and LPIPS of a model (or bicubic) on benchmarks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from esrgan.cli._common import parse_tile

BICUBIC = "bicubic"
LPIPS_VGG_FILE = "vgg16_imagenet_features.safetensors"
LPIPS_HEADS_FILE = "lpips_vgg_v0.1_heads.safetensors"


def _fatal(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def lpips_search_dirs() -> list[Path]:
    """Where LPIPS weights are looked for: $ESRGAN_WEIGHTS, ./weights, ../shared/weights."""
    dirs = []
    env = os.environ.get("ESRGAN_WEIGHTS")
    if env:
        dirs.append(Path(env))
    dirs += [Path("weights"), Path("..") / "shared" / "weights"]
    return dirs


def _dataset_key(name: str) -> str:
    """Label of a dataset in results: the benchmark name, or a folder's base name."""
    p = Path(name)
    return name.strip().lower() if len(p.parts) == 1 else _safe_name(p.name)


def _safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return keep.strip("._") or "dataset"


def test(
    model: Annotated[
        str,
        typer.Option("--model", "-m", help="'bicubic', a weights file (any format) or a registered name."),
    ],
    datasets: Annotated[
        str,
        typer.Option(
            "--datasets", "-d", help="Comma-separated: set5, set14, bsds100 (BSDS500 val), or image folders."
        ),
    ] = "set5,set14",
    data_root: Annotated[
        Path | None,
        typer.Option(help="Folder in the layout of shared/datasets (default: $ESRGAN_DATA or ./datasets)."),
    ] = None,
    scale: Annotated[
        int | None, typer.Option(help="Upscaling factor (default: the model's; 4 for bicubic).", min=1)
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Where results and the report go.")] = Path(
        "outputs/test"
    ),
    show_best: Annotated[
        int, typer.Option(help="The report shows this many best and worst images per dataset.", min=0)
    ] = 3,
    figures: Annotated[
        str, typer.Option(help="Comparison figures for 'report' images (best/worst), 'all' or 'none'.")
    ] = "report",
    save_images: Annotated[bool, typer.Option(help="Also write every SR image as PNG.")] = False,
    lr_source: Annotated[
        str,
        typer.Option(
            help="'degrade': LR = MATLAB bicubic of HR (standard protocol); 'given': the provided LR files."
        ),
    ] = "degrade",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="fp32 (default for evaluation), fp16, bf16 or auto.")
    ] = "fp32",
    tile: Annotated[
        str, typer.Option(help="Model input tile size in pixels, 'auto', or 0 for whole images.")
    ] = "auto",
    lpips: Annotated[
        bool, typer.Option("--lpips/--no-lpips", help="Compute LPIPS (needs VGG16 + heads).")
    ] = True,
    lpips_vgg: Annotated[
        Path | None,
        typer.Option(
            help=f"VGG16 weights for LPIPS (default: {LPIPS_VGG_FILE} in $ESRGAN_WEIGHTS, "
            "./weights or ../shared/weights)."
        ),
    ] = None,
    lpips_heads: Annotated[
        Path | None,
        typer.Option(help=f"LPIPS v0.1 heads (default: {LPIPS_HEADS_FILE} beside the VGG16 file's default)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Evaluate a model on SR benchmarks per the standard protocol (docs: shared/docs/PROTOCOL.md).

    HR is cropped to a multiple of the scale, LR made by MATLAB-exact bicubic, the output rounded to
    uint8; PSNR/SSIM on BT.601 Y and on RGB with a scale-pixel border crop; LPIPS-VGG on whole images.
    Writes results.json, results.csv, report.html and figures/ under --out-dir.
    """
    from rich.console import Console

    lr_source = lr_source.strip().lower()
    if lr_source not in ("degrade", "given"):
        raise _fatal(f"--lr-source: {lr_source!r} is not 'degrade' or 'given'")
    figures = figures.strip().lower()
    if figures not in ("report", "all", "none"):
        raise _fatal(f"--figures: {figures!r} is not 'report', 'all' or 'none'")
    tile_value = parse_tile(tile)
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    if not names:
        raise _fatal("--datasets: no dataset given")
    from esrgan.data.datasets import default_data_root

    root = data_root if data_root is not None else default_data_root()

    import torch

    from esrgan.data.benchmarks import BenchmarkError, find_benchmark
    from esrgan.evaluation import report as rep
    from esrgan.evaluation.figures import caption, comparison_figure
    from esrgan.evaluation.runner import (
        DatasetResult,
        ImageResult,
        Sample,
        bicubic_sr,
        evaluate_dataset,
        lpips_weight_paths,
        run_sample,
        score,
    )
    from esrgan.inference import resolve_device

    try:
        dev = resolve_device(device)
    except ValueError as exc:
        raise _fatal(f"--device: {exc}") from None

    # Model and scale.
    is_bicubic = model.strip().lower() == BICUBIC
    if is_bicubic:
        scale = scale or 4
        sr_fn = bicubic_sr(scale, dev)
        model_label = "Bicubic"
    else:
        from esrgan.inference import Upscaler
        from esrgan.weights import load_generator

        try:
            net = load_generator(model, progress=progress)
            upscaler = Upscaler(net, device=dev, precision=precision, tile=tile_value)
        except (ValueError, OSError, RuntimeError) as exc:
            text = " ".join(str(exc).split())
            raise _fatal(text if model in text else f"{model}: {text}") from None
        if scale is not None and scale != upscaler.scale:
            raise _fatal(f"{model}: model upscales x{upscaler.scale}, but --scale is {scale}")
        scale = upscaler.scale

        def sr_fn(lr: torch.Tensor) -> torch.Tensor:
            return upscaler.upscale(lr)

        model_label = Path(model).stem if Path(model).suffix else model

    # Datasets (resolved up front so a typo fails before any work).
    try:
        sets = [(_dataset_key(name), find_benchmark(root, name, scale)) for name in names]
    except BenchmarkError as exc:
        raise _fatal(str(exc)) from None

    # LPIPS.
    console = Console()
    lpips_net = None
    notes: list[str] = []
    if lpips:
        found = lpips_weight_paths(lpips_vgg, lpips_heads, search=lpips_search_dirs())
        if found is None:
            notes.append(
                f"LPIPS skipped: no {LPIPS_VGG_FILE} + {LPIPS_HEADS_FILE} found (give --lpips-vgg and "
                "--lpips-heads, or set $ESRGAN_WEIGHTS)"
            )
        else:
            from esrgan.metrics import LPIPS

            try:
                lpips_net = LPIPS.from_files(vgg_weights=found[0], heads=found[1]).to(dev)
            except (ValueError, OSError) as exc:
                raise _fatal(str(exc)) from None
    for note in notes:
        typer.echo(f"note: {note}", err=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    fig_paths: dict[tuple[str, str], Path] = {}
    bicubic_fn = bicubic_sr(scale, dev)

    def make_figure(ds: str, sample: Sample, res: ImageResult) -> None:
        bic_caption = None
        if not is_bicubic:
            bic = bicubic_fn(sample.lr)
            bic_caption = caption(score(bic, sample.hr, crop_border=scale))
        path = out_dir / "figures" / _safe_name(ds) / f"{_safe_name(res.name)}.png"
        comparison_figure(
            path,
            title=f"{ds} / {res.name}  (x{scale}, LR: {lr_source})",
            lr=sample.lr,
            sr=sample.sr,
            hr=sample.hr,
            scale=scale,
            model_label=model_label,
            model_caption=caption(vars(res)),
            bicubic_caption=bic_caption,
        )
        fig_paths[(ds, res.name)] = path

    def on_sample_for(ds: str):
        def on_sample(sample: Sample, res: ImageResult) -> None:
            if save_images:
                _save_png(out_dir / "images" / _safe_name(ds) / f"{_safe_name(res.name)}.png", sample.sr)
            if figures == "all":
                make_figure(ds, sample, res)

        return on_sample

    results: list[DatasetResult] = []
    started = time.perf_counter()
    try:
        for ds, pairs in sets:
            result = evaluate_dataset(
                ds,
                pairs,
                sr_fn,
                scale=scale,
                lr_source=lr_source,  # type: ignore[arg-type]
                lpips=lpips_net,
                on_sample=on_sample_for(ds),
                progress=progress,
            )
            results.append(result)
            if figures == "report" and show_best > 0:
                ranked = result.ranked("psnr_y")
                chosen = {r.name: r for r in ranked[:show_best] + ranked[::-1][:show_best]}
                by_name = {p.name: p for p in pairs}
                for name, res in chosen.items():
                    sample = run_sample(by_name[name], sr_fn, scale=scale, lr_source=lr_source)  # type: ignore[arg-type]
                    make_figure(ds, sample, res)
    except BenchmarkError as exc:
        raise _fatal(str(exc)) from None
    elapsed = time.perf_counter() - started

    meta = {
        "model": model,
        "scale": scale,
        "lr_source": lr_source,
        "data_root": str(root),
        "device": str(dev),
        "precision": "fp32" if is_bicubic else upscaler.precision,
        "protocol": (
            f"HR cropped to a multiple of {scale}; LR "
            + ("= MATLAB bicubic of HR, rounded to uint8" if lr_source == "degrade" else "= provided files")
            + f"; SR rounded to uint8; PSNR/SSIM on BT.601 Y and RGB, border {scale}, SSIM Gaussian 11/1.5 "
            "valid; LPIPS-VGG v0.1 on whole images; per-image then mean"
        ),
        "notes": notes,
        "seconds": round(elapsed, 2),
    }
    rep.write_json(out_dir / "results.json", results, meta)
    rep.write_csv(out_dir / "results.csv", results)
    rep.write_html(out_dir / "report.html", results, meta, fig_paths, show=show_best)
    for table in rep.rich_tables(results, title=f"{model} x{scale}, LR {lr_source}"):
        console.print(table)
    console.print(f"wrote {out_dir / 'results.json'}, results.csv and report.html")


def _save_png(path: Path, img) -> None:
    from PIL import Image

    from esrgan.utils import atomic_write

    arr = (img[0].permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")


def register(app: typer.Typer) -> None:
    app.command("test")(test)
