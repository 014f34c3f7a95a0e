"""Command-line interface: a thin layer over the library (`esrgan --help`).

Each command group lives in its own module and registers itself on the app (`esrgan.cli.commands`); heavy
imports happen inside the commands so `esrgan --help` stays fast. `main` first offers the command line
to the warm start (`esrgan.cli.upscale_warm`), which runs a plain `esrgan upscale` of a model this
machine has run before without importing torch or building the app, and otherwise hands over.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from esrgan.cli.commands import app

__all__ = ["app", "main"]


def main() -> None:
    from esrgan.cli.upscale_warm import run_warm

    code = run_warm(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from esrgan.cli.commands import app

    app()


def __getattr__(name: str) -> Any:
    # The app imports every command module: loaded when asked for, not when `main` may not need it.
    if name == "app":
        from esrgan.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
