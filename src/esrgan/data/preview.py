"""Degraded samples of a user's images and a contact sheet: what a degradation config does, before training.

Sample ``j`` of input ``i`` is drawn from ``numpy.random.default_rng([seed, i, j])``, so the same command
writes the same files. The sheet shows, per input, the clean bicubic LR and every sample, each enlarged
(nearest neighbour) to the same cell so that noise, blur and JPEG blocks stay visible.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from esrgan.data.degradation_config import DegradationConfig
from esrgan.utils import atomic_write

CELL = 192
"""Side of one contact-sheet cell in pixels."""
LABEL = 18
"""Height of the caption strip under each cell."""


@dataclass
class PreviewResult:
    """What `write_degraded_samples` wrote, and the inputs it could not read (with a one-line reason
    that names the file)."""

    samples: list[Path] = field(default_factory=list)
    sheet: Path | None = None
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _save_png(img: np.ndarray, path: Path) -> None:
    with atomic_write(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def _cell(img: np.ndarray, caption: str) -> Image.Image:
    h, w = img.shape[:2]
    zoom = max(1, min(CELL // max(h, 1), CELL // max(w, 1)))
    shown = Image.fromarray(img).resize((w * zoom, h * zoom), Image.Resampling.NEAREST)
    shown.thumbnail((CELL, CELL), Image.Resampling.LANCZOS)
    cell = Image.new("RGB", (CELL, CELL + LABEL), "white")
    cell.paste(shown, ((CELL - shown.width) // 2, (CELL - shown.height) // 2))
    ImageDraw.Draw(cell).text((4, CELL + 3), caption, fill="black")
    return cell


def write_degraded_samples(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    out_dir: str | os.PathLike[str],
    config: DegradationConfig,
    scale: int,
    seed: int = 0,
    count: int = 4,
    crop: int | None = 256,
    on_file: Callable[[Path], None] | None = None,
) -> PreviewResult:
    """Write ``count`` degraded LR samples of each input and one ``contact_sheet.png`` into ``out_dir``.

    ``crop``: degrade the centre ``crop`` x ``crop`` HR pixels (None: the whole image). Unreadable inputs
    are listed in ``failed`` and skipped; ``on_file`` hears of every file written.
    """
    from esrgan.data.cache import load_image
    from esrgan.data.degradations import RealESRGANDegradation
    from esrgan.data.imresize import degrade_uint8
    from esrgan.data.transforms import mod_crop

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if crop is not None and crop < scale:
        raise ValueError(f"crop must be at least the scale {scale}, got {crop}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = RealESRGANDegradation(config=config, scale=scale)
    result = PreviewResult()
    rows: list[list[Image.Image]] = []
    for i, src in enumerate(map(Path, inputs)):
        try:
            hr = load_image(src)
        except (OSError, ValueError) as exc:
            result.failed.append((src, str(exc)))
            continue
        if crop is not None:
            h, w = hr.shape[:2]
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
            hr = hr[top : top + crop, left : left + crop]
        hr = np.ascontiguousarray(mod_crop(hr, scale))
        if hr.shape[0] < scale or hr.shape[1] < scale:
            result.failed.append((src, f"{src}: image is smaller than the scale {scale}"))
            continue
        clean = degrade_uint8(hr, scale)
        row = [_cell(clean, f"{src.stem[:18]}: bicubic")]
        for j in range(count):
            lr = pipeline(hr, np.random.default_rng([seed, i, j]))
            path = out / f"{src.stem}_deg{j:02d}.png"
            _save_png(lr, path)
            result.samples.append(path)
            if on_file is not None:
                on_file(path)
            row.append(_cell(lr, f"seed {seed}, sample {j}"))
        rows.append(row)
    if rows:
        width = max(len(r) for r in rows) * CELL
        sheet = Image.new("RGB", (width, len(rows) * (CELL + LABEL)), "white")
        for r, row in enumerate(rows):
            for c, cell in enumerate(row):
                sheet.paste(cell, (c * CELL, r * (CELL + LABEL)))
        result.sheet = out / "contact_sheet.png"
        with atomic_write(result.sheet) as tmp:
            sheet.save(tmp, format="PNG")
        if on_file is not None:
            on_file(result.sheet)
    return result
