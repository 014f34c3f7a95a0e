"""Training-side pipeline for LR/HR pairs: aligned crops, the seed's augmentations, tensor conversion.

Images are uint8 HWC RGB numpy arrays until `to_tensor`. Crops are chosen in LR coordinates and the HR
window is the same window times `scale`, so the pair stays aligned for any integer scale.

The seed's augmentation slide (seed-final-review.txt, "User-defined transforms") reads, per stage:

    pre-training: Compression P=0.25 | Coarse Dropout P=0.25 | Spatial: Flip P=0.25 OR(0.75) Transpose P=0.25
    GAN training:                                             Spatial: Flip P=0.25 OR(0.75) Transpose P=0.75

We read the "OR P=0.75" as an Albumentations `OneOf(p=0.75)` around the two spatial transforms, whose own
p values are then selection weights (that is how `OneOf` treats them). So with probability 0.75 one
spatial transform is applied: in pre-training flip or transpose equally often, in GAN training transpose
three times as often as flip. "Flip" is Albumentations 1.x `Flip` (removed in 2.x); we express it as a
horizontal or a vertical flip, each with half of the flip weight. Spatial transforms are applied with the
same parameters to LR and HR (one `Compose` call with HR as an additional image target). Compression and
coarse dropout touch only the LR input and only in pre-training, as on the slide. The slide gives only
probabilities; the JPEG quality range and hole sizes below are our choices (documented per field).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import torch

if TYPE_CHECKING:
    import albumentations

Stage = Literal["pretrain", "gan"]
ImageT = TypeVar("ImageT", np.ndarray, torch.Tensor)


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Augmentation settings; `AugmentConfig.for_stage(stage)` gives the seed's values."""

    spatial_p: float = 0.75
    """Probability that one spatial transform (flip or transpose) is applied to the pair."""
    flip_weight: float = 0.25
    """Selection weight of a flip (horizontal or vertical, equally likely) inside the spatial OneOf."""
    transpose_weight: float = 0.25
    """Selection weight of a transpose inside the spatial OneOf (seed: 0.25 pre-training, 0.75 GAN)."""
    jpeg_p: float = 0.0
    """Probability of JPEG-compressing the LR input (seed: 0.25 in pre-training, off in GAN training)."""
    jpeg_quality: tuple[int, int] = (50, 95)
    """JPEG quality range (1..100). Not in the seed review; mid-to-high quality keeps the task SR-like."""
    dropout_p: float = 0.0
    """Probability of coarse dropout on the LR input (seed: 0.25 in pre-training, off in GAN training)."""
    dropout_holes: tuple[int, int] = (1, 8)
    """Number of dropped rectangles; the upper bound is Albumentations 1.x's default `max_holes=8`."""
    dropout_size: tuple[int, int] = (2, 8)
    """Side of each dropped rectangle in LR pixels; 8 is Albumentations 1.x's default `max_height`."""

    def __post_init__(self) -> None:
        for name in ("spatial_p", "jpeg_p", "dropout_p"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentConfig.{name} must be a probability in [0, 1], got {value!r}")
        for name in ("flip_weight", "transpose_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0.0:
                raise ValueError(f"AugmentConfig.{name} must be a non-negative weight, got {value!r}")
        if self.spatial_p > 0 and self.flip_weight + self.transpose_weight <= 0:
            raise ValueError("AugmentConfig: spatial_p > 0 needs flip_weight or transpose_weight > 0")
        _check_range("jpeg_quality", self.jpeg_quality, 1, 100)
        _check_range("dropout_holes", self.dropout_holes, 1, None)
        _check_range("dropout_size", self.dropout_size, 1, None)

    @classmethod
    def for_stage(cls, stage: Stage) -> AugmentConfig:
        """The seed's augmentation for a training stage ("pretrain" or "gan")."""
        if stage == "pretrain":
            return cls(transpose_weight=0.25, jpeg_p=0.25, dropout_p=0.25)
        if stage == "gan":
            return cls(transpose_weight=0.75)
        raise ValueError(f"unknown training stage {stage!r} (expected 'pretrain' or 'gan')")

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (crops only)."""
        return cls(spatial_p=0.0, jpeg_p=0.0, dropout_p=0.0)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _check_range(name: str, value: object, low: int, high: int | None) -> None:
    ok = (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and low <= value[0] <= value[1]
        and (high is None or value[1] <= high)
    )
    if not ok:
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"AugmentConfig.{name} must be a (min, max) pair of integers {bound}, got {value!r}")


def _albumentations() -> ModuleType:
    """Import Albumentations (seconds; so not at module import) without its update check, which
    otherwise queries PyPI over the network on every import."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


class PairAugment:
    """Applies an `AugmentConfig` to an (LR, HR) uint8 pair with Albumentations.

    Albumentations 2.x keeps its own random state per `Compose` (global seeds do not reach it), so
    it must be reseeded per process; `SRDataset` reseeds it for every item from torch's generator.
    """

    def __init__(self, config: AugmentConfig, *, seed: int | None = None) -> None:
        A = _albumentations()
        self.config = config
        spatial: list[albumentations.BasicTransform] = []
        if config.spatial_p > 0:
            choices = []
            if config.flip_weight > 0:
                choices += [
                    A.HorizontalFlip(p=config.flip_weight / 2),
                    A.VerticalFlip(p=config.flip_weight / 2),
                ]
            if config.transpose_weight > 0:
                choices.append(A.Transpose(p=config.transpose_weight))
            spatial.append(A.OneOf(choices, p=config.spatial_p))
        # LR and HR have different sizes; only size-independent transforms go in here, so the shape check
        # Albumentations would do for additional targets is turned off on purpose.
        self._spatial = (
            A.Compose(spatial, additional_targets={"hr": "image"}, is_check_shapes=False, seed=seed)
            if spatial
            else None
        )
        lr_only: list[albumentations.BasicTransform] = []
        if config.jpeg_p > 0:
            lr_only.append(
                A.ImageCompression(
                    compression_type="jpeg", quality_range=config.jpeg_quality, p=config.jpeg_p
                )
            )
        if config.dropout_p > 0:
            lr_only.append(
                A.CoarseDropout(
                    num_holes_range=config.dropout_holes,
                    hole_height_range=config.dropout_size,
                    hole_width_range=config.dropout_size,
                    fill=0,
                    p=config.dropout_p,
                )
            )
        self._lr_only = A.Compose(lr_only, seed=seed) if lr_only else None

    def reseed(self, seed: int) -> None:
        for compose in (self._spatial, self._lr_only):
            if compose is not None:
                compose.set_random_seed(seed)
                # Different streams for the two composes: otherwise their coin flips are correlated.
                seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 63)

    def __call__(self, lr: np.ndarray, hr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._spatial is not None:
            out = self._spatial(image=lr, hr=hr)
            lr, hr = out["image"], out["hr"]
        if self._lr_only is not None:
            lr = self._lr_only(image=lr)["image"]
        return lr, hr


def mod_crop(img: ImageT, scale: int) -> ImageT:
    """Crop (top-left anchored) so height and width are multiples of `scale` (the protocol's HR prep).

    Arrays are (H, W[, C]), as images are here until `to_tensor`; tensors are (..., H, W).
    """
    axis = img.dim() - 2 if isinstance(img, torch.Tensor) else 0
    h, w = img.shape[axis], img.shape[axis + 1]
    window = (slice(None),) * axis + (slice(h - h % scale), slice(w - w % scale))
    return img[window]


def _check_pair(lr: np.ndarray, hr: np.ndarray, scale: int) -> None:
    if hr.shape[0] != lr.shape[0] * scale or hr.shape[1] != lr.shape[1] * scale:
        raise ValueError(
            f"LR {lr.shape[1]}x{lr.shape[0]} and HR {hr.shape[1]}x{hr.shape[0]} do not match scale {scale}"
        )


def paired_random_crop(
    lr: np.ndarray, hr: np.ndarray, *, scale: int, patch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random `patch_size` HR crop and the matching `patch_size // scale` LR crop (views, not copies)."""
    _check_pair(lr, hr, scale)
    if patch_size % scale:
        raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}")
    lp = patch_size // scale
    lh, lw = lr.shape[:2]
    if lh < lp or lw < lp:
        raise ValueError(f"image HR {hr.shape[1]}x{hr.shape[0]} is smaller than the {patch_size} patch")
    top = int(rng.integers(0, lh - lp + 1))
    left = int(rng.integers(0, lw - lp + 1))
    return (
        lr[top : top + lp, left : left + lp],
        hr[top * scale : (top + lp) * scale, left * scale : (left + lp) * scale],
    )


def paired_center_crop(
    lr: np.ndarray, hr: np.ndarray, *, scale: int, patch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Centre `patch_size` HR crop and the matching LR crop; images smaller than the patch are kept whole
    along that axis (validation should not fail on a small image)."""
    _check_pair(lr, hr, scale)
    if patch_size % scale:
        raise ValueError(f"crop {patch_size} is not a multiple of scale {scale}")
    lp = patch_size // scale
    lh, lw = lr.shape[:2]
    ch, cw = min(lp, lh), min(lp, lw)
    top, left = (lh - ch) // 2, (lw - cw) // 2
    return (
        lr[top : top + ch, left : left + cw],
        hr[top * scale : (top + ch) * scale, left * scale : (left + cw) * scale],
    )


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HWC RGB -> float32 CHW in [0, 1] (a fresh, contiguous tensor)."""
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"to_tensor expects a uint8 HxWxC array, got {img.dtype} with shape {img.shape}")
    # In numpy: torch's intra-op thread pool costs milliseconds per small tensor on a busy machine,
    # and loader workers run single-threaded anyway. Same float32 division as torch's, bit for bit.
    chw = np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32)
    return torch.from_numpy(np.divide(chw, np.float32(255.0), out=chw))


def from_tensor(x: torch.Tensor) -> np.ndarray:
    """float CHW in [0, 1] -> uint8 HWC (rounded, clamped)."""
    return x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
