"""Locating SR benchmark test sets (Set5, Set14, BSD100, any image folder) and loading their images.

The layout is SelfExSR's: `Set5/x4/img_001_SRF_4_HR.png` with its `img_001_SRF_4_LR.png`; BSD100 is
BSDS500's val split (HR only), found by `esrgan.data.layout.bsds500_dir`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from esrgan.data.layout import bsds500_dir, find_dir, image_files
from esrgan.data.realphoto import REAL_PHOTO_SETS, real_photo_pairs
from esrgan.data.transforms import mod_crop as crop_to_multiple
from esrgan.io import ImageError, read_rgb

__all__ = [
    "PAIRED_SETS",
    "BenchmarkError",
    "BenchmarkPair",
    "crop_to_multiple",
    "find_benchmark",
    "load_rgb",
]

PAIRED_SETS = {"set5": "Set5", "set14": "Set14"}
"""Benchmarks with HR and LR files (name -> folder under the data root)."""
_BSDS_VAL_NAMES = ("bsds100", "bsd100", "bsds500-val", "bsds500_val", "b100")
_SRF_RE = re.compile(r"^(?P<stem>.+)_SRF_(?P<scale>\d+)_(?P<kind>HR|LR)$", re.IGNORECASE)


class BenchmarkError(ValueError):
    """A benchmark folder is missing, empty or inconsistent (one-line message naming the path)."""


@dataclass(frozen=True)
class BenchmarkPair:
    """One test image: its display name, HR path and the provided LR path (None: make LR from HR)."""

    name: str
    hr_path: Path
    lr_path: Path | None
    degraded_lr: bool = False
    """The LR file is a degraded photo (``bsds100-real``): it is used whatever ``--lr-source`` says."""


def _paired_set(root: Path, folder: str, scale: int) -> list[BenchmarkPair]:
    base = find_dir(root, folder)
    if base is None:
        raise BenchmarkError(f"{root / folder}: dataset folder not found")
    sub = find_dir(base, f"x{scale}")
    if sub is None:
        # A plain folder of HR images is also accepted (LR made from HR).
        direct = image_files(base)
        if direct:
            return [BenchmarkPair(p.stem, p, None) for p in direct]
        have = sorted(p.name for p in base.iterdir() if p.is_dir() and re.fullmatch(r"x\d+", p.name))
        raise BenchmarkError(
            f"{base / f'x{scale}'}: no x{scale} folder (available: {', '.join(have) or 'none'})"
        )
    files = image_files(sub)
    hr: dict[str, Path] = {}
    lr: dict[str, Path] = {}
    plain: list[Path] = []
    for p in files:
        m = _SRF_RE.match(p.stem)
        if m is None:
            plain.append(p)
        elif m["kind"].upper() == "HR":
            hr[m["stem"]] = p
        else:
            lr[m["stem"]] = p
    pairs = [BenchmarkPair(stem, path, lr.get(stem)) for stem, path in sorted(hr.items())]
    if not pairs:
        pairs = [BenchmarkPair(p.stem, p, None) for p in plain]
    if not pairs:
        raise BenchmarkError(f"{sub}: no images found")
    return pairs


def find_benchmark(root: Path, name: str, scale: int) -> list[BenchmarkPair]:
    """Test images of benchmark `name` under `root` for x`scale`, sorted by name.

    `name`: "set5", "set14", "bsds100" (aliases "bsd100", "bsds500-val", "b100"; HR only),
    "bsds100-real" (BSD100 with real-photo LR files, made on first use: `esrgan.data.realphoto`), or a
    path to any folder of images (absolute, or relative to `root`; HR only). Raises BenchmarkError.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise BenchmarkError(f"scale must be a positive integer, got {scale!r}")
    root = Path(root)
    key = name.strip().lower()
    if key in PAIRED_SETS:
        return _paired_set(root, PAIRED_SETS[key], scale)
    if key in REAL_PHOTO_SETS:
        return real_photo_benchmark(root, scale)
    if key in _BSDS_VAL_NAMES:
        folder = bsds500_dir(root, "val")
        if folder is None:
            raise BenchmarkError(f"{root / 'BSDS500' / 'val'}: dataset folder not found")
    else:
        folder = _user_folder(root, name)
    images = image_files(folder)
    if not images:
        raise BenchmarkError(f"{folder}: no images found")
    return [BenchmarkPair(p.stem, p, None) for p in images]


def real_photo_benchmark(root: Path, scale: int) -> list[BenchmarkPair]:
    """``bsds100-real``'s pairs: BSDS500 val HR and its degraded LR (written on first use)."""
    folder = bsds500_dir(root, "val")
    if folder is None:
        where = root / "BSDS500" / "val"
        raise BenchmarkError(f"{where}: dataset folder not found (bsds100-real is made from it)")
    try:
        pairs = real_photo_pairs(image_files(folder), scale=scale)
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"bsds100-real: {exc}") from exc
    return [BenchmarkPair(hr.stem, hr, lr, degraded_lr=True) for hr, lr in pairs]


def _user_folder(root: Path, name: str) -> Path:
    folder = Path(name).expanduser()
    if not folder.is_absolute() and not folder.is_dir():
        folder = root / name
    if not folder.is_dir():
        raise BenchmarkError(
            f"{folder}: dataset folder not found (known names: set5, set14, bsds100, bsds100-real; or a "
            "folder of images)"
        )
    return folder


def load_rgb(path: Path) -> torch.Tensor:
    """File -> (3, H, W) float32 RGB in [0, 1] (grey replicated, alpha dropped, EXIF rotation applied)."""
    try:
        rgb = read_rgb(path)
    except ImageError as exc:
        raise BenchmarkError(str(exc)) from exc
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / (65535.0 if rgb.dtype == np.uint16 else 255.0)
