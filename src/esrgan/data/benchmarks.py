"""Locating SR benchmark test sets (Set5, Set14, BSD100, any image folder) and loading their images.

The on-disk layout is that of `../shared/datasets`: `Set5/x4/img_001_SRF_4_HR.png` with its
`img_001_SRF_4_LR.png`, and `BSDS500/val/*.jpg` (HR only; BSD100 is BSDS500's val split).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

# Accepted spellings -> folder name under the data root.
_PAIRED_SETS = {"set5": "Set5", "set14": "Set14"}
_BSDS_VAL_NAMES = ("bsds100", "bsd100", "bsds500-val", "bsds500_val", "b100")
# Where BSDS500's val images live: the shared layout, then the official tarball's layout.
_BSDS_VAL_DIRS = ("BSDS500/val", "BSDS500/data/images/val", "BSR/BSDS500/data/images/val")
_SRF_RE = re.compile(r"^(?P<stem>.+)_SRF_(?P<scale>\d+)_(?P<kind>HR|LR)$", re.IGNORECASE)


class BenchmarkError(ValueError):
    """A benchmark folder is missing, empty or inconsistent (one-line message naming the path)."""


@dataclass(frozen=True)
class BenchmarkPair:
    """One test image: its display name, HR path and the provided LR path (None: make LR from HR)."""

    name: str
    hr_path: Path
    lr_path: Path | None


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _find_dir(root: Path, rel: str) -> Path | None:
    """`root/rel` matched case-insensitively per component (Set5 vs set5)."""
    cur = root
    for part in Path(rel).parts:
        if (cur / part).is_dir():
            cur = cur / part
            continue
        if not cur.is_dir():
            return None
        match = [p for p in cur.iterdir() if p.is_dir() and p.name.lower() == part.lower()]
        if not match:
            return None
        cur = match[0]
    return cur


def _paired_set(root: Path, folder: str, scale: int) -> list[BenchmarkPair]:
    base = _find_dir(root, folder)
    if base is None:
        raise BenchmarkError(f"{root / folder}: dataset folder not found")
    sub = _find_dir(base, f"x{scale}")
    if sub is None:
        # A plain folder of HR images is also accepted (LR made from HR).
        direct = _images_in(base)
        if direct:
            return [BenchmarkPair(p.stem, p, None) for p in direct]
        have = sorted(p.name for p in base.iterdir() if p.is_dir() and re.fullmatch(r"x\d+", p.name))
        raise BenchmarkError(
            f"{base / f'x{scale}'}: no x{scale} folder (available: {', '.join(have) or 'none'})"
        )
    files = _images_in(sub)
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

    `name`: "set5", "set14", "bsds100" (aliases "bsd100", "bsds500-val", "b100"; HR only), or a path
    to any folder of images (absolute, or relative to `root`; HR only). Raises BenchmarkError.
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise BenchmarkError(f"scale must be a positive integer, got {scale!r}")
    root = Path(root)
    key = name.strip().lower()
    if key in _PAIRED_SETS:
        return _paired_set(root, _PAIRED_SETS[key], scale)
    if key in _BSDS_VAL_NAMES:
        for rel in _BSDS_VAL_DIRS:
            folder = _find_dir(root, rel)
            if folder is not None:
                images = _images_in(folder)
                if not images:
                    raise BenchmarkError(f"{folder}: no images found")
                return [BenchmarkPair(p.stem, p, None) for p in images]
        raise BenchmarkError(f"{root / _BSDS_VAL_DIRS[0]}: dataset folder not found")
    folder = Path(name).expanduser()
    if not folder.is_absolute() and not folder.is_dir():
        folder = root / name
    if not folder.is_dir():
        raise BenchmarkError(
            f"{folder}: dataset folder not found (known names: set5, set14, bsds100; or a folder of images)"
        )
    images = _images_in(folder)
    if not images:
        raise BenchmarkError(f"{folder}: no images found")
    return [BenchmarkPair(p.stem, p, None) for p in images]


def load_rgb(path: Path) -> torch.Tensor:
    """File -> (3, H, W) float32 RGB in [0, 1] (grey replicated, alpha dropped, EXIF rotation applied)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                arr = arr / (65535.0 if arr.max() > 255 else 255.0)
                t = torch.from_numpy(arr.astype(np.float32))[None].expand(3, -1, -1).contiguous()
                return t
            arr = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read image: {exc}") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def crop_to_multiple(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Top-left anchored crop so height and width are multiples of `scale` (protocol step 1)."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]
