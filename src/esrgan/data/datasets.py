"""The sources of LR/HR pairs: DIV2K, BSDS500, Set5/Set14, plain image folders and paired folders.

Each class only finds its `ImagePair`s; how items are made is `esrgan.data.sr_dataset`'s `SRDataset`
and `DatasetOptions`, the same for all. Constructors read only what is on disk: `esrgan.data.downloads`
fetches DIV2K and BSDS500, and `make_train_dataset` / `make_val_dataset` (which build the datasets the
training loop uses from source names) call it when asked to `download`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from torch.utils.data import ConcatDataset, Dataset

from esrgan.data.archives import BSDS500_URL, DatasetError, div2k_archives
from esrgan.data.benchmarks import PAIRED_SETS, BenchmarkError, find_benchmark, real_photo_benchmark
from esrgan.data.cache import ImageCache, default_cache_dir
from esrgan.data.degradation_config import DegradationConfig
from esrgan.data.downloads import download_bsds500, download_div2k
from esrgan.data.layout import bsds500_dir, default_data_root, div2k_dir, list_images
from esrgan.data.realphoto import REAL_PHOTO_SETS
from esrgan.data.sr_dataset import DatasetOptions, ImagePair, SRDataset, SRItem, _check_scale
from esrgan.data.transforms import AugmentConfig, Stage

__all__ = [
    "BSDS500",
    "DIV2K",
    "SOURCE_NAMES",
    "Benchmark",
    "DatasetOptions",
    "ImageFolder",
    "ImagePair",
    "PairedFolder",
    "SRDataset",
    "make_train_dataset",
    "make_val_dataset",
    "match_pairs",
]

SOURCE_NAMES = ("div2k", "bsds500", "bsds500-test", *PAIRED_SETS, *REAL_PHOTO_SETS)


def _hr_only(folder: str | os.PathLike[str], *, what: str) -> list[ImagePair]:
    return [ImagePair(p.stem, p) for p in list_images(folder, what=what)]


class ImageFolder(SRDataset):
    """HR images in one folder; LR made on the fly with `degrade`."""

    def __init__(
        self, root: str | os.PathLike[str], *, scale: int, options: DatasetOptions = DatasetOptions()
    ) -> None:
        super().__init__(_hr_only(root, what="HR images"), scale=scale, options=options, source=str(root))


def _lr_candidates(stem: str, scale: int) -> list[str]:
    # Naming conventions in the wild: same stem, DIV2K's "0001x4", SelfExSR's "..._HR" -> "..._LR".
    out = [stem, f"{stem}x{scale}", f"{stem}_x{scale}", f"{stem}_LR", f"{stem}_lr"]
    for hr_tag, lr_tag in (("_HR", "_LR"), ("_hr", "_lr"), ("HR", "LR")):
        if hr_tag in stem:
            out.append(stem[::-1].replace(hr_tag[::-1], lr_tag[::-1], 1)[::-1])
    return out


def match_pairs(
    hr_dir: str | os.PathLike[str], lr_dir: str | os.PathLike[str], *, scale: int
) -> list[ImagePair]:
    """Pair every HR image with the LR image whose name stem matches (see `_lr_candidates`)."""
    hr_files = list_images(hr_dir, what="HR images")
    lr_by_stem = {p.stem: p for p in list_images(lr_dir, what="LR images")}
    pairs = []
    for hr in hr_files:
        lr = next((lr_by_stem[c] for c in _lr_candidates(hr.stem, scale) if c in lr_by_stem), None)
        if lr is None:
            raise DatasetError(f"{hr}: no matching LR image in {lr_dir}")
        pairs.append(ImagePair(hr.stem, hr, lr))
    return pairs


class PairedFolder(SRDataset):
    """HR folder + LR folder, matched by file-name stem ("0001" <-> "0001x4", "a_HR" <-> "a_LR", ...)."""

    def __init__(
        self,
        hr_dir: str | os.PathLike[str],
        lr_dir: str | os.PathLike[str],
        *,
        scale: int,
        options: DatasetOptions = DatasetOptions(),
    ) -> None:
        pairs = match_pairs(hr_dir, lr_dir, scale=_check_scale(scale))
        super().__init__(pairs, scale=scale, options=options, source=str(hr_dir))


class DIV2K(SRDataset):
    """DIV2K (NTIRE 2017): 800 train / 100 valid 2K images, in `root/DIV2K` with the official layout.

    `track`: "bicubic" or "unknown" use the official LR images (`DIV2K_<split>_LR_<track>/X<s>/0001x<s>.png`,
    scales 2, 3, 4); None makes LR from HR on the fly. `esrgan.data.download_div2k` installs them.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: Literal["train", "valid"] = "train",
        scale: int = 4,
        track: Literal["bicubic", "unknown"] | None = "bicubic",
        options: DatasetOptions = DatasetOptions(),
    ) -> None:
        _check_scale(scale)
        if split not in ("train", "valid"):
            raise ValueError(f"DIV2K split must be 'train' or 'valid', got {split!r}")
        base = div2k_dir(root if root is not None else default_data_root())
        specs = div2k_archives(split=split, scale=scale, track=track)
        folders = [base / spec.target for spec in specs]
        for spec, folder in zip(specs, folders, strict=True):
            if not (folder.is_dir() and any(folder.iterdir())):
                kind = "HR" if folder == folders[0] else f"{track} LR"
                raise DatasetError(
                    f"{folder}: DIV2K {split} {kind} images not found; fetch them with "
                    f"esrgan.data.download_div2k (training config: data.download=true) or unpack {spec.url} "
                    f"into {base}"
                )
        if track is None:
            pairs = _hr_only(folders[0], what="DIV2K HR")
        else:
            pairs = match_pairs(folders[0], folders[1], scale=scale)
        super().__init__(pairs, scale=scale, options=options, source=f"div2k-{split}")


class BSDS500(SRDataset):
    """Berkeley Segmentation Dataset 500 images (train 200 / val 100 = BSD100 / test 200); LR on the fly.

    Found in either layout (see `esrgan.data.layout.bsds500_dir`); `esrgan.data.download_bsds500`
    installs them.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: Literal["train", "val", "test"] = "train",
        scale: int = 4,
        options: DatasetOptions = DatasetOptions(),
    ) -> None:
        root = Path(root if root is not None else default_data_root())
        folder = bsds500_dir(root, split)
        if folder is None:
            raise DatasetError(
                f"{root / 'BSDS500' / split}: BSDS500 {split} images not found; fetch them with "
                f"esrgan.data.download_bsds500 (training config: data.download=true) or unpack "
                f"{BSDS500_URL} into {root}"
            )
        pairs = _hr_only(folder, what=f"BSDS500 {split}")
        super().__init__(pairs, scale=scale, options=options, source=f"bsds500-{split}")


class Benchmark(SRDataset):
    """Set5 / Set14 in SelfExSR's layout (`Set5/x4/img_001_SRF_4_HR.png` + `_LR.png`).

    `lr="degrade"` (default, the standard protocol) regenerates LR from HR with MATLAB bicubic;
    `lr="given"` uses the distributed LR files (close to, not byte-identical with, the protocol's).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        name: str,
        scale: int = 4,
        lr: Literal["degrade", "given"] = "degrade",
        options: DatasetOptions = DatasetOptions(),
    ) -> None:
        _check_scale(scale)
        key = name.lower()
        if key not in PAIRED_SETS:
            raise ValueError(f"unknown benchmark {name!r} (expected 'set5' or 'set14')")
        if lr not in ("degrade", "given"):
            raise ValueError(f"lr must be 'degrade' or 'given', got {lr!r}")
        root = Path(root if root is not None else default_data_root())
        try:
            found = find_benchmark(root, key, scale)
        except (BenchmarkError, OSError) as exc:
            raise DatasetError(str(exc)) from exc
        pairs = [ImagePair(p.name, p.hr_path, p.lr_path if lr == "given" else None) for p in found]
        missing = next((p for p in pairs if lr == "given" and p.lr is None), None)
        if missing is not None:
            raise DatasetError(f"{missing.hr}: no LR file next to it (use lr='degrade')")
        super().__init__(pairs, scale=scale, options=options, source=key)


def _make_cache(cache: bool | ImageCache) -> ImageCache:
    if isinstance(cache, ImageCache):
        return cache
    # Disk entries are memory-mapped, so DataLoader workers share them instead of decoding privately.
    return ImageCache(memory=True, disk_dir=default_cache_dir()) if cache else ImageCache(memory=False)


def _build(
    source: str, *, root: Path, scale: int, train: bool, download: bool, options: DatasetOptions
) -> SRDataset:
    key = source.lower()
    if key == "div2k":
        div2k_split: Literal["train", "valid"] = "train" if train else "valid"
        if download:
            download_div2k(root, split=div2k_split, scale=scale)
        return DIV2K(root, split=div2k_split, scale=scale, options=options)
    if key in ("bsds500", "bsds500-test"):
        # "bsds500-test": BSDS500's 200 test images, used as extra training (or validation) data
        bsds_split: Literal["train", "val", "test"] = "train" if train else "val"
        if key == "bsds500-test":
            bsds_split = "test"
        if download:
            download_bsds500(root, splits=(bsds_split,))
        return BSDS500(root, split=bsds_split, scale=scale, options=options)
    if key in PAIRED_SETS:
        return Benchmark(root, name=key, scale=scale, lr="degrade", options=options)
    if key in REAL_PHOTO_SETS:
        try:
            found = real_photo_benchmark(root, scale)
        except BenchmarkError as exc:
            raise DatasetError(str(exc)) from exc
        pairs = [ImagePair(p.name, p.hr_path, p.lr_path) for p in found]
        return SRDataset(pairs, scale=scale, options=options, source=key)
    path = Path(source).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{path}: not a dataset name ({', '.join(SOURCE_NAMES)}) nor an existing folder")
    return ImageFolder(path, scale=scale, options=options)


def _build_all(
    names: Sequence[str],
    *,
    root: str | os.PathLike[str] | None,
    scale: int,
    train: bool,
    download: bool,
    options: DatasetOptions,
) -> Dataset[SRItem]:
    data_root = Path(root) if root is not None else default_data_root()
    datasets = [
        _build(name, root=data_root, scale=scale, train=train, download=download, options=options)
        for name in names
    ]
    return datasets[0] if len(datasets) == 1 else ConcatDataset(datasets)


def _check_sources(sources: Sequence[str]) -> list[str]:
    if isinstance(sources, str):
        sources = [s for s in sources.split(",") if s.strip()]
    out = [str(s).strip() for s in sources]
    if not out or any(not s for s in out):
        raise ValueError(f"sources must be a non-empty list of dataset names or folders, got {sources!r}")
    return out


def make_train_dataset(
    sources: Sequence[str],
    *,
    root: str | os.PathLike[str] | None = None,
    scale: int,
    patch_size: int,
    stage: Stage,
    augment: AugmentConfig | None = None,
    cache: bool | ImageCache = True,
    download: bool = False,
    max_images: int | None = None,
    seed: int = 0,
    degradation: DegradationConfig | None = None,
) -> Dataset[SRItem]:
    """Training dataset: random aligned `patch_size` HR crops with the stage's augmentation.

    `sources`: "div2k" (train split, official bicubic LR), "bsds500" (train split), "bsds500-test"
    (BSDS500's test split), "set5", "set14", or a folder of HR images (LR made on the fly); several are
    concatenated. `root`: data root (default `esrgan.data.default_data_root()`). `download`: fetch
    missing DIV2K/BSDS500 data first (`download_div2k`, `download_bsds500`). `augment`: default
    `AugmentConfig.for_stage(stage)`. `cache`: decoded images cached in memory and as memory-mapped .npy
    files under the user cache dir (or a given `ImageCache`). `max_images`: the first N images of each
    source. `degradation`: make each LR with Real-ESRGAN's degradation model from its HR patch (the
    augmentation is then spatial only: the model has its own JPEG).
    """
    names = _check_sources(sources)
    _check_scale(scale)
    if stage not in ("pretrain", "gan"):
        raise ValueError(f"unknown training stage {stage!r} (expected 'pretrain' or 'gan')")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < scale:
        raise ValueError(f"patch_size must be an integer >= scale, got {patch_size!r}")
    if patch_size % scale:
        raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}")
    if augment is None:
        augment = AugmentConfig.for_stage(stage)
    elif not isinstance(augment, AugmentConfig):
        raise ValueError(f"augment must be an AugmentConfig, got {type(augment).__name__}")
    if degradation is not None:
        augment = dataclasses.replace(augment, jpeg_p=0.0, dropout_p=0.0)
    options = DatasetOptions(
        mode="train",
        patch_size=patch_size,
        augment=augment,
        cache=_make_cache(cache),
        max_images=max_images,
        seed=seed,
        degradation=degradation,
    )
    return _build_all(names, root=root, scale=scale, train=True, download=download, options=options)


def make_val_dataset(
    sources: Sequence[str],
    *,
    root: str | os.PathLike[str] | None = None,
    scale: int,
    crop: int | None = None,
    max_images: int | None = None,
    cache: bool | ImageCache = True,
    download: bool = False,
) -> Dataset[SRItem]:
    """Validation dataset: whole images (HR cropped to a multiple of `scale`) or centre `crop` HR crops.

    Same sources as `make_train_dataset`, with validation splits (DIV2K valid, BSDS500 val = BSD100);
    Set5/Set14 LR is regenerated from HR per the protocol. Batch whole images with batch_size=1 (sizes
    differ).
    """
    names = _check_sources(sources)
    _check_scale(scale)
    if crop is not None and (
        isinstance(crop, bool) or not isinstance(crop, int) or crop < scale or crop % scale
    ):
        raise ValueError(f"crop must be None or a positive multiple of scale {scale}, got {crop!r}")
    options = DatasetOptions(mode="val", patch_size=crop, cache=_make_cache(cache), max_images=max_images)
    return _build_all(names, root=root, scale=scale, train=False, download=download, options=options)
