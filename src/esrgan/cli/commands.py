"""The `esrgan` command: a Typer app on which each command group's module registers itself."""

from __future__ import annotations

import typer

from esrgan.cli import degrade, evaluate, export, serve, train, upscale, weights

app = typer.Typer(
    name="esrgan",
    help="ESRGAN super-resolution: upscale images, convert weights, evaluate and train models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (upscale, weights, evaluate, train, degrade, serve, export):
    _module.register(app)
