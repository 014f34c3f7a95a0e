"""``bsds100-real``: BSDS500's 100 val photos degraded as real uploads are, to test real-photo models.

Made with plain Pillow and OpenCV calls, not with the training pipeline (``esrgan.data.degradations``),
so a model is not tested on the very distribution it was trained on. Image ``i`` (files sorted by name)
draws its settings from ``numpy.random.default_rng([SEED, i])``, one of four strengths per step:

1. blur of the HR: Gaussian sigma 0 (none), 0.6, 1.2 or 1.8 pixels (OpenCV, reflected borders);
2. downscale by the scale factor: Pillow's antialiased bicubic;
3. noise on the LR: Gaussian sigma 1, 4, 8 or 12 levels of 255, the same in every channel (gray, luma
   noise) or independent per channel, each half of the time;
4. JPEG of the LR: quality 95, 75, 55 or 35 (Pillow, 4:2:0 chroma subsampling).

The LR files are written once under ``<user cache>/bsds100-real/v<RECIPE_VERSION>/x<scale>``
(``$ESRGAN_CACHE`` moves it) as lossless PNGs and reused; ``recipe_of`` returns one image's settings.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from esrgan.utils import atomic_write, user_cache_dir

REAL_PHOTO_SETS = ("bsds100-real",)
RECIPE_VERSION = 1
SEED = 20261205
BLUR_SIGMAS = (0.0, 0.6, 1.2, 1.8)
NOISE_SIGMAS = (1.0, 4.0, 8.0, 12.0)
JPEG_QUALITIES = (95, 75, 55, 35)


@dataclass(frozen=True)
class RealPhotoRecipe:
    """The degradation settings of one image of the set."""

    blur_sigma: float
    noise_sigma: float
    gray_noise: bool
    jpeg_quality: int


def recipe_of(index: int) -> RealPhotoRecipe:
    """Settings of image ``index`` (0-based, files sorted by name)."""
    rng = np.random.default_rng([SEED, index])
    return RealPhotoRecipe(
        blur_sigma=float(BLUR_SIGMAS[rng.integers(4)]),
        noise_sigma=float(NOISE_SIGMAS[rng.integers(4)]),
        gray_noise=bool(rng.random() < 0.5),
        jpeg_quality=int(JPEG_QUALITIES[rng.integers(4)]),
    )


def degrade_real_photo(hr: np.ndarray, *, index: int, scale: int) -> np.ndarray:
    """The LR of one HR photo (uint8 HWC RGB, cropped to a multiple of ``scale``) per ``recipe_of(index)``."""
    if hr.dtype != np.uint8 or hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {hr.dtype} with shape {hr.shape}")
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"image {w}x{h} is not a multiple of the scale {scale}")
    recipe = recipe_of(index)
    img = hr
    if recipe.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), recipe.blur_sigma, borderType=cv2.BORDER_REFLECT_101)
    lr = np.asarray(Image.fromarray(img).resize((w // scale, h // scale), Image.Resampling.BICUBIC))
    rng = np.random.default_rng([SEED, index, 1])
    shape = (*lr.shape[:2], 1) if recipe.gray_noise else lr.shape
    noise = rng.normal(0.0, recipe.noise_sigma, size=shape)
    noisy = np.clip(np.round(lr.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="JPEG", quality=recipe.jpeg_quality)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"))


def real_photo_dir(scale: int) -> Path:
    """Where the LR files of ``bsds100-real`` at ``scale`` are kept."""
    return user_cache_dir() / "bsds100-real" / f"v{RECIPE_VERSION}" / f"x{scale}"


def real_photo_pairs(hr_files: list[Path], *, scale: int) -> list[tuple[Path, Path]]:
    """(HR, LR) file pairs of the set, writing each missing LR file first (once; atomically).

    ``hr_files``: BSDS500's val images. The LR is made from the HR cropped to a multiple of the scale,
    as the protocol crops the HR it compares against.
    """
    from esrgan.data.cache import load_image
    from esrgan.data.transforms import mod_crop

    folder = real_photo_dir(scale)
    pairs = []
    for index, hr_path in enumerate(sorted(hr_files, key=lambda p: p.name)):
        lr_path = folder / f"{hr_path.stem}_LR.png"
        if not lr_path.is_file():
            hr = mod_crop(load_image(hr_path), scale)
            lr = degrade_real_photo(np.ascontiguousarray(hr), index=index, scale=scale)
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(lr_path) as tmp:
                Image.fromarray(lr).save(tmp, format="PNG")
        pairs.append((hr_path, lr_path))
    return pairs


def is_real_photo_set(name: str | os.PathLike[str]) -> bool:
    return str(name).strip().lower() in REAL_PHOTO_SETS
