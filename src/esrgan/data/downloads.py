"""Explicit dataset downloads: DIV2K and BSDS500 fetched, verified and unpacked under a data root.

Dataset constructors only read what is on disk; these functions (called by `make_train_dataset` /
`make_val_dataset` with `download=True`, i.e. `data.download=true` in a training config) put it there.
What is already installed is never fetched again; see `esrgan.data.archives` for how an archive is
installed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from esrgan.data.archives import (
    BSDS500_MD5,
    BSDS500_URL,
    DIV2K_URL,
    DatasetError,
    bsds500_archive,
    div2k_archives,
    install_archive,
)
from esrgan.data.layout import BSDS500_SPLITS, bsds500_dir, div2k_dir


def download_div2k(
    root: str | os.PathLike[str],
    *,
    split: str = "train",
    scale: int = 4,
    track: str | None = "bicubic",
    base_url: str = DIV2K_URL,
    md5: Mapping[str, str | None] | None = None,
    progress: bool = True,
) -> None:
    """Install DIV2K's `split` ("train"/"valid") HR images and, unless `track` is None, its official
    `track` ("bicubic"/"unknown") LR images for `scale` (2, 3, 4) under `root/DIV2K`.

    `base_url`: default the ETH Zurich site; `md5`: known MD5s overridden by file name (for mirrors).
    """
    base = div2k_dir(root)
    for spec in div2k_archives(split=split, scale=scale, track=track, base_url=base_url, md5=md5):
        install_archive(spec, base, downloads_dir=base / "downloads", progress=progress)


def download_bsds500(
    root: str | os.PathLike[str],
    *,
    splits: Sequence[str] = BSDS500_SPLITS,
    url: str = BSDS500_URL,
    md5: str | None = BSDS500_MD5,
    progress: bool = True,
) -> None:
    """Install BSDS500's images (one archive holds every split) under `root`, unless each of `splits`
    is already there in either layout (see `esrgan.data.layout`).

    `md5`: expected MD5 of BSR_bsds500.tgz (None: the archive's own integrity check).
    """
    root = Path(root)
    if all(bsds500_dir(root, split) is not None for split in splits):
        return
    spec = bsds500_archive(url=url, md5=md5)
    install_archive(spec, root, downloads_dir=root / "downloads", progress=progress)
    missing = [split for split in splits if bsds500_dir(root, split) is None]
    if missing:
        raise DatasetError(f"{root}: {spec.filename} did not provide the split(s) {', '.join(missing)}")
