"""Settings of the real-world (Real-ESRGAN) degradation model; defaults are Real-ESRGAN's published ones.

One section per step, one ``OrderConfig`` per order of the second-order model. Every range is a
``(low, high)`` pair; each section checks its values on construction and a ``DegradationConfigError``
names the field (the training config's loader puts the section path in front, e.g.
``degradation.first.jpeg.quality``). Noise sigmas are in 8-bit levels (0-255), as Real-ESRGAN gives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

KERNEL_TYPES = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
RESIZE_MODES = ("area", "bilinear", "bicubic")
ResizeMode = Literal["area", "bilinear", "bicubic"]


class DegradationConfigError(ValueError):
    """A degradation setting is out of range; the message starts with the field's name."""


def _fail(key: str, message: str) -> None:
    raise DegradationConfigError(f"{key}: {message}")


def _prob(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        _fail(key, f"must be a probability in [0, 1], got {value}")


def _range(key: str, value: tuple[float, float], low: float, high: float | None = None) -> None:
    if len(value) != 2 or value[0] > value[1]:
        _fail(key, f"must be a (low, high) pair with low <= high, got {list(value)}")
    if value[0] < low or (high is not None and value[1] > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        _fail(key, f"must lie in {bound}, got {list(value)}")


def _sums_to_one(key: str, probs: tuple[float, ...]) -> None:
    for p in probs:
        _prob(key, p)
    if not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
        _fail(key, f"probabilities must sum to 1, got {sum(probs):.6g}")


@dataclass(frozen=True, kw_only=True)
class BlurConfig:
    """Blur with a random kernel: one of six Gaussian-family shapes, or a sinc (ringing) kernel."""

    prob: float = 1.0
    """Probability that this order blurs at all (Real-ESRGAN: 1 first, 0.8 second)."""
    kernel_size: tuple[int, int] = (7, 21)
    """Odd kernel sizes drawn uniformly from this range."""
    kernel_types: dict[str, float] = field(
        default_factory=lambda: dict(zip(KERNEL_TYPES, (0.45, 0.25, 0.12, 0.03, 0.12, 0.03), strict=True))
    )
    """Probability of each kernel shape: iso / aniso Gaussian, generalised, plateau; they sum to 1."""
    sigma: tuple[float, float] = (0.2, 3.0)
    """Gaussian standard deviation (pixels), per axis for the anisotropic kernels."""
    beta_generalized: tuple[float, float] = (0.5, 4.0)
    """Shape exponent of the generalised Gaussian (below 1 half the time, above 1 otherwise)."""
    beta_plateau: tuple[float, float] = (1.0, 2.0)
    """Shape exponent of the plateau kernel."""
    sinc_prob: float = 0.1
    """Probability of a sinc (ringing and overshoot) kernel instead of the Gaussian family."""

    def __post_init__(self) -> None:
        _prob("prob", self.prob)
        _prob("sinc_prob", self.sinc_prob)
        _range("kernel_size", self.kernel_size, 3, 41)
        if any(k % 2 == 0 for k in self.kernel_size):
            _fail("kernel_size", f"must be odd sizes, got {list(self.kernel_size)}")
        unknown = sorted(set(self.kernel_types) - set(KERNEL_TYPES))
        if unknown:
            _fail(f"kernel_types.{unknown[0]}", f"unknown kernel type (known: {', '.join(KERNEL_TYPES)})")
        _sums_to_one("kernel_types", tuple(self.kernel_types.values()))
        _range("sigma", self.sigma, 0.05, 20.0)
        _range("beta_generalized", self.beta_generalized, 0.05, 16.0)
        _range("beta_plateau", self.beta_plateau, 0.05, 16.0)


@dataclass(frozen=True, kw_only=True)
class ResizeConfig:
    """Random resize: up, down or keep, by a random factor, with a random interpolation."""

    probs: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Probabilities of up / down / keep; they sum to 1."""
    up: tuple[float, float] = (1.0, 1.5)
    """Factor range when going up."""
    down: tuple[float, float] = (0.15, 1.0)
    """Factor range when going down."""
    modes: tuple[str, ...] = RESIZE_MODES
    """Interpolations drawn uniformly: ``area``, ``bilinear``, ``bicubic``."""

    def __post_init__(self) -> None:
        _sums_to_one("probs", self.probs)
        _range("up", self.up, 1.0, 8.0)
        _range("down", self.down, 0.01, 1.0)
        if not self.modes or any(m not in RESIZE_MODES for m in self.modes):
            _fail("modes", f"must be a non-empty list of {', '.join(RESIZE_MODES)}, got {list(self.modes)}")


@dataclass(frozen=True, kw_only=True)
class NoiseConfig:
    """Additive Gaussian noise or Poisson (shot) noise, in colour or gray."""

    gaussian_prob: float = 0.5
    """Probability of Gaussian noise; Poisson noise otherwise."""
    sigma: tuple[float, float] = (1.0, 30.0)
    """Gaussian standard deviation in 8-bit levels."""
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    """Poisson noise strength (Real-ESRGAN's scale: 1 is the shot noise of 256 photon levels)."""
    gray_prob: float = 0.4
    """Probability that the noise is the same in all channels."""

    def __post_init__(self) -> None:
        _prob("gaussian_prob", self.gaussian_prob)
        _prob("gray_prob", self.gray_prob)
        _range("sigma", self.sigma, 0.0, 255.0)
        _range("poisson_scale", self.poisson_scale, 0.0, 50.0)


@dataclass(frozen=True, kw_only=True)
class JPEGConfig:
    """JPEG compression at a random quality."""

    quality: tuple[int, int] = (30, 95)
    """Quality range, 1-100."""

    def __post_init__(self) -> None:
        _range("quality", self.quality, 1, 100)


@dataclass(frozen=True, kw_only=True)
class OrderConfig:
    """One order of the model: blur, resize, noise, then JPEG (the second order's JPEG comes last)."""

    blur: BlurConfig = field(default_factory=BlurConfig)
    resize: ResizeConfig = field(default_factory=ResizeConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    jpeg: JPEGConfig = field(default_factory=JPEGConfig)


def _second_order() -> OrderConfig:
    return OrderConfig(
        blur=BlurConfig(prob=0.8, sigma=(0.2, 1.5)),
        resize=ResizeConfig(probs=(0.3, 0.4, 0.3), up=(1.0, 1.2), down=(0.3, 1.0)),
        noise=NoiseConfig(sigma=(1.0, 25.0), poisson_scale=(0.05, 2.5)),
    )


@dataclass(frozen=True, kw_only=True)
class USMConfig:
    """Unsharp masking of the HR target (Real-ESRGAN's USMSharp: sharpen where the detail is clear)."""

    radius: int = 50
    """Gaussian blur kernel of ``radius + 1`` pixels (odd) that defines the detail."""
    weight: float = 0.5
    """How much of the detail is added back."""
    threshold: int = 10
    """Detail below this many 8-bit levels is left alone (noise is not sharpened)."""

    def __post_init__(self) -> None:
        if self.radius < 2 or self.radius % 2:
            _fail("radius", f"must be an even number >= 2, got {self.radius}")
        if not 0.0 <= self.weight <= 4.0:
            _fail("weight", f"must be in [0, 4], got {self.weight}")
        if not 0 <= self.threshold <= 255:
            _fail("threshold", f"must be in [0, 255], got {self.threshold}")


@dataclass(frozen=True, kw_only=True)
class DegradationConfig:
    """Real-ESRGAN's second-order degradation model and its training options."""

    first: OrderConfig = field(default_factory=OrderConfig)
    """First order: blur, resize, noise, JPEG."""
    second: OrderConfig = field(default_factory=_second_order)
    """Second order: blur (p 0.8), resize relative to the LR size, noise, then in random order [resize to
    the LR size + sinc filter] and JPEG."""
    final_sinc_prob: float = 0.8
    """Probability of the sinc filter beside the final resize."""
    final_sinc_size: tuple[int, int] = (7, 21)
    """Kernel sizes of the final sinc filter."""
    clean_prob: float = 0.0
    """Probability that a pair gets the clean MATLAB-bicubic LR instead (not in Real-ESRGAN, whose models
    lose PSNR on clean inputs; a share of clean pairs keeps a model good on those too)."""
    usm_hr: bool = False
    """Train the pixel and perceptual losses against an unsharp-masked HR (not D's real input)."""
    usm: USMConfig = field(default_factory=USMConfig)
    """Settings of that sharpening."""
    pool_size: int = 0
    """Training pairs kept in a pool that mixes degradations across batches (Real-ESRGAN: 180); 0: off.
    Must be a multiple of the batch size."""

    def __post_init__(self) -> None:
        _prob("final_sinc_prob", self.final_sinc_prob)
        _prob("clean_prob", self.clean_prob)
        _range("final_sinc_size", self.final_sinc_size, 3, 41)
        if any(k % 2 == 0 for k in self.final_sinc_size):
            _fail("final_sinc_size", f"must be odd sizes, got {list(self.final_sinc_size)}")
        if self.pool_size < 0:
            _fail("pool_size", f"must be >= 0, got {self.pool_size}")
