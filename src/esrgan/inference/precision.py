"""Device and numeric-precision selection for inference.

Nothing here probes hardware at import; every check runs when a function is called.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import nn

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
PRECISION_NAMES = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """The requested device or precision cannot be used on this machine (one-line message)."""


def _probe(name: str) -> bool:
    # Private torch probes move between releases; a missing one means "not known to be supported".
    for owner in (torch.cpu, torch.ops.mkldnn):
        fn = getattr(owner, name, None)
        if fn is None:
            continue
        try:
            return bool(fn())
        except (RuntimeError, AttributeError):
            return False
    return False


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 in hardware (AVX512-BF16 or AMX).

    Elsewhere oneDNN emulates bf16 by converting to fp32, which is correct but slower than plain fp32
    (measured 2.5-3x slower than fp32 on an AVX2-only AMD EPYC), so `auto` must not pick it there.
    """
    return _probe("_is_avx512_bf16_supported") or _probe("_is_amx_tile_supported")


def cpu_has_native_fp16() -> bool:
    """True when the CPU has fp16 arithmetic units (AMX-FP16 or AVX512-FP16)."""
    return _probe("_is_amx_fp16_supported") or _probe("_is_mkldnn_fp16_supported")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Map `auto|cpu|cuda|cuda:N|mps` to a usable `torch.device`; an unavailable one is a `DeviceError`."""
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use one of {', '.join(DEVICE_NAMES)}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' requested but CUDA is not available (CPU-only torch or no GPU)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise DeviceError(f"device {name!r} requested but only {count} CUDA device(s) exist")
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' requested but Apple MPS is not available on this machine")
        return device
    raise DeviceError(f"unsupported device {name!r}: use one of {', '.join(DEVICE_NAMES)}")


def resolve_precision(name: str, device: torch.device | str) -> torch.dtype:
    """Pick the compute dtype for `device`.

    `auto`: fp16 on CUDA, bf16 on CPUs with native bf16, fp32 elsewhere (MPS included: its half paths
    vary by macOS version). Explicit `fp16` on a CPU without fp16 units is an error rather than a silent
    crawl; explicit `bf16` on a CPU without native bf16 runs (emulated) with a warning.
    """
    device = torch.device(device)
    name = name.strip().lower()
    if name not in PRECISION_NAMES:
        raise DeviceError(f"unknown precision {name!r}: use one of {', '.join(PRECISION_NAMES)}")
    if name == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    dtype = _DTYPES[name]
    if device.type == "cpu":
        if dtype == torch.float16 and not cpu_has_native_fp16():
            raise DeviceError(
                "precision fp16 needs a CPU with AMX-FP16/AVX512-FP16 and this one has neither: "
                "use --precision fp32 (or bf16)"
            )
        if dtype == torch.bfloat16 and not cpu_has_native_bf16():
            warnings.warn(
                "this CPU has no native bf16 (AVX512-BF16/AMX): bf16 is emulated and usually slower "
                "than fp32",
                RuntimeWarning,
                stacklevel=2,
            )
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceError("precision bf16 is not supported by this GPU: use fp16 or fp32")
    return dtype


def precision_name(dtype: torch.dtype) -> str:
    return {v: k for k, v in _DTYPES.items()}[dtype]


def prepare_model(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move `model` to `device` for inference at `dtype` (in place; returns it).

    Accelerators hold the weights in the compute dtype (half the memory, no per-op casts). The CPU keeps
    fp32 weights and runs bf16/fp16 through autocast, which oneDNN's reduced-precision convolutions need
    together with channels_last.
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if device.type == "cpu":
        model.to(device=device, dtype=torch.float32)
        if dtype != torch.float32:
            model.to(memory_format=torch.channels_last)
    else:
        model.to(device=device, dtype=dtype)
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)
    return model


def input_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """dtype the model's input tensor must have (CPU autocast takes fp32 inputs)."""
    return torch.float32 if device.type == "cpu" else dtype


def uses_channels_last(device: torch.device, dtype: torch.dtype) -> bool:
    return device.type == "cuda" or (device.type == "cpu" and dtype != torch.float32)


@contextlib.contextmanager
def compute_context(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """No autograd, plus CPU autocast when running reduced precision on the CPU.

    no_grad rather than inference_mode: results are handed back to callers, and inference tensors
    refuse later in-place edits outside inference mode.
    """
    with torch.no_grad():
        if device.type == "cpu" and dtype != torch.float32:
            with torch.autocast("cpu", dtype=dtype):
                yield
        else:
            yield
