"""Read weights files: PyTorch pickles (tensors only), safetensors and ncnn `.param`/`.bin` pairs."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from esrgan.models import ArchConfig
from esrgan.weights.canonical import ARCH_KEY, canonicalize
from esrgan.weights.errors import WeightsError
from esrgan.weights.ncnn import read_ncnn

TORCH_SUFFIXES = (".pth", ".pt", ".ckpt")
NCNN_SUFFIXES = (".param", ".bin")
SUPPORTED_SUFFIXES = (*TORCH_SUFFIXES, ".safetensors", *NCNN_SUFFIXES)


@dataclass(frozen=True)
class LoadedWeights:
    """A generator's weights in canonical form, with what was learned about them."""

    state_dict: dict[str, torch.Tensor]
    config: ArchConfig
    layout: str  # "basicsr", "esrgan", "esrgan-old", "compact", "esrgan-safetensors", "ncnn"
    metadata: dict[str, str]
    path: Path


def _ncnn_pair(path: Path) -> tuple[Path, Path]:
    return path.with_suffix(".param"), path.with_suffix(".bin")


_NOT_WEIGHTS = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"RIFF": "a RIFF file (WebP image?)",
    b"<!DOCTYPE": "an HTML page (a download that failed?)",
    b"<html": "an HTML page (a download that failed?)",
    b"\x1f\x8b": "a gzip archive",
    b"7767517": "an ncnn .param text file",
}


def _first_line(text: str) -> str:
    # torch and miniz append paragraphs of advice after the first sentence.
    text = " ".join(text.split())
    head, dot, _ = text.partition(". ")
    return head + ("." if dot and not head.endswith(".") else "") if head else text


def _content_problem(path: Path) -> str | None:
    """Why a file cannot be weights judging by its first bytes (empty, an image, a web page), or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if not head:
        return "the file is empty (0 bytes)"
    for magic, what in _NOT_WEIGHTS.items():
        if head.startswith(magic):
            return f"this is {what}, not a weights file"
    return None


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
        first = _first_line(str(exc)) or type(exc).__name__
        if isinstance(exc, (EOFError, OSError)) or "zip archive" in first:
            first = f"truncated or damaged: {first}"
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    except MemoryError:
        raise
    except Exception as exc:
        # The weights-only unpickler meets a damaged stream with KeyError, AttributeError, IndexError, ...
        # (seen with hypothesis-mutated files): still a damaged file, not a bug to show as a traceback.
        detail = f"{type(exc).__name__}: {_first_line(str(exc))}".rstrip(": ")
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint (damaged: {detail})") from None


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
        sd, config = read_ncnn(param, bin_)
        # The graph knows what the shapes cannot (a compact network's final resize): passed on the way
        # our own files carry their architecture.
        meta = {} if config is None else {ARCH_KEY: json.dumps(config.to_dict(), sort_keys=True)}
        return sd, meta, True
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a weights file")
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    problem = _content_problem(path)
    if problem is not None:
        raise WeightsError(f"{path}: {problem}")
    if suffix == ".safetensors":
        tensors, metadata = _load_safetensors(path)
        return tensors, metadata, False
    return _load_torch(path), {}, False


def _load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None
    return tensors, metadata


def load_tensor_file(path: str | os.PathLike[str], *, what: str = "weights") -> dict[str, torch.Tensor]:
    """Tensors of a plain state-dict file, such as torchvision's VGG weights or the LPIPS heads.

    `.safetensors`, or any other name read as a PyTorch file (tensors and plain containers only); a
    top-level `state_dict` wrapper and `module.` prefixes are removed. FileNotFoundError when missing,
    WeightsError (a ValueError naming the file and `what`) when it is not such a file. Generator
    checkpoints, with their many layouts, go through `load_weights` instead.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    obj = _load_safetensors(path)[0] if path.suffix.lower() == ".safetensors" else _load_torch(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: {what} file is not a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, as stored (wrappers such as `params_ema` unwrapped, keys unchanged)."""
    from esrgan.weights.canonical import unwrap

    content, _, _ = read_weights_file(path)
    return unwrap(content, source=str(path))


def load_weights(path: str | os.PathLike[str]) -> LoadedWeights:
    """Read any supported file and canonicalise it (keys, architecture, layout name)."""
    path = Path(path)
    content, metadata, is_ncnn = read_weights_file(path)
    sd, config, layout = canonicalize(content, metadata=metadata, source=str(path))
    return LoadedWeights(
        state_dict=sd,
        config=config,
        layout="ncnn" if is_ncnn else layout,
        metadata=metadata,
        path=path,
    )
