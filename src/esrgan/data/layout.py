"""Where datasets live under a data root: the default root, the images of a folder, the dataset folders.

BSDS500 is found in either of its layouts: `BSDS500/<split>` (a prepared data folder) or the official
tarball's `BSR/BSDS500/data/images/<split>` (what `download_bsds500` installs). DIV2K keeps the official
layout under `DIV2K/`. Folder names are matched case-insensitively (`Set5` or `set5`).
"""

from __future__ import annotations

import os
from pathlib import Path

from esrgan.data.archives import BSDS500_IMAGES, DatasetError
from esrgan.io import is_image_file

BSDS500_SPLITS = ("train", "val", "test")
# Relative folders that hold BSDS500's `<split>` folders, in the order they are tried.
_BSDS500_PARENTS = ("BSDS500", "BSDS500/data/images", BSDS500_IMAGES)


def default_data_root() -> Path:
    """`$ESRGAN_DATA` if set, else `datasets` in the user's data folder (e.g. ~/.local/share/esrgan)."""
    env = os.environ.get("ESRGAN_DATA")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("esrgan")) / "datasets"


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files directly inside `folder` (by extension), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_image_file(p) and p.is_file())


def list_images(folder: str | os.PathLike[str], *, what: str = "images") -> list[Path]:
    """`image_files(folder)`, or a DatasetError naming `folder` when it is missing or has no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: {what} folder does not exist")
    files = image_files(folder)
    if not files:
        raise DatasetError(f"{folder}: no images in {what} folder")
    return files


def find_dir(root: str | os.PathLike[str], rel: str) -> Path | None:
    """`root/rel` with each component matched case-insensitively (Set5 vs set5), or None."""
    cur = Path(root)
    for part in Path(rel).parts:
        if (cur / part).is_dir():
            cur = cur / part
            continue
        if not cur.is_dir():
            return None
        match = sorted(p for p in cur.iterdir() if p.is_dir() and p.name.lower() == part.lower())
        if not match:
            return None
        cur = match[0]
    return cur


def bsds500_dir(root: str | os.PathLike[str], split: str) -> Path | None:
    """The BSDS500 `split` folder ("train", "val" = BSD100, "test") under `root`, or None."""
    if split not in BSDS500_SPLITS:
        raise ValueError(f"BSDS500 split must be 'train', 'val' or 'test', got {split!r}")
    for parent in _BSDS500_PARENTS:
        folder = find_dir(root, f"{parent}/{split}")
        if folder is not None:
            return folder
    return None


def div2k_dir(root: str | os.PathLike[str]) -> Path:
    """The folder that holds DIV2K's official sub-folders (`DIV2K_train_HR`, ...)."""
    return Path(root) / "DIV2K"
