"""Weights commands: `esrgan convert`, `esrgan info`, `esrgan interpolate`, `esrgan models`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from esrgan.cli._common import EXIT_FAILED, fail

LAYOUT_HELP = "Layout of a .pth output: basicsr ({'params_ema': ...}), basicsr-params ({'params': ...}), old."


def convert(
    src: Annotated[str, typer.Argument(metavar="IN", help="Weights file (any format) or registered name.")],
    dst: Annotated[
        Path, typer.Argument(metavar="OUT", help="Output .safetensors, or .pth/.pt for other tools.")
    ],
    layout: Annotated[str, typer.Option(help=LAYOUT_HELP)] = "basicsr",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Convert generator weights between formats (ncnn, .pth layouts, safetensors)."""
    from esrgan.weights import WeightsError, resolve_weights, save_pth, save_state_dict
    from esrgan.weights.canonical import ARCH_KEY
    from esrgan.weights.save import PTH_LAYOUTS

    suffix = dst.suffix.lower()
    if suffix not in (".safetensors", ".pth", ".pt"):
        raise fail(f"{dst}: output must end in .safetensors, .pth or .pt", EXIT_FAILED)
    if suffix != ".safetensors" and layout not in PTH_LAYOUTS:
        raise fail(f"{dst}: unknown --layout {layout!r} (use {', '.join(PTH_LAYOUTS)})", EXIT_FAILED)
    try:
        loaded = resolve_weights(src, progress=not quiet)
        if suffix == ".safetensors":
            meta = {k: v for k, v in loaded.metadata.items() if k.startswith("esrgan.") and k != ARCH_KEY}
            meta.update({"esrgan.converted_from": str(src), "esrgan.source_layout": loaded.layout})
            save_state_dict(loaded.state_dict, loaded.config, dst, metadata=meta)
            written = "safetensors"
        else:
            save_pth(loaded.state_dict, loaded.config, dst, layout=layout)
            written = f"{layout} .pth"
    except (WeightsError, ValueError, OSError) as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if not quiet:
        typer.echo(f"{src} ({loaded.layout}) -> {dst} ({written}): {loaded.config.summary()}")


def info(
    spec: Annotated[str, typer.Argument(metavar="FILE_OR_NAME", help="Weights file or registered name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    runtime: Annotated[
        bool,
        typer.Option(
            "--runtime",
            help="Show how --precision auto runs it on this CPU: the CPU's features, each candidate "
            "path's distance from eager fp32, PSNR-Y, time and verdict, and the choice (measured once, "
            "then cached).",
        ),
    ] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="With --runtime: measure again.")] = False,
) -> None:
    """Show a generator's architecture, parameter count, scale and source layout."""
    from esrgan.weights import WeightsError, resolve_weights, state_dict_sha256

    if runtime:
        _runtime_info(spec, as_json=as_json, refresh=refresh)
        return
    try:
        loaded = resolve_weights(spec, progress=not as_json)
    except (WeightsError, ValueError, OSError) as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    architecture = loaded.config.to_dict()
    metadata = {k: v for k, v in loaded.metadata.items() if k != "esrgan.arch"}
    report = {
        "file": str(loaded.path),
        "layout": loaded.layout,
        "architecture": architecture,
        "scale": loaded.config.scale,
        "parameters": sum(t.numel() for t in loaded.state_dict.values()),
        "dtype": str(next(iter(loaded.state_dict.values())).dtype).removeprefix("torch."),
        "tensors_sha256": state_dict_sha256(loaded.state_dict),
        "metadata": metadata,
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"file:          {report['file']}")
    typer.echo(f"layout:        {report['layout']}")
    typer.echo(f"architecture:  {loaded.config.summary()}")
    typer.echo("               " + ", ".join(f"{k}={v}" for k, v in architecture.items()))
    typer.echo(f"scale:         x{report['scale']}")
    typer.echo(f"parameters:    {report['parameters']:,} ({report['dtype']})")
    typer.echo(f"tensor sha256: {report['tensors_sha256']}")
    for key, value in metadata.items():
        typer.echo(f"metadata:      {key} = {value}")


def _runtime_info(spec: str, *, as_json: bool, refresh: bool) -> None:
    from esrgan.device import cpu_info
    from esrgan.inference.autoselect import select_path
    from esrgan.inference.int8 import known_drop
    from esrgan.weights import WeightsError, load_generator

    try:
        model = load_generator(spec, progress=not as_json)
    except (WeightsError, ValueError, OSError) as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    drop = known_drop(spec)
    selection = select_path(
        model, int8_drop_db=None if drop is None else drop.worst_db, progress=not as_json, refresh=refresh
    )
    cpu = cpu_info()
    if as_json:
        typer.echo(selection.to_json(cpu=cpu))
        return
    for line in selection.report(cpu=cpu):
        typer.echo(line)
    typer.echo(f"warm start: {_warm_start(spec, selection.choice)}")


def _warm_start(spec: str, choice: str) -> str:
    """Whether the next plain `esrgan upscale` of `spec` starts without torch (`esrgan.inference.warm`)."""
    from esrgan.inference.autoselect import CANDIDATES
    from esrgan.inference.warm import recall
    from esrgan.weights.zoo import DEFAULT_MODEL

    if CANDIDATES[choice].runtime == "torch":
        return "no (torch runs this model here; a warm start needs OpenVINO or ONNX Runtime)"
    specs = [spec, None] if spec == DEFAULT_MODEL else [spec]
    if any(recall(s) is not None for s in specs):
        return "ready (the next plain `esrgan upscale` of this model imports no torch)"
    return "after the next `esrgan upscale` of this model, which remembers the path"


def interpolate(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="Output .safetensors file.")],
    psnr: Annotated[str, typer.Option("--psnr", help="PSNR-oriented model (file or name).")],
    gan: Annotated[str, typer.Option("--gan", help="GAN model of the same architecture (file or name).")],
    alpha: Annotated[float, typer.Option(help="Weight of the GAN model, in [0, 1].")] = 0.8,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Network interpolation: weights = (1 - alpha) * PSNR + alpha * GAN (ESRGAN's perception knob)."""
    from esrgan.weights import WeightsError, interpolate_weights, save_state_dict

    if not 0.0 <= alpha <= 1.0:
        raise fail(f"--alpha must be in [0, 1], got {alpha}", EXIT_FAILED)
    if out.suffix.lower() != ".safetensors":
        raise fail(f"{out}: output must be a .safetensors file", EXIT_FAILED)
    try:
        sd, a, b = interpolate_weights(psnr, gan, alpha, progress=not quiet)
        meta = {
            "esrgan.interpolation.alpha": repr(float(alpha)),
            "esrgan.interpolation.psnr": str(psnr),
            "esrgan.interpolation.gan": str(gan),
            "esrgan.interpolation.psnr_layout": a.layout,
            "esrgan.interpolation.gan_layout": b.layout,
        }
        save_state_dict(sd, a.config, out, metadata=meta)
    except (WeightsError, ValueError, OSError) as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if not quiet:
        typer.echo(f"{out}: {1 - alpha:g} x {psnr} + {alpha:g} x {gan} ({a.config.summary()})")


def models() -> None:
    """List registered model names, their architecture, source and local availability."""
    from esrgan.weights.zoo import DEFAULT_MODEL, REGISTRY, availability, default_cache_dir

    rows = [
        (
            name + (" (default)" if name == DEFAULT_MODEL else ""),
            entry.architecture.summary(),
            availability(entry),
            entry.source,
        )
        for name, entry in REGISTRY.items()
    ]
    header = ("name", "architecture", "status", "source")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(3)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    typer.echo(f"cache: {default_cache_dir()}")


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
    app.command("info")(info)
    app.command("interpolate")(interpolate)
    app.command("models")(models)
