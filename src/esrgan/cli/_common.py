"""What every command shares: one way to report an error and exit, and option parsing."""

from __future__ import annotations

import sys

import typer

EXIT_FAILED = 1
"""The command ran but something failed (an input, a conversion)."""
EXIT_USAGE = 2
"""Nothing was done: a bad option, model or data set (click uses 2 for usage errors too)."""


def error(message: str) -> None:
    """Print `error: MESSAGE` as one line on stderr, without breaking progress bars being drawn."""
    from tqdm import tqdm

    tqdm.write(f"error: {' '.join(str(message).split())}", file=sys.stderr)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print a one-line error; returns the exit to raise: `raise fail(...) from None`."""
    error(message)
    return typer.Exit(code)


def parse_tile(value: str) -> int | str:
    """`--tile`: 'auto' or a tile size in input pixels (0 = whole image)."""
    text = value.strip().lower()
    if text == "auto":
        return "auto"
    try:
        tile = int(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not 'auto' or a whole number of pixels") from None
    if tile < 0:
        raise typer.BadParameter("must be >= 0 (0 = no tiling)")
    return tile
