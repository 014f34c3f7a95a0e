"""Build generators from any weights spec (file in any format, or registered name); interpolate them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from esrgan.models import Generator
from esrgan.weights.errors import WeightsError
from esrgan.weights.io import SUPPORTED_SUFFIXES, LoadedWeights, load_weights
from esrgan.weights.zoo import REGISTRY, load_zoo_weights


def resolve_weights(
    spec: str | os.PathLike[str], *, cache_dir: Path | None = None, progress: bool = True
) -> LoadedWeights:
    """Canonical weights for a registered model name or a path (an existing path wins over a name)."""
    path = Path(spec)
    if isinstance(spec, str) and spec in REGISTRY and not path.exists():
        return load_zoo_weights(spec, cache_dir=cache_dir, progress=progress)
    if not path.exists() and path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise WeightsError(f"{spec}: no such file, and not a registered model (known: {', '.join(REGISTRY)})")
    return load_weights(path)


def build_generator(weights: LoadedWeights) -> Generator:
    """The generator `weights.config` describes, with the weights loaded strictly, in eval mode."""
    # Built on the meta device: random initialisation of 16M parameters would be thrown away at once.
    with torch.device("meta"):
        model = weights.config.build()
    state = {k: v.detach().to(torch.float32) for k, v in weights.state_dict.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(f"{weights.path}: weights do not fit the architecture ({first})") from None
    return model.eval()


def load_generator(
    spec: str | os.PathLike[str], *, cache_dir: Path | None = None, progress: bool = True
) -> Generator:
    """Load a generator (strictly, eval mode) from a path in any supported format or a registered name.

    `cache_dir` is the folder for converted and downloaded zoo files (default `user_cache_dir()/models`,
    so `$ESRGAN_CACHE` moves it). Errors are `WeightsError`s naming the file and the reason.
    """
    return build_generator(resolve_weights(spec, cache_dir=cache_dir, progress=progress))


def interpolate_state_dicts(
    psnr: Mapping[str, torch.Tensor], gan: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """ESRGAN network interpolation: (1 - alpha) * psnr + alpha * gan, key by key."""
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if set(psnr) != set(gan):
        only_a = sorted(set(psnr) - set(gan))[:3]
        only_b = sorted(set(gan) - set(psnr))[:3]
        raise WeightsError(f"state dicts have different keys (only in PSNR: {only_a}; only in GAN: {only_b})")
    out: dict[str, torch.Tensor] = {}
    for key, a in psnr.items():
        b = gan[key]
        if a.shape != b.shape:
            raise WeightsError(f"{key}: shape {tuple(a.shape)} (PSNR) differs from {tuple(b.shape)} (GAN)")
        dtype = torch.promote_types(a.dtype, b.dtype)
        # On the CPU: a trainer hands in a CUDA generator and a PSNR model loaded from disk (seen on an H200).
        mixed = torch.lerp(a.detach().to("cpu", torch.float32), b.detach().to("cpu", torch.float32), alpha)
        out[key] = mixed.to(dtype) if dtype.is_floating_point else mixed
    return out


def interpolate_weights(
    psnr_spec: str | os.PathLike[str],
    gan_spec: str | os.PathLike[str],
    alpha: float,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], LoadedWeights, LoadedWeights]:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    a = resolve_weights(psnr_spec, cache_dir=cache_dir, progress=progress)
    b = resolve_weights(gan_spec, cache_dir=cache_dir, progress=progress)
    if a.config != b.config:
        da, db = a.config.to_dict(), b.config.to_dict()
        diff = ", ".join(f"{k} {da[k]} vs {db[k]}" for k in da if da[k] != db[k])
        raise WeightsError(f"{psnr_spec} and {gan_spec}: architectures differ ({diff})")
    return interpolate_state_dicts(a.state_dict, b.state_dict, alpha), a, b


def interpolate_generators(
    psnr_spec: str | os.PathLike[str],
    gan_spec: str | os.PathLike[str],
    alpha: float,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Generator:
    """Generator whose weights interpolate a PSNR-oriented and a GAN model of the same architecture."""
    sd, a, _ = interpolate_weights(psnr_spec, gan_spec, alpha, cache_dir=cache_dir, progress=progress)
    return build_generator(LoadedWeights(sd, a.config, a.layout, {}, a.path))
