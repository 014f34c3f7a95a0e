"""Option parsing shared by several commands."""

from __future__ import annotations

import typer


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
