"""`esrgan export`: write a model for other runtimes (ONNX, OpenVINO IR), checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from esrgan.cli._common import EXIT_FAILED, fail


def export(
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Weights file (any format) or registered name.")
    ],
    out: Annotated[
        Path, typer.Argument(metavar="OUT", help="Output file: .onnx, or .xml (+ .bin) for openvino.")
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="onnx or openvino.")] = "onnx",
    check_image: Annotated[
        Path | None,
        typer.Option(
            help="Real image to compare the export with PyTorch on (a centre crop of at most 80x96); "
            "default: a synthetic pattern."
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Quantise to int8 for OpenVINO first (--format openvino; accuracy-controlled with the "
            "shipped calibration crops, see `esrgan upscale --help` for measured drops).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No download progress bar.")] = False,
) -> None:
    """Export a model (fp32, or int8 for OpenVINO with --int8; dynamic batch, height and width) and print
    its largest difference from PyTorch on an image."""
    from esrgan.inference.export import ExportError
    from esrgan.inference.export_check import export_and_check, synthetic_check_image
    from esrgan.io import ImageError, read_image
    from esrgan.weights import WeightsError, load_generator

    if int8 and format.strip().lower() != "openvino":
        raise fail("--int8: an int8 export is an OpenVINO model: use --format openvino")
    try:
        generator = load_generator(model, progress=not quiet)
    except (WeightsError, OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    if check_image is not None:
        try:
            image = read_image(check_image).pixels
        except ImageError as exc:
            raise fail(str(exc)) from None
        image = image.expand(3, -1, -1) if image.shape[0] == 1 else image[:3]
        source = str(check_image)
    else:
        image = synthetic_check_image()
        source = "a synthetic pattern"
    if int8 and not quiet:
        typer.echo(f"quantising {model} to int8...", err=True)
    try:
        report = export_and_check(generator, out, format=format, image=image, int8=int8)
    except (ExportError, OSError) as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    typer.echo(f"{report.summary()} from {source}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
