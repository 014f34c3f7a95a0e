"""One device and numeric-precision policy, shared by training and inference.

Nothing here probes hardware at import; every check runs when a function is called.
"""

from __future__ import annotations

import warnings

import torch

# Re-exported: they moved to `esrgan.cpuinfo`, which needs no torch.
from esrgan.cpuinfo import SPEED_FLAGS as SPEED_FLAGS
from esrgan.cpuinfo import CpuInfo as CpuInfo
from esrgan.cpuinfo import cpu_info as cpu_info
from esrgan.cpuinfo import torch_probe as _probe

DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
PRECISION_NAMES = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """The requested device or precision cannot be used on this machine (one-line message)."""


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
    """Map `auto|cpu|cuda|cuda:N|mps` to a usable `torch.device`; an unavailable one is a `DeviceError`.

    `auto` prefers CUDA, then Apple MPS, then the CPU.
    """
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


def resolve_precision(name: str, device: torch.device | str, *, training: bool = False) -> torch.dtype:
    """The compute dtype for precision `name` (`auto|fp32|bf16|fp16`) on `device`.

    `auto` is fp32 unless the device has fast reduced precision: bf16 on CPUs with native bf16, fp32 on
    MPS (its half paths vary by macOS version), and on CUDA it depends on ``training``:

    - inference (``training=False``) takes fp16: the weights are held in half precision and fp16 was the
      fastest measured (0.11 s vs 0.13 s bf16 and 0.21 s fp32 on an H100);
    - training (``training=True``) takes bf16 where the GPU supports it, so no loss scaling is needed
      and the GAN losses cannot overflow, and fp16 (with a GradScaler, see `needs_grad_scaler`) elsewhere.

    Explicit bf16 on a CPU without native bf16 runs emulated, with a warning. Explicit fp16 on a CPU
    without fp16 units is refused for inference (a silent crawl) but honoured, with a warning, for
    training: CPU autocast with a GradScaler is how mixed-precision training is checked without a GPU.
    bf16 on a GPU without bf16 is refused.
    """
    device = torch.device(device)
    name = name.strip().lower()
    if name not in PRECISION_NAMES:
        raise DeviceError(f"unknown precision {name!r}: use one of {', '.join(PRECISION_NAMES)}")
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if training and torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    dtype = _DTYPES[name]
    if device.type == "cpu":
        if dtype == torch.float16 and not cpu_has_native_fp16():
            if not training:
                raise DeviceError(
                    "precision fp16 needs a CPU with AMX-FP16/AVX512-FP16 and this one has neither: "
                    "use --precision fp32 (or bf16)"
                )
            _warn_emulated("fp16", "AMX-FP16/AVX512-FP16")
        if dtype == torch.bfloat16 and not cpu_has_native_bf16():
            _warn_emulated("bf16", "AVX512-BF16/AMX")
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceError("precision bf16 is not supported by this GPU: use fp16 or fp32")
    return dtype


def _warn_emulated(precision: str, units: str) -> None:
    warnings.warn(
        f"this CPU has no native {precision} ({units}): {precision} is emulated and usually slower than fp32",
        RuntimeWarning,
        stacklevel=3,
    )


def needs_grad_scaler(dtype: torch.dtype) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
    return dtype == torch.float16


def precision_name(dtype: torch.dtype) -> str:
    """`fp32`, `bf16` or `fp16` for a dtype `resolve_precision` returned."""
    return {v: k for k, v in _DTYPES.items()}[dtype]
