"""LR/HR pair datasets: DIV2K, BSDS500, Set5/Set14, plain image folders and paired folders.

Every dataset is an `SRDataset`: a list of `ImagePair`s (HR file, optional LR file) plus how to turn one
into a training or validation item `{"lr": FloatTensor[3,h,w], "hr": FloatTensor[3,h*s,w*s], "name"}`
in [0, 1]. HR images are first cropped (top-left anchored) to a multiple of the scale, as the protocol
prescribes. Without an LR file the LR is made with `esrgan.data.imresize.degrade` (MATLAB bicubic,
rounded to uint8) once per image and cached with the decoded HR (see `esrgan.data.cache`).

`make_train_dataset` / `make_val_dataset` build the datasets the training loop uses from source names.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from esrgan.data.archives import (
    BSDS500_URL,
    DIV2K_URL,
    DatasetError,
    bsds500_archive,
    div2k_archive,
    install_archive,
)
from esrgan.data.cache import ImageCache, default_cache_dir
from esrgan.data.transforms import (
    AugmentConfig,
    PairAugment,
    Stage,
    from_tensor,
    mod_crop,
    paired_center_crop,
    paired_random_crop,
    to_tensor,
)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
SOURCE_NAMES = ("div2k", "bsds500", "bsds500-test", "set5", "set14")
Mode = Literal["train", "val"]


def default_data_root() -> Path:
    """`$ESRGAN_DATA` if set, else `./datasets`."""
    env = os.environ.get("ESRGAN_DATA")
    return Path(env).expanduser() if env else Path("datasets")


@dataclass(frozen=True)
class ImagePair:
    """One sample: its name, the HR file and the LR file (None: LR made from HR on the fly)."""

    name: str
    hr: Path
    lr: Path | None = None


def list_images(folder: str | os.PathLike[str], *, what: str = "images") -> list[Path]:
    """Image files directly inside `folder`, sorted by name; DatasetError if missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: {what} folder does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DatasetError(f"{folder}: no images in {what} folder")
    return files


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return scale


def _check_max_images(max_images: int | None) -> None:
    if max_images is not None and (
        isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1
    ):
        raise ValueError(f"max_images must be a positive integer or None, got {max_images!r}")


def _degrade_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
    from esrgan.data.imresize import degrade

    # float64 like MATLAB, so rounding to uint8 lands on the same levels; done once per image (cached).
    x = torch.from_numpy(np.array(hr)).permute(2, 0, 1).to(torch.float64).div_(255.0)
    return from_tensor(degrade(x, scale))


class SRDataset(Dataset):
    """Items from `ImagePair`s.

    `mode="train"`: random `patch_size` HR crops (aligned LR crops) and `augment`. `mode="val"`: the whole
    image, or the centre `patch_size` crop when given; never augmented. `cache`: shared decoded-image cache
    (None: a private in-memory one). `seed`: mixed with one draw from torch's generator per item, so
    crops and augmentations follow `torch.manual_seed` and differ between DataLoader workers and epochs.
    """

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        *,
        scale: int,
        mode: Mode = "val",
        patch_size: int | None = None,
        augment: AugmentConfig | None = None,
        cache: ImageCache | None = None,
        max_images: int | None = None,
        seed: int = 0,
        source: str = "",
    ) -> None:
        _check_scale(scale)
        _check_max_images(max_images)
        if mode not in ("train", "val"):
            raise ValueError(f"mode must be 'train' or 'val', got {mode!r}")
        if patch_size is not None and (
            isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1
        ):
            raise ValueError(f"patch_size must be a positive integer, got {patch_size!r}")
        if patch_size is not None and patch_size % scale:
            raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}")
        if mode == "train" and patch_size is None:
            raise ValueError("mode='train' needs a patch_size")
        if mode == "val" and augment is not None:
            raise ValueError("validation datasets are not augmented (augment must be None)")
        pairs = list(pairs)[:max_images] if max_images is not None else list(pairs)
        if not pairs:
            raise DatasetError(f"{source or 'dataset'}: no images")
        self.pairs = pairs
        self.scale = scale
        self.mode = mode
        self.patch_size = patch_size
        self.augment = augment
        self.cache = cache if cache is not None else ImageCache()
        self.seed = seed
        self.source = source
        self._pipeline = PairAugment(augment) if augment is not None and mode == "train" else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        crop = f", patch_size={self.patch_size}" if self.patch_size else ""
        return f"{type(self).__name__}({self.source!r}, {len(self)} images, x{self.scale}, {self.mode}{crop})"

    def load_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole (LR, HR) uint8 HWC pair of image `index`, HR cropped to a multiple of the scale."""
        pair = self.pairs[index]
        s = self.scale
        hr = mod_crop(self.cache.image(pair.hr), s)
        if pair.lr is None:
            if hr.shape[0] < s or hr.shape[1] < s:
                raise DatasetError(f"{pair.hr}: image is smaller than the scale {s}")
            lr = self.cache.derived(pair.hr, f"degrade-x{s}", lambda: _degrade_uint8(hr, s))
        else:
            lr = self.cache.image(pair.lr)
            if hr.shape[0] != lr.shape[0] * s or hr.shape[1] != lr.shape[1] * s:
                raise DatasetError(
                    f"{pair.lr}: LR {lr.shape[1]}x{lr.shape[0]} does not match HR {pair.hr.name} "
                    f"{hr.shape[1]}x{hr.shape[0]} at scale {s}"
                )
        return lr, hr

    def _item_rng(self) -> np.random.Generator:
        # One draw from torch's generator per item: follows torch.manual_seed in the main process and is
        # distinct per DataLoader worker and epoch (torch seeds each worker from a fresh base seed).
        # Albumentations keeps its own random state, so it is reseeded from the same draw.
        draw = int(torch.randint(0, 1 << 62, (1,)).item())
        ss = np.random.SeedSequence([draw, self.seed, zlib.crc32(self.source.encode())])
        if self._pipeline is not None:
            self._pipeline.reseed(int(ss.generate_state(1, np.uint32)[0]))
        return np.random.default_rng(ss)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        lr, hr = self.load_pair(index)
        pair = self.pairs[index]
        if self.mode == "train":
            assert self.patch_size is not None
            rng = self._item_rng()
            try:
                lr, hr = paired_random_crop(lr, hr, scale=self.scale, patch_size=self.patch_size, rng=rng)
            except ValueError as exc:
                raise DatasetError(f"{pair.hr}: {exc}") from exc
            lr, hr = np.ascontiguousarray(lr), np.ascontiguousarray(hr)
            if self._pipeline is not None:
                lr, hr = self._pipeline(lr, hr)
        elif self.patch_size is not None:
            lr, hr = paired_center_crop(lr, hr, scale=self.scale, patch_size=self.patch_size)
        return {"lr": to_tensor(lr), "hr": to_tensor(hr), "name": pair.name}


class ImageFolder(SRDataset):
    """HR images in one folder; LR made on the fly with `degrade`."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        scale: int,
        mode: Mode = "val",
        patch_size: int | None = None,
        augment: AugmentConfig | None = None,
        cache: ImageCache | None = None,
        max_images: int | None = None,
        seed: int = 0,
    ) -> None:
        pairs = [ImagePair(p.stem, p) for p in list_images(root, what="HR images")]
        super().__init__(
            pairs,
            scale=scale,
            mode=mode,
            patch_size=patch_size,
            augment=augment,
            cache=cache,
            max_images=max_images,
            seed=seed,
            source=str(root),
        )


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
        mode: Mode = "val",
        patch_size: int | None = None,
        augment: AugmentConfig | None = None,
        cache: ImageCache | None = None,
        max_images: int | None = None,
        seed: int = 0,
    ) -> None:
        pairs = match_pairs(hr_dir, lr_dir, scale=_check_scale(scale))
        super().__init__(
            pairs,
            scale=scale,
            mode=mode,
            patch_size=patch_size,
            augment=augment,
            cache=cache,
            max_images=max_images,
            seed=seed,
            source=str(hr_dir),
        )


class DIV2K(SRDataset):
    """DIV2K (NTIRE 2017): 800 train / 100 valid 2K images, in `root/DIV2K` with the official layout.

    `track`: "bicubic" or "unknown" use the official LR images (`DIV2K_<split>_LR_<track>/X<s>/0001x<s>.png`,
    scales 2, 3, 4); None makes LR from HR on the fly. `download=True` fetches missing archives from
    `base_url` (default: the ETH Zurich site) with MD5 verification; `md5` overrides the known MD5s by
    file name (for mirrors).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: Literal["train", "valid"] = "train",
        scale: int = 4,
        track: Literal["bicubic", "unknown"] | None = "bicubic",
        download: bool = False,
        base_url: str = DIV2K_URL,
        md5: dict[str, str | None] | None = None,
        progress: bool = True,
        mode: Mode = "val",
        patch_size: int | None = None,
        augment: AugmentConfig | None = None,
        cache: ImageCache | None = None,
        max_images: int | None = None,
        seed: int = 0,
    ) -> None:
        _check_scale(scale)
        if split not in ("train", "valid"):
            raise ValueError(f"DIV2K split must be 'train' or 'valid', got {split!r}")
        if track not in ("bicubic", "unknown", None):
            raise ValueError(f"DIV2K track must be 'bicubic', 'unknown' or None, got {track!r}")
        base = Path(root if root is not None else default_data_root()) / "DIV2K"
        specs = [div2k_archive(split=split, kind="HR", base_url=base_url)]
        if track is not None:
            specs.append(div2k_archive(split=split, kind=track, scale=scale, base_url=base_url))
        if md5:
            from dataclasses import replace

            specs = [replace(s, md5=md5[s.filename]) if s.filename in md5 else s for s in specs]
        hr_dir = base / specs[0].target
        lr_dir = base / specs[1].target if track is not None else None
        for spec in specs:
            folder = base / spec.target
            if folder.is_dir() and any(folder.iterdir()):
                continue
            if not download:
                raise DatasetError(
                    f"{folder}: DIV2K {split} {'HR' if spec is specs[0] else f'{track} LR'} images not "
                    "found; "
                    f"download them with download=True (CLI: --download) or unpack {spec.url} into {base}"
                )
            install_archive(spec, base, downloads_dir=base / "downloads", progress=progress)
        if lr_dir is None:
            pairs = [ImagePair(p.stem, p) for p in list_images(hr_dir, what="DIV2K HR")]
        else:
            pairs = match_pairs(hr_dir, lr_dir, scale=scale)
        super().__init__(
            pairs,
            scale=scale,
            mode=mode,
            patch_size=patch_size,
            augment=augment,
            cache=cache,
            max_images=max_images,
            seed=seed,
            source=f"div2k-{split}",
        )


def bsds500_dir(root: str | os.PathLike[str], split: str) -> Path | None:
    """The BSDS500 `split` folder under `root`, in either supported layout, or None."""
    root = Path(root)
    for folder in (root / "BSDS500" / split, root / "BSR" / "BSDS500" / "data" / "images" / split):
        if folder.is_dir():
            return folder
    return None


class BSDS500(SRDataset):
    """Berkeley Segmentation Dataset 500 images (train 200 / val 100 = BSD100 / test 200); LR on the fly.

    Looks in `root/BSDS500/<split>` (the layout of ../shared/datasets) or `root/BSR/BSDS500/data/images/
    <split>` (the official tarball's layout); `download=True` fetches and unpacks BSR_bsds500.tgz.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        split: Literal["train", "val", "test"] = "train",
        scale: int = 4,
        download: bool = False,
        url: str = BSDS500_URL,
        md5: str | None = None,
        progress: bool = True,
        mode: Mode = "val",
        patch_size: int | None = None,
        augment: AugmentConfig | None = None,
        cache: ImageCache | None = None,
        max_images: int | None = None,
        seed: int = 0,
    ) -> None:
        if split not in ("train", "val", "test"):
            raise ValueError(f"BSDS500 split must be 'train', 'val' or 'test', got {split!r}")
        root = Path(root if root is not None else default_data_root())
        folder = bsds500_dir(root, split)
        if folder is None:
            if not download:
                raise DatasetError(
                    f"{root / 'BSDS500' / split}: BSDS500 {split} images not found; download them with "
                    f"download=True (CLI: --download) or unpack {url} into {root}"
                )
            spec = bsds500_archive(url=url) if md5 is None else bsds500_archive(url=url, md5=md5)
            install_archive(spec, root, downloads_dir=root / "downloads", progress=progress)
            folder = bsds500_dir(root, split)
            if folder is None:
                raise DatasetError(f"{root}: BSR_bsds500.tgz did not provide the {split} split")
        pairs = [ImagePair(p.stem, p) for p in list_images(folder, what=f"BSDS500 {split}")]
        super().__init__(
            pairs,
            scale=scale,
            mode=mode,
            patch_size=patch_size,
            augment=augment,
            cache=cache,
            max_images=max_images,
            seed=seed,
            source=f"bsds500-{split}",
        )


_BENCHMARK_DIRS = {"set5": "Set5", "set14": "Set14"}


def _benchmark_pairs(root: Path, name: str, scale: int) -> list[ImagePair]:
    try:
        from esrgan.data.benchmarks import find_benchmark
    except ModuleNotFoundError as exc:  # helper module not present in this tree
        if exc.name != "esrgan.data.benchmarks":
            raise
        find_benchmark = None
    if find_benchmark is not None:
        return [
            ImagePair(p.name, Path(p.hr_path), p.lr_path and Path(p.lr_path))
            for p in find_benchmark(root, name, scale)
        ]
    folder = root / _BENCHMARK_DIRS[name] / f"x{scale}"
    files = list_images(folder, what=f"{_BENCHMARK_DIRS[name]} x{scale}")
    pairs = []
    for hr in files:
        if not hr.stem.endswith("_HR"):
            continue
        lr = hr.with_name(hr.stem[:-3] + "_LR" + hr.suffix)
        pairs.append(ImagePair(hr.stem[:-3], hr, lr if lr.is_file() else None))
    if not pairs:
        raise DatasetError(f"{folder}: no *_HR images")
    return pairs


class Benchmark(SRDataset):
    """Set5 / Set14 in the layout of ../shared/datasets (`Set5/x4/img_001_SRF_4_HR.png` + `_LR.png`).

    `lr="degrade"` (default, the standard protocol) regenerates LR from HR with MATLAB bicubic;
    `lr="given"` uses the distributed LR files (close to, not byte-identical with, the protocol's).
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        name: Literal["set5", "set14"],
        scale: int = 4,
        lr: Literal["degrade", "given"] = "degrade",
        mode: Mode = "val",
        patch_size: int | None = None,
        augment: AugmentConfig | None = None,
        cache: ImageCache | None = None,
        max_images: int | None = None,
        seed: int = 0,
    ) -> None:
        _check_scale(scale)
        key = name.lower()
        if key not in _BENCHMARK_DIRS:
            raise ValueError(f"unknown benchmark {name!r} (expected 'set5' or 'set14')")
        if lr not in ("degrade", "given"):
            raise ValueError(f"lr must be 'degrade' or 'given', got {lr!r}")
        root = Path(root if root is not None else default_data_root())
        try:
            pairs = _benchmark_pairs(root, key, scale)
        except DatasetError:
            raise
        except (ValueError, OSError) as exc:  # esrgan.data.benchmarks.BenchmarkError is a ValueError
            raise DatasetError(str(exc)) from exc
        if lr == "degrade":
            pairs = [ImagePair(p.name, p.hr) for p in pairs]
        elif any(p.lr is None for p in pairs):
            missing = next(p for p in pairs if p.lr is None)
            raise DatasetError(f"{missing.hr}: no LR file next to it (use lr='degrade')")
        super().__init__(
            pairs,
            scale=scale,
            mode=mode,
            patch_size=patch_size,
            augment=augment,
            cache=cache,
            max_images=max_images,
            seed=seed,
            source=key,
        )


def _make_cache(cache: bool | ImageCache) -> ImageCache:
    if isinstance(cache, ImageCache):
        return cache
    # Disk entries are memory-mapped, so DataLoader workers share them instead of decoding privately.
    return ImageCache(memory=True, disk_dir=default_cache_dir()) if cache else ImageCache(memory=False)


def _build(
    source: str,
    *,
    root: Path,
    scale: int,
    train: bool,
    download: bool,
    **kwargs: object,
) -> SRDataset:
    key = source.lower()
    if key == "div2k":
        return DIV2K(root, split="train" if train else "valid", scale=scale, download=download, **kwargs)  # type: ignore[arg-type]
    if key == "bsds500":
        return BSDS500(root, split="train" if train else "val", scale=scale, download=download, **kwargs)  # type: ignore[arg-type]
    if key == "bsds500-test":  # BSDS500's 200 test images, used as extra training (or validation) data
        return BSDS500(root, split="test", scale=scale, download=download, **kwargs)  # type: ignore[arg-type]
    if key in _BENCHMARK_DIRS:
        return Benchmark(root, name=key, scale=scale, lr="degrade", **kwargs)  # type: ignore[arg-type]
    path = Path(source).expanduser()
    if not path.is_dir():
        raise DatasetError(f"{path}: not a dataset name ({', '.join(SOURCE_NAMES)}) nor an existing folder")
    return ImageFolder(path, scale=scale, **kwargs)  # type: ignore[arg-type]


def _combine(datasets: list[SRDataset]) -> Dataset:
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
) -> Dataset:
    """Training dataset: random aligned `patch_size` HR crops with the stage's augmentation.

    `sources`: "div2k" (train split, official bicubic LR), "bsds500" (train split), "bsds500-test"
    (BSDS500's test split), "set5", "set14", or a
    folder of HR images (LR made on the fly); several are concatenated. `root`: data root (default
    `$ESRGAN_DATA` or ./datasets). `augment`: default `AugmentConfig.for_stage(stage)`. `cache`: decoded
    images cached in memory and as memory-mapped .npy files under the user cache dir (or a given
    `ImageCache`). `max_images`: the first N images of each source.
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
    shared = _make_cache(cache)
    data_root = Path(root) if root is not None else default_data_root()
    datasets = [
        _build(
            name,
            root=data_root,
            scale=scale,
            train=True,
            download=download,
            mode="train",
            patch_size=patch_size,
            augment=augment,
            cache=shared,
            max_images=max_images,
            seed=seed,
        )
        for name in names
    ]
    return _combine(datasets)


def make_val_dataset(
    sources: Sequence[str],
    *,
    root: str | os.PathLike[str] | None = None,
    scale: int,
    crop: int | None = None,
    max_images: int | None = None,
    cache: bool | ImageCache = True,
    download: bool = False,
) -> Dataset:
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
    shared = _make_cache(cache)
    data_root = Path(root) if root is not None else default_data_root()
    datasets = [
        _build(
            name,
            root=data_root,
            scale=scale,
            train=False,
            download=download,
            mode="val",
            patch_size=crop,
            cache=shared,
            max_images=max_images,
        )
        for name in names
    ]
    return _combine(datasets)
