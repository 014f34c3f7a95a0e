"""Real-ESRGAN's second-order real-world degradation model, as a replayable list of steps.

An HR patch (uint8 HWC RGB) goes through

    first order:  blur -> random resize -> Gaussian or Poisson noise -> JPEG
    second order: blur (p 0.8) -> random resize (relative to the LR size) -> noise
    final:        in random order, [resize to HR / scale + sinc filter (p 0.8)] and JPEG
    clamp, round to 8 bit

(or, with probability ``clean_prob``, 0 by default, the clean MATLAB-bicubic LR instead)

with every parameter drawn from one ``numpy.random.Generator``: the same generator state gives the
same LR, so a training item seeded from (seed, iteration, slot) is the same after ``--resume``. Between
steps the image is float32 in [0, 1], as Real-ESRGAN keeps it on the GPU.

Library where a library has the step: Albumentations' ``AdvancedBlur`` draws the anisotropic and
generalised-anisotropic kernels, ``RingingOvershoot`` the sinc kernels, ``GaussNoise`` adds Gaussian
noise, ``ImageCompression`` does JPEG, ``UnsharpMask`` sharpens the HR target; OpenCV resizes and
convolves. Ours: the isotropic generalised and the plateau kernels (``esrgan.data.kernels``) and Poisson
noise, which follows Real-ESRGAN's definition (counts at the image's level count, optionally gray);
Albumentations' ``ShotNoise`` is another model (in linear light, with another scale, colour only).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from esrgan.data.degradation_config import (
    BlurConfig,
    DegradationConfig,
    NoiseConfig,
    OrderConfig,
    ResizeConfig,
)
from esrgan.data.imresize import degrade_uint8
from esrgan.data.kernels import bivariate_kernel
from esrgan.data.transforms import _albumentations

if TYPE_CHECKING:
    import albumentations

_CV2_MODES = {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_SEED_MAX = 1 << 31


def _odd(rng: np.random.Generator, size_range: tuple[int, int]) -> int:
    return int(rng.choice(np.arange(size_range[0], size_range[1] + 1, 2)))


def _seeded(transform: albumentations.BasicTransform, rng: np.random.Generator) -> Any:
    transform.set_random_seed(int(rng.integers(0, _SEED_MAX)))
    return transform


def filter2d(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolve each channel with ``kernel`` (reflected borders, as Real-ESRGAN pads)."""
    # filter2D correlates; the flip makes it a convolution (asymmetric kernels keep their orientation).
    return cv2.filter2D(img, -1, kernel[::-1, ::-1].copy(), borderType=cv2.BORDER_REFLECT_101)


def _advanced_blur(cfg: BlurConfig, *, beta: tuple[float, float]) -> Any:
    """AdvancedBlur drawing anisotropic kernels of ``cfg``'s sizes and sigmas, any rotation, shape
    exponent in ``beta`` and no multiplicative kernel noise (Real-ESRGAN's kernels have none)."""
    A = _albumentations()
    blur = A.AdvancedBlur(
        blur_limit=cfg.kernel_size, sigma_x_limit=cfg.sigma, sigma_y_limit=cfg.sigma,
        rotate_limit=(-180, 180), beta_limit=(0.5, 8.0), noise_limit=(1.0, 1.0), p=1.0,
    )  # fmt: skip
    # Its validator wants the beta range to straddle 1; the plain Gaussian (1, 1) and a user's range above
    # or below 1 are still valid exponents for its kernel formula, so the range is set after validation.
    blur.beta_limit = beta
    return blur


class _Kernels:
    """Draws one blur kernel of a `BlurConfig`: a sinc, or one of the six Gaussian-family shapes."""

    def __init__(self, cfg: BlurConfig) -> None:
        A = _albumentations()
        self.cfg = cfg
        lo, hi = cfg.kernel_size
        self._aniso = _advanced_blur(cfg, beta=(1.0, 1.0))
        self._gen_aniso = _advanced_blur(cfg, beta=cfg.beta_generalized)
        # Real-ESRGAN: small sinc kernels get a higher minimum cutoff (less ringing on 7-11 px).
        small = (lo, min(hi, 11))
        large = (max(lo, 13), hi)
        self._sinc_small = (
            A.RingingOvershoot(blur_limit=small, cutoff=(math.pi / 3, math.pi), p=1.0) if lo <= 11 else None
        )
        self._sinc_large = (
            A.RingingOvershoot(blur_limit=large, cutoff=(math.pi / 5, math.pi), p=1.0) if hi >= 13 else None
        )
        self._types = list(cfg.kernel_types)
        self._probs = np.array([cfg.kernel_types[t] for t in self._types], dtype=np.float64)

    def draw(self, rng: np.random.Generator) -> tuple[str, np.ndarray]:
        cfg = self.cfg
        if rng.random() < cfg.sinc_prob:
            size = _odd(rng, cfg.kernel_size)
            sinc = self._sinc_small if size < 13 and self._sinc_small is not None else self._sinc_large
            assert sinc is not None  # one of them covers every size of the range
            return "sinc", np.asarray(_seeded(sinc, rng).get_params()["kernel"], dtype=np.float32)
        kind = self._types[int(rng.choice(len(self._types), p=self._probs / self._probs.sum()))]
        if kind == "aniso":
            return kind, np.asarray(_seeded(self._aniso, rng).get_params()["kernel"], dtype=np.float32)
        if kind == "generalized_aniso":
            return kind, np.asarray(_seeded(self._gen_aniso, rng).get_params()["kernel"], dtype=np.float32)
        size = _odd(rng, cfg.kernel_size)
        theta = rng.uniform(-math.pi, math.pi)
        sx = rng.uniform(*cfg.sigma)
        sy = sx if kind.endswith("_iso") or kind == "iso" else rng.uniform(*cfg.sigma)
        if kind == "iso":
            return kind, bivariate_kernel(size, sigma_x=sx, sigma_y=sx)
        if kind == "generalized_iso":
            lo, hi = cfg.beta_generalized
            beta = rng.uniform(lo, 1.0) if rng.random() < 0.5 and lo < 1.0 else rng.uniform(max(lo, 1.0), hi)
            return kind, bivariate_kernel(size, sigma_x=sx, sigma_y=sx, beta=beta, shape="generalized")
        beta = rng.uniform(*cfg.beta_plateau)
        return kind, bivariate_kernel(size, sigma_x=sx, sigma_y=sy, theta=theta, beta=beta, shape="plateau")


def resize(img: np.ndarray, size: tuple[int, int], mode: str) -> np.ndarray:
    """Resize to ``size`` = (height, width) with OpenCV's area, bilinear or bicubic interpolation."""
    h, w = max(1, size[0]), max(1, size[1])
    out = cv2.resize(img, (w, h), interpolation=_CV2_MODES[mode])
    return out if out.ndim == 3 else out[..., None]


def poisson_noise(img: np.ndarray, scale: float, *, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Real-ESRGAN's Poisson noise: photon counts at the next power of two above the image's number of
    levels, the difference scaled by ``scale``; ``gray``: drawn on the luma and added to every channel."""
    src = img
    if gray:
        src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
    q = np.clip(np.round(src * 255.0), 0, 255)
    levels = 2 ** math.ceil(math.log2(max(len(np.unique(q)), 2)))
    clipped = np.clip(src, 0.0, 1.0)
    noise = rng.poisson(clipped * levels).astype(np.float32) / levels - clipped
    return img + noise * np.float32(scale)


@dataclass(frozen=True)
class Step:
    """One step of the model: its name, its probability and what it does to the float image."""

    name: str
    p: float
    apply: Callable[[np.ndarray, np.random.Generator, tuple[int, int]], np.ndarray]

    def __repr__(self) -> str:
        return f"{self.name}(p={self.p:g})"


class RealESRGANDegradation:
    """HR uint8 patch -> degraded LR uint8 patch of ``HR // scale``, per a `DegradationConfig`.

    Built once per process (the Albumentations transforms are made here); ``__call__`` draws every
    random choice from the generator it is given. ``repr`` lists the steps and their probabilities.
    """

    def __init__(self, *, config: DegradationConfig, scale: int) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        A = _albumentations()
        self.config = config
        self.scale = scale
        first, second = config.first, config.second
        self._kernels = (_Kernels(first.blur), _Kernels(second.blur))
        lo, hi = config.final_sinc_size
        self._final_sinc = A.RingingOvershoot(blur_limit=(lo, hi), cutoff=(math.pi / 3, math.pi), p=1.0)
        self._gauss: dict[tuple[int, bool], Any] = {}
        for order, cfg in enumerate((first.noise, second.noise)):
            for gray in (False, True):
                std = (cfg.sigma[0] / 255.0, cfg.sigma[1] / 255.0)
                self._gauss[order, gray] = A.GaussNoise(std_range=std, per_channel=not gray, p=1.0)
        self._jpeg = tuple(
            A.ImageCompression(compression_type="jpeg", quality_range=cfg.quality, p=1.0)
            for cfg in (first.jpeg, second.jpeg)
        )
        usm = config.usm
        size = usm.radius + 1
        self._usm = A.UnsharpMask(
            blur_limit=(size, size), sigma_limit=0.0, alpha=(usm.weight, usm.weight), threshold=usm.threshold,
            p=1.0,
        )  # fmt: skip
        self.first_steps = self._order_steps(0, first)
        self.second_steps = self._order_steps(1, second)[:-1]  # its JPEG is one of the final steps

    def _order_steps(self, order: int, cfg: OrderConfig) -> list[Step]:
        kernels = self._kernels[order]
        jpeg = self._jpeg[order]

        def blur(img: np.ndarray, rng: np.random.Generator, _lr: tuple[int, int]) -> np.ndarray:
            return filter2d(img, kernels.draw(rng)[1])

        def scale_step(img: np.ndarray, rng: np.random.Generator, lr: tuple[int, int]) -> np.ndarray:
            # The first order resizes relative to the current image, the second relative to the LR size.
            base = img.shape[:2] if order == 0 else lr
            return _random_resize(img, cfg.resize, base, rng)

        def noise(img: np.ndarray, rng: np.random.Generator, _lr: tuple[int, int]) -> np.ndarray:
            return self._noise(img, order, cfg.noise, rng)

        def compress(img: np.ndarray, rng: np.random.Generator, _lr: tuple[int, int]) -> np.ndarray:
            return _jpeg(img, jpeg, rng)

        return [
            Step(f"blur{order + 1}", cfg.blur.prob, blur),
            Step(f"resize{order + 1}", 1.0, scale_step),
            Step(f"noise{order + 1}", 1.0, noise),
            Step(f"jpeg{order + 1}", 1.0, compress),
        ]

    def _noise(self, img: np.ndarray, order: int, cfg: NoiseConfig, rng: np.random.Generator) -> np.ndarray:
        gray = bool(rng.random() < cfg.gray_prob)
        if rng.random() < cfg.gaussian_prob:
            out = _seeded(self._gauss[order, gray], rng)(image=img)["image"]
        else:
            out = poisson_noise(img, rng.uniform(*cfg.poisson_scale), gray=gray, rng=rng)
        return np.clip(out, 0.0, 1.0)

    def sharpen(self, hr: np.ndarray) -> np.ndarray:
        """The unsharp-masked HR target (uint8 in, uint8 out; nothing random)."""
        return np.asarray(self._usm(image=hr)["image"])

    def __repr__(self) -> str:
        first = " -> ".join(map(repr, self.first_steps))
        second = " -> ".join(map(repr, self.second_steps))
        final = f"shuffle([resize to LR + sinc(p={self.config.final_sinc_prob:g})], jpeg2)"
        return f"RealESRGANDegradation(x{self.scale}: {first} | {second} | {final})"

    def __call__(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if hr.dtype != np.uint8 or hr.ndim != 3:
            raise ValueError(f"expected a uint8 HxWxC image, got {hr.dtype} with shape {hr.shape}")
        h, w = hr.shape[:2]
        s = self.scale
        if h < s or w < s:
            raise ValueError(f"image {w}x{h} is smaller than the scale {s}")
        lr_size = (h // s, w // s)
        if self.config.clean_prob > 0 and rng.random() < self.config.clean_prob:
            return degrade_uint8(hr, s)
        img = hr.astype(np.float32) / np.float32(255.0)
        for step in (*self.first_steps, *self.second_steps):
            if step.p >= 1.0 or rng.random() < step.p:
                img = step.apply(img, rng, lr_size)
        mode = str(rng.choice(self.config.second.resize.modes))
        sinc = rng.random() < self.config.final_sinc_prob
        kernel = np.asarray(_seeded(self._final_sinc, rng).get_params()["kernel"], dtype=np.float32)

        def resize_and_sinc(x: np.ndarray) -> np.ndarray:
            x = resize(x, lr_size, mode)
            return filter2d(x, kernel) if sinc else x

        if rng.random() < 0.5:
            img = _jpeg(resize_and_sinc(img), self._jpeg[1], rng)
        else:
            img = resize_and_sinc(_jpeg(img, self._jpeg[1], rng))
        return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def _random_resize(
    img: np.ndarray, cfg: ResizeConfig, base: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    way = int(rng.choice(3, p=np.asarray(cfg.probs, dtype=np.float64)))
    factor = rng.uniform(*cfg.up) if way == 0 else rng.uniform(*cfg.down) if way == 1 else 1.0
    mode = str(rng.choice(cfg.modes))
    size = (int(base[0] * factor), int(base[1] * factor))
    return resize(img, size, mode)


def _jpeg(img: np.ndarray, transform: Any, rng: np.random.Generator) -> np.ndarray:
    # Real-ESRGAN clamps before its JPEG; the codec sees the rounded 8-bit image.
    u8 = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    out = _seeded(transform, rng)(image=u8)["image"]
    return out.astype(np.float32) / np.float32(255.0)
