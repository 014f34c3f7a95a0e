"""How inference places and runs a model at the chosen precision.

Which device and precision to use is decided by `esrgan.device` (one policy for training and
inference); its names are re-exported here so existing imports keep working. Nothing here probes
hardware at import; every check runs when a function is called.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from esrgan.device import (
    DEVICE_NAMES,
    PRECISION_NAMES,
    DeviceError,
    cpu_has_native_bf16,
    cpu_has_native_fp16,
    precision_name,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "AUTO_INT8_MAX_DROP_DB",
    "DEVICE_NAMES",
    "INFERENCE_PRECISIONS",
    "PRECISION_NAMES",
    "DeviceError",
    "compute_context",
    "cpu_has_native_bf16",
    "cpu_has_native_fp16",
    "input_dtype",
    "precision_name",
    "prepare_model",
    "resolve_device",
    "resolve_precision",
    "resolve_precision_and_runtime",
    "uses_channels_last",
]


INFERENCE_PRECISIONS = (*PRECISION_NAMES, "int8")
"""What inference accepts: the training precisions plus int8 (CPU, OpenVINO; see `esrgan.inference.int8`)."""
AUTO_INT8_MAX_DROP_DB = 0.05
"""int8 is a candidate of `auto` only for a model whose measured PSNR-Y drop is at most this (dB);
the check of `esrgan.inference.autoselect` then decides."""


def resolve_precision_and_runtime(
    precision: str,
    runtime: str,
    *,
    model: nn.Module,
    device: torch.device,
) -> tuple[torch.dtype, str]:
    """The compute dtype and runtime (`torch`, `onnxruntime` or `openvino`) for an inference request
    that is settled by rule, not by measuring.

    Where `esrgan.inference.autoselect.applies` (`auto` precision, or fp32 on the `auto` runtime, on
    the CPU for a real-sized generator), `Upscaler` measures instead: the fastest candidate that gives
    this machine's eager fp32 image. What is left here:

    - `int8` runs on OpenVINO (fp32 in and out, int8 inside) on the CPU only; `runtime` may be `auto`,
      `torch` (the default of `esrgan test`) or `openvino`, not `onnxruntime`.
    - `auto` on the CPU (a network too small to be worth a check) is fp32: eager's own output. bf16
      and int8 change the image by an amount that depends on the CPU and the weights (31-53 dB from
      fp32 measured), so they are never picked unchecked.
    - Otherwise the precision follows the shared policy (`esrgan.device.resolve_precision`: fp16 on
      CUDA) and the runtime `resolve_runtime` (`openvino` runs fp32 or bf16 on the CPU).
    """
    from esrgan.inference.int8 import int8_available
    from esrgan.inference.runtime import resolve_runtime

    name = precision.strip().lower()
    if name not in INFERENCE_PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}: use one of {', '.join(INFERENCE_PRECISIONS)}")
    wanted_runtime = runtime.strip().lower()
    if name == "int8":
        if device.type != "cpu":
            raise DeviceError(f"precision int8 runs on the CPU only (device is {device}); use fp16 on a GPU")
        if wanted_runtime == "onnxruntime":
            raise ValueError("precision int8 runs on OpenVINO, not ONNX Runtime (leave --runtime at auto)")
        if getattr(model, "config", None) is None:
            raise ValueError("precision int8 needs a generator with a .config (RRDBNet, SRVGGNetCompact)")
        if not int8_available():
            raise DeviceError("precision int8 needs OpenVINO and NNCF: pip install 'esrgan[int8]'")
        return torch.float32, "openvino"
    if name == "auto" and device.type == "cpu":
        return torch.float32, resolve_runtime(runtime, model=model, device=device, dtype=torch.float32)
    dtype = resolve_precision(precision, device)
    return dtype, resolve_runtime(runtime, model=model, device=device, dtype=dtype)


def prepare_model(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move `model` to `device` for inference at `dtype` (in place; returns it).

    Accelerators hold the weights in the compute dtype (half the memory, no per-op casts). The CPU keeps
    fp32 weights and runs bf16/fp16 through autocast, which oneDNN's reduced-precision convolutions need
    together with channels_last. channels_last is used for CPU fp32 too: oneDNN then skips its layout
    reorders, 1.11x faster on an AVX2 EPYC with a third less peak memory and the same output (88 dB).
    """
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    # torch's stubs lack Module.to's memory_format keyword, hence the two ignores.
    if device.type == "cpu":
        model.to(device=device, dtype=torch.float32)
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    else:
        model.to(device=device, dtype=dtype)
        if device.type == "cuda":
            model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def input_dtype(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """dtype the model's input tensor must have (CPU autocast takes fp32 inputs)."""
    return torch.float32 if device.type == "cpu" else dtype


def uses_channels_last(device: torch.device, dtype: torch.dtype) -> bool:
    return device.type in ("cuda", "cpu")


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
