"""Benchmark evaluation: run a super-resolution function over test sets and score each image per protocol.

For every image: HR cropped to a multiple of the scale, LR either made from it with the protocol's MATLAB
bicubic (`degrade`, the standard) or read from the provided file, SR rounded to uint8 levels, then
PSNR/SSIM on Y and RGB with a `scale`-pixel border crop, and LPIPS (whole image) when available.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

import torch

from esrgan.data.benchmarks import BenchmarkError, BenchmarkPair, crop_to_multiple, load_rgb
from esrgan.data.imresize import degrade, imresize, quantize
from esrgan.metrics import psnr, ssim
from esrgan.metrics.lpips import LPIPS_HEADS_FILE as LPIPS_HEADS_FILE
from esrgan.metrics.lpips import LPIPS_VGG_FILE as LPIPS_VGG_FILE

LRSource = Literal["degrade", "given"]
SRFunction = Callable[[torch.Tensor], torch.Tensor]
METRIC_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "lpips")


@dataclass
class ImageResult:
    """Scores of one image (lpips None when not computed)."""

    name: str
    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    ssim_rgb: float
    lpips: float | None
    height: int
    width: int


@dataclass
class DatasetResult:
    """Per-image scores of one test set and their means."""

    name: str
    images: list[ImageResult] = field(default_factory=list)

    def mean(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for key in METRIC_KEYS:
            vals = [getattr(r, key) for r in self.images]
            out[key] = None if not vals or any(v is None for v in vals) else sum(vals) / len(vals)
        return out

    def ranked(self, key: str = "psnr_y") -> list[ImageResult]:
        """Images best first by `key` (LPIPS: lower is better)."""
        reverse = key != "lpips"
        return sorted(self.images, key=lambda r: getattr(r, key), reverse=reverse)

    def to_dict(self) -> dict[str, object]:
        return {
            "mean": self.mean(),
            "num_images": len(self.images),
            "images": [asdict(r) for r in self.images],
        }


@dataclass
class Sample:
    """One evaluated image's tensors, (1, 3, H, W) float in [0, 1] on the CPU, SR already quantised."""

    pair: BenchmarkPair
    hr: torch.Tensor
    lr: torch.Tensor
    sr: torch.Tensor


def bicubic_sr(scale: int, device: torch.device | str = "cpu") -> SRFunction:
    """The bicubic baseline: MATLAB imresize upscale (clamped), on `device`."""

    def run(lr: torch.Tensor) -> torch.Tensor:
        return imresize(lr.to(device), scale=float(scale)).clamp_(0, 1).cpu()

    return run


def load_sample_inputs(
    pair: BenchmarkPair, scale: int, lr_source: LRSource
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hr, lr) as (1, 3, H, W) float tensors per protocol (HR cropped to a multiple of `scale`)."""
    hr = crop_to_multiple(load_rgb(pair.hr_path), scale)[None]
    if hr.shape[-1] < scale or hr.shape[-2] < scale:
        raise BenchmarkError(f"{pair.hr_path}: image smaller than the scale factor {scale}")
    if lr_source == "degrade" and not pair.degraded_lr:
        return hr, degrade(hr, scale)
    if pair.lr_path is None:
        raise BenchmarkError(f"{pair.hr_path}: no provided LR image for it; use --lr-source degrade")
    lr = load_rgb(pair.lr_path)[None]
    h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
    if h > hr.shape[-2] or w > hr.shape[-1]:
        raise BenchmarkError(
            f"{pair.lr_path}: LR {lr.shape[-1]}x{lr.shape[-2]} times {scale} exceeds HR "
            f"{hr.shape[-1]}x{hr.shape[-2]} (wrong --scale?)"
        )
    return hr[..., :h, :w], lr


class Scores(TypedDict):
    """The metrics of one image, named as `ImageResult`'s fields (lpips None when not computed)."""

    psnr_y: float
    ssim_y: float
    psnr_rgb: float
    ssim_rgb: float
    lpips: float | None


def score(
    sr: torch.Tensor, hr: torch.Tensor, *, crop_border: int, lpips: torch.nn.Module | None = None
) -> Scores:
    """All metrics for one (1, 3, H, W) pair; the border crop is clipped for tiny images."""
    border = min(crop_border, max(0, (min(hr.shape[-2:]) - 11) // 2))
    out: Scores = {
        "psnr_y": psnr(sr, hr, crop_border=border).item(),
        "ssim_y": ssim(sr, hr, crop_border=border).item(),
        "psnr_rgb": psnr(sr, hr, crop_border=border, y_channel=False).item(),
        "ssim_rgb": ssim(sr, hr, crop_border=border, y_channel=False).item(),
        "lpips": None,
    }
    if lpips is not None:
        dev = next(lpips.parameters()).device
        with torch.inference_mode():
            out["lpips"] = lpips(sr.to(dev), hr.to(dev)).item()
    return out


def evaluate_dataset(
    name: str,
    pairs: Sequence[BenchmarkPair],
    sr_fn: SRFunction,
    *,
    scale: int,
    lr_source: LRSource = "degrade",
    lpips: torch.nn.Module | None = None,
    on_sample: Callable[[Sample, ImageResult], None] | None = None,
    progress: bool = True,
) -> DatasetResult:
    """Score `sr_fn` (LR (1,3,h,w) -> SR (1,3,sh,sw), [0,1]) on every pair of one test set."""
    from tqdm import tqdm

    if lr_source not in ("degrade", "given"):
        raise ValueError(f"lr_source must be 'degrade' or 'given', got {lr_source!r}")
    result = DatasetResult(name)
    for pair in tqdm(pairs, desc=name, unit="img", disable=not progress, leave=False):
        sample = run_sample(pair, sr_fn, scale=scale, lr_source=lr_source)
        metrics = score(sample.sr, sample.hr, crop_border=scale, lpips=lpips)
        res = ImageResult(pair.name, height=sample.hr.shape[-2], width=sample.hr.shape[-1], **metrics)
        result.images.append(res)
        if on_sample is not None:
            on_sample(sample, res)
    return result


def run_sample(pair: BenchmarkPair, sr_fn: SRFunction, *, scale: int, lr_source: LRSource) -> Sample:
    hr, lr = load_sample_inputs(pair, scale, lr_source)
    with torch.inference_mode():
        sr = sr_fn(lr)
    if sr.shape != hr.shape:
        raise ValueError(
            f"{pair.hr_path}: model output {tuple(sr.shape[-2:])} does not match HR {tuple(hr.shape[-2:])}"
        )
    return Sample(pair, hr, lr, quantize(sr.float()))


def finite_or_none(x: float | None) -> float | None:
    """JSON has no infinity: an infinite PSNR (identical images) is written as null."""
    return None if x is None or not math.isfinite(x) else x


def default_lpips_search_dirs() -> list[Path]:
    """Where LPIPS weights are looked for by default: $ESRGAN_WEIGHTS, ./weights, then `weights` in the
    user's data folder (platformdirs; e.g. ~/.local/share/esrgan/weights)."""
    import platformdirs

    dirs = []
    env = os.environ.get("ESRGAN_WEIGHTS")
    if env:
        dirs.append(Path(env).expanduser())
    dirs += [Path("weights"), Path(platformdirs.user_data_dir("esrgan")) / "weights"]
    return dirs


def lpips_weight_paths(
    vgg: Path | None, heads: Path | None, *, search: Sequence[Path]
) -> tuple[Path, Path] | None:
    """Explicit paths, else the standard file names in the first folder of `search` that has both."""
    if vgg is not None and heads is not None:
        return vgg, heads
    for folder in search:
        v = vgg or folder / LPIPS_VGG_FILE
        h = heads or folder / LPIPS_HEADS_FILE
        if v.is_file() and h.is_file():
            return v, h
    return None
