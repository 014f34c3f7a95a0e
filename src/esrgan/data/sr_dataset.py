"""The dataset every source shares: `ImagePair`s (HR file, optional LR file) made into training or
validation items `{"lr": FloatTensor[3,h,w], "hr": FloatTensor[3,h*s,w*s], "name"}` in [0, 1].

How items are made (mode, crops, augmentation, degradation, cache, seed) is one `DatasetOptions`, the
same for all sources (`esrgan.data.datasets` finds the pairs of each). HR images are first cropped
(top-left anchored) to a multiple of the scale, as the protocol prescribes. Without an LR file the LR is
made with `esrgan.data.imresize.degrade` (MATLAB bicubic, rounded to uint8) once per image and cached
with the decoded HR (see `esrgan.data.cache`); with `degradation` set, training items get a fresh
real-world degradation of their HR patch instead (`esrgan.data.degradations`), and an unsharp-masked
HR as `"hr_usm"` when the degradation config asks for it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeGuard

import numpy as np
import torch
from torch.utils.data import Dataset

from esrgan.data.archives import DatasetError
from esrgan.data.cache import ImageCache
from esrgan.data.degradation_config import DegradationConfig
from esrgan.data.imresize import degrade_uint8
from esrgan.data.transforms import (
    AugmentConfig,
    PairAugment,
    mod_crop,
    paired_center_crop,
    paired_random_crop,
    to_tensor,
)

if TYPE_CHECKING:
    from esrgan.data.degradations import RealESRGANDegradation

Mode = Literal["train", "val"]
SRItem = dict[str, torch.Tensor | str]
"""One dataset item: {"lr": (3, h, w) tensor, "hr": (3, H, W) tensor, "name": str}."""


@dataclass(frozen=True)
class ImagePair:
    """One sample: its name, the HR file and the LR file (None: LR made from HR on the fly)."""

    name: str
    hr: Path
    lr: Path | None = None


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _check_scale(scale: object) -> int:
    if not _positive_int(scale):
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return scale


@dataclass(frozen=True, kw_only=True)
class DatasetOptions:
    """How a dataset makes items from its image pairs; the same for every dataset class."""

    mode: Mode = "val"
    """Either "train": a random `patch_size` HR crop (aligned LR crop) per item, then `augment`; or
    "val": the whole image, or its centre `patch_size` crop when given, never augmented."""
    patch_size: int | None = None
    """HR crop side in pixels, a multiple of the scale; "train" needs one."""
    augment: AugmentConfig | None = None
    """Training augmentation (None: crops only)."""
    cache: ImageCache | None = None
    """Decoded-image cache, shareable between datasets (None: a private in-memory one per dataset)."""
    max_images: int | None = None
    """Use only the first N images (None: all)."""
    seed: int = 0
    """Mixed with one draw from torch's generator per item, so crops and augmentations follow
    `torch.manual_seed` and differ between DataLoader workers and epochs."""
    degradation: DegradationConfig | None = None
    """Training LR made by Real-ESRGAN's degradation model from each HR patch (None: the bicubic LR)."""

    def __post_init__(self) -> None:
        if self.mode not in ("train", "val"):
            raise ValueError(f"mode must be 'train' or 'val', got {self.mode!r}")
        if self.patch_size is not None and not _positive_int(self.patch_size):
            raise ValueError(f"patch_size must be a positive integer, got {self.patch_size!r}")
        if self.mode == "train" and self.patch_size is None:
            raise ValueError("mode='train' needs a patch_size")
        if self.mode == "val" and self.augment is not None:
            raise ValueError("validation datasets are not augmented (augment must be None)")
        if self.degradation is not None and self.mode != "train":
            raise ValueError("degradation applies to training datasets only")
        if (
            self.degradation is not None
            and self.augment is not None
            and (self.augment.jpeg_p > 0 or self.augment.dropout_p > 0)
        ):
            raise ValueError("with a degradation, augmentation must be spatial only (no LR JPEG or dropout)")
        if self.max_images is not None and not _positive_int(self.max_images):
            raise ValueError(f"max_images must be a positive integer or None, got {self.max_images!r}")


class SRDataset(Dataset[SRItem]):
    """Items from `ImagePair`s, made as `options` says (see `DatasetOptions`); `source` names the data."""

    def __init__(
        self,
        pairs: Sequence[ImagePair],
        *,
        scale: int,
        options: DatasetOptions = DatasetOptions(),
        source: str = "",
    ) -> None:
        _check_scale(scale)
        if options.patch_size is not None and options.patch_size % scale:
            raise ValueError(f"patch_size {options.patch_size} is not a multiple of scale {scale}")
        pairs = list(pairs)[: options.max_images]
        if not pairs:
            raise DatasetError(f"{source or 'dataset'}: no images")
        self.pairs = pairs
        self.scale = scale
        self.options = options
        self.source = source
        self.cache = options.cache if options.cache is not None else ImageCache()
        train_augment = options.augment if options.mode == "train" else None
        self._pipeline = PairAugment(train_augment) if train_augment is not None else None
        self._degrade: RealESRGANDegradation | None = None
        if options.degradation is not None and options.mode == "train":
            from esrgan.data.degradations import RealESRGANDegradation

            self._degrade = RealESRGANDegradation(config=options.degradation, scale=scale)

    @property
    def mode(self) -> Mode:
        return self.options.mode

    @property
    def patch_size(self) -> int | None:
        return self.options.patch_size

    @property
    def augment(self) -> AugmentConfig | None:
        return self.options.augment

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
            lr = self.cache.derived(pair.hr, f"degrade-x{s}", lambda: degrade_uint8(hr, s))
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
        ss = np.random.SeedSequence([draw, self.options.seed, zlib.crc32(self.source.encode())])
        if self._pipeline is not None:
            self._pipeline.reseed(int(ss.generate_state(1, np.uint32)[0]))
        return np.random.default_rng(ss)

    def __getitem__(self, index: int) -> SRItem:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        lr, hr = self.load_pair(index)
        pair = self.pairs[index]
        patch_size = self.options.patch_size
        if self._degrade is not None:
            assert patch_size is not None
            return self._degraded_item(index, patch_size)
        if self.options.mode == "train":
            assert patch_size is not None
            rng = self._item_rng()
            try:
                lr, hr = paired_random_crop(lr, hr, scale=self.scale, patch_size=patch_size, rng=rng)
            except ValueError as exc:
                raise DatasetError(f"{pair.hr}: {exc}") from exc
            lr, hr = np.ascontiguousarray(lr), np.ascontiguousarray(hr)
            if self._pipeline is not None:
                lr, hr = self._pipeline(lr, hr)
        elif patch_size is not None:
            lr, hr = paired_center_crop(lr, hr, scale=self.scale, patch_size=patch_size)
        return {"lr": to_tensor(lr), "hr": to_tensor(hr), "name": pair.name}

    def _degraded_item(self, index: int, patch_size: int) -> SRItem:
        """A random HR patch, spatially augmented, and its real-world degradation (`_degrade`)."""
        assert self._degrade is not None
        pair = self.pairs[index]
        hr = mod_crop(self.cache.image(pair.hr), self.scale)
        h, w = hr.shape[:2]
        if h < patch_size or w < patch_size:
            raise DatasetError(f"{pair.hr}: image {w}x{h} is smaller than the {patch_size} patch")
        rng = self._item_rng()
        top, left = int(rng.integers(0, h - patch_size + 1)), int(rng.integers(0, w - patch_size + 1))
        hr = np.ascontiguousarray(hr[top : top + patch_size, left : left + patch_size])
        if self._pipeline is not None:
            # Spatial transforms only (checked in DatasetOptions): the HR is both of the pair's targets.
            hr = np.ascontiguousarray(self._pipeline(hr, hr)[1])
        item: SRItem = {"lr": to_tensor(self._degrade(hr, rng)), "hr": to_tensor(hr), "name": pair.name}
        if self._degrade.config.usm_hr:
            item["hr_usm"] = to_tensor(self._degrade.sharpen(hr))
        return item
