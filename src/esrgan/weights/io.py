"""Read weights files: PyTorch pickles (tensors only), safetensors and ncnn `.param`/`.bin` pairs."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from esrgan.models import RRDBNetConfig
from esrgan.weights.canonical import canonicalize
from esrgan.weights.errors import WeightsError
from esrgan.weights.ncnn import load_ncnn

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
NCNN_SUFFIXES = (".param", ".bin")
SUPPORTED_SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", *NCNN_SUFFIXES)


@dataclass(frozen=True)
class LoadedWeights:
    """A generator's weights in canonical form, with what was learned about them."""

    state_dict: dict[str, torch.Tensor]
    config: RRDBNetConfig
    layout: str  # "basicsr", "esrgan", "esrgan-old", "esrgan-safetensors", "ncnn"
    metadata: dict[str, str]
    path: Path


def _ncnn_pair(path: Path) -> tuple[Path, Path]:
    return path.with_suffix(".param"), path.with_suffix(".bin")


def _unpickler_detail(exc: Exception) -> str:
    # torch wraps the useful part ("WeightsUnpickler error: ...") in paragraphs of advice.
    text = " ".join(str(exc).split())
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].split(" Check the documentation", 1)[0]
        text = text.split(" Please use `torch.serialization", 1)[0]
    return text.strip() or type(exc).__name__


def _load_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if "Unsupported global" in detail:
            # weights_only refuses arbitrary classes and functions; running a pickled program is never
            # an option for a weights file.
            raise WeightsError(
                f"{path}: refusing to unpickle objects other than tensors and plain containers ({detail})"
            ) from None
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({detail})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


def read_weights_file(path: str | os.PathLike[str]) -> tuple[object, dict[str, str], bool]:
    """Raw content of a file: (tensors or checkpoint object, safetensors metadata, is_ncnn)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise WeightsError(
            f"{path}: unsupported weights format {suffix or '(no suffix)'!r} "
            f"(use {', '.join(SUPPORTED_SUFFIXES)})"
        )
    if suffix in NCNN_SUFFIXES:
        param, bin_ = _ncnn_pair(path)
        return load_ncnn(param, bin_), {}, True
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    if suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                metadata = dict(fh.metadata() or {})
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
        return tensors, metadata, False
    return _load_torch(path), {}, False


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, as stored (wrappers such as `params_ema` unwrapped, keys unchanged)."""
    from esrgan.weights.canonical import unwrap

    content, _, _ = read_weights_file(path)
    return unwrap(content, source=str(path))


def load_weights(path: str | os.PathLike[str]) -> LoadedWeights:
    """Read any supported file and canonicalise it (keys, architecture, layout name)."""
    path = Path(path)
    content, metadata, is_ncnn = read_weights_file(path)
    sd, config, layout = canonicalize(content, metadata=metadata, source=str(path))  # type: ignore[arg-type]
    return LoadedWeights(
        state_dict=sd,
        config=config,
        layout="ncnn" if is_ncnn else layout,
        metadata=metadata,
        path=path,
    )
