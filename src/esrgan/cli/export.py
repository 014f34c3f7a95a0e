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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No download progress bar.")] = False,
) -> None:
    """Export a model (fp32, dynamic batch, height and width) and print its largest difference from
    PyTorch on an image."""
    from esrgan.inference import ImageError, read_image
    from esrgan.inference.export import ExportError, export_and_check, synthetic_check_image
    from esrgan.weights import WeightsError, load_generator

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
    try:
        report = export_and_check(generator, out, format=format, image=image)
    except (ExportError, OSError) as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    typer.echo(f"{report.summary()} from {source}")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
