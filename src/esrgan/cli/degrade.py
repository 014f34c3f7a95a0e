"""`esrgan degrade`: degraded LR samples of your images and a contact sheet, to see a degradation config."""

from __future__ import annotations

from pathlib import Path

import typer

from esrgan.cli._common import EXIT_FAILED, error
from esrgan.cli._common import fail as _fail


def register(app: typer.Typer) -> None:
    @app.command(
        "degrade",
        help=(
            "Write degraded LR samples of the given images with Real-ESRGAN's real-world degradation "
            "model (blur, resize, noise, JPEG, twice), and one contact_sheet.png beside them (the clean "
            "bicubic LR first, then each sample, enlarged). CONFIG is a training config: its "
            "`degradation` section and scale_factor are used (default: Real-ESRGAN's published settings, "
            "x4). The same --seed writes the same files."
        ),
    )
    def degrade_cmd(
        inputs: list[Path] = typer.Argument(..., help="Images to degrade.", show_default=False),
        out_dir: Path = typer.Option(..., "--out-dir", "-o", help="Folder for the samples and the sheet."),
        config: Path = typer.Option(None, "--config", "-c", help="Training config to read."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random draws."),
        count: int = typer.Option(4, "--count", "-n", min=1, max=64, help="Samples per image."),
        scale: int = typer.Option(None, "--scale", min=1, help="Downscale factor (default: the config's)."),
        crop: int = typer.Option(
            256, "--crop", min=0, help="Degrade the centre CROP x CROP HR pixels (0: the whole image)."
        ),
    ) -> None:
        from esrgan.data.preview import write_degraded_samples
        from esrgan.training import ConfigError, load_config

        try:
            cfg = load_config(config)
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        factor = scale if scale is not None else cfg.scale_factor
        try:
            result = write_degraded_samples(
                inputs, out_dir=out_dir, config=cfg.degradation, scale=factor, seed=seed, count=count,
                crop=crop or None,
            )  # fmt: skip
        except OSError as exc:
            raise _fail(f"{exc.filename or out_dir}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise _fail(str(exc)) from None
        for _path, reason in result.failed:
            error(reason)
        if result.sheet is None:
            raise typer.Exit(EXIT_FAILED)
        typer.echo(
            f"{len(result.samples)} samples of {len(inputs) - len(result.failed)} image(s) in {out_dir}; "
            f"contact sheet {result.sheet}"
        )
        if result.failed:
            raise typer.Exit(EXIT_FAILED)
