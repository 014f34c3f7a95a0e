"""Data: datasets (DIV2K, BSDS500, Set5/Set14, folders), downloads, augmentation, caching, degradation.

Dataset classes read only what is on disk; `download_div2k` / `download_bsds500` fetch the data (or
`make_train_dataset(..., download=True)`), under `default_data_root()` unless told otherwise.

Names are resolved lazily (PEP 562) so `import esrgan.data` stays cheap (Albumentations alone takes
seconds to import) and never fails because a sibling module is missing or broken: the error surfaces
only when that name is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # datasets
    "SRDataset": "esrgan.data.sr_dataset",
    "DatasetOptions": "esrgan.data.sr_dataset",
    "ImagePair": "esrgan.data.sr_dataset",
    "ImageFolder": "esrgan.data.datasets",
    "PairedFolder": "esrgan.data.datasets",
    "DIV2K": "esrgan.data.datasets",
    "BSDS500": "esrgan.data.datasets",
    "Benchmark": "esrgan.data.datasets",
    "make_train_dataset": "esrgan.data.datasets",
    "make_val_dataset": "esrgan.data.datasets",
    "match_pairs": "esrgan.data.datasets",
    # layout
    "default_data_root": "esrgan.data.layout",
    "list_images": "esrgan.data.layout",
    "bsds500_dir": "esrgan.data.layout",
    # downloads
    "download_div2k": "esrgan.data.downloads",
    "download_bsds500": "esrgan.data.downloads",
    # archives
    "DatasetError": "esrgan.data.archives",
    "ArchiveError": "esrgan.data.archives",
    "ArchiveSpec": "esrgan.data.archives",
    "install_archive": "esrgan.data.archives",
    "extract_archive": "esrgan.data.archives",
    "div2k_archive": "esrgan.data.archives",
    "bsds500_archive": "esrgan.data.archives",
    # transforms
    "AugmentConfig": "esrgan.data.transforms",
    "PairAugment": "esrgan.data.transforms",
    "paired_random_crop": "esrgan.data.transforms",
    "paired_center_crop": "esrgan.data.transforms",
    "mod_crop": "esrgan.data.transforms",
    "to_tensor": "esrgan.data.transforms",
    # cache
    "ImageCache": "esrgan.data.cache",
    "load_image": "esrgan.data.cache",
    "default_cache_dir": "esrgan.data.cache",
    # degradation
    "imresize": "esrgan.data.imresize",
    "degrade": "esrgan.data.imresize",
    "DegradationConfig": "esrgan.data.degradation_config",
    "DegradationConfigError": "esrgan.data.degradation_config",
    "RealESRGANDegradation": "esrgan.data.degradations",
}

__all__ = [
    "BSDS500",
    "DIV2K",
    "ArchiveError",
    "ArchiveSpec",
    "AugmentConfig",
    "Benchmark",
    "DatasetError",
    "DatasetOptions",
    "DegradationConfig",
    "DegradationConfigError",
    "ImageCache",
    "ImageFolder",
    "ImagePair",
    "PairAugment",
    "PairedFolder",
    "RealESRGANDegradation",
    "SRDataset",
    "bsds500_archive",
    "bsds500_dir",
    "default_cache_dir",
    "default_data_root",
    "degrade",
    "div2k_archive",
    "download_bsds500",
    "download_div2k",
    "extract_archive",
    "imresize",
    "install_archive",
    "list_images",
    "load_image",
    "make_train_dataset",
    "make_val_dataset",
    "match_pairs",
    "mod_crop",
    "paired_center_crop",
    "paired_random_crop",
    "to_tensor",
]

if TYPE_CHECKING:
    from esrgan.data.archives import (
        ArchiveError,
        ArchiveSpec,
        DatasetError,
        bsds500_archive,
        div2k_archive,
        extract_archive,
        install_archive,
    )
    from esrgan.data.cache import ImageCache, default_cache_dir, load_image
    from esrgan.data.datasets import (
        BSDS500,
        DIV2K,
        Benchmark,
        DatasetOptions,
        ImageFolder,
        ImagePair,
        PairedFolder,
        SRDataset,
        make_train_dataset,
        make_val_dataset,
        match_pairs,
    )
    from esrgan.data.degradation_config import DegradationConfig, DegradationConfigError
    from esrgan.data.degradations import RealESRGANDegradation
    from esrgan.data.downloads import download_bsds500, download_div2k
    from esrgan.data.imresize import degrade, imresize
    from esrgan.data.layout import bsds500_dir, default_data_root, list_images
    from esrgan.data.transforms import (
        AugmentConfig,
        PairAugment,
        mod_crop,
        paired_center_crop,
        paired_random_crop,
        to_tensor,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'esrgan.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
