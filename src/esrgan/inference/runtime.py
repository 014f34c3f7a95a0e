"""What runs a tile: eager PyTorch, or the same network exported to ONNX and run by ONNX Runtime.

ONNX Runtime runs the fp32 network faster than eager PyTorch with the same output (1.28x on a 2-core
AVX2 EPYC, several times on an AVX512 one; 88-91 dB apart), so `resolve_runtime("auto", ...)` picks it
for fp32 on the CPU when it is installed and the model is worth exporting.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

RUNTIME_NAMES = ("auto", "torch", "onnxruntime")
# `auto` exports only networks this large: the one-time export takes tens of seconds, which pays off
# for real models (the 23-block x4 ones have 16.7M parameters) but never for the tiny ones of tests.
AUTO_ONNX_MIN_PARAMETERS = 1_000_000


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_runtime(name: str, *, model: nn.Module, device: torch.device, dtype: torch.dtype) -> str:
    """`torch` or `onnxruntime` for runtime `name` (`auto|torch|onnxruntime`).

    `auto` is ONNX Runtime for fp32 on the CPU with a generator (a model with a `.config`) of at
    least `AUTO_ONNX_MIN_PARAMETERS` when onnxruntime is installed, else PyTorch. Asking for
    `onnxruntime` anywhere else is a ValueError.
    """
    name = name.strip().lower()
    if name not in RUNTIME_NAMES:
        raise ValueError(f"unknown runtime {name!r}: use one of {', '.join(RUNTIME_NAMES)}")
    fits = device.type == "cpu" and dtype == torch.float32 and getattr(model, "config", None) is not None
    if name == "auto":
        big = sum(p.numel() for p in model.parameters()) >= AUTO_ONNX_MIN_PARAMETERS
        return "onnxruntime" if fits and big and onnxruntime_available() else "torch"
    if name == "onnxruntime":
        if not fits:
            raise ValueError("runtime onnxruntime runs fp32 on the CPU only (use --precision fp32)")
        if not onnxruntime_available():
            raise ValueError("runtime onnxruntime needs the onnxruntime package: pip install onnxruntime")
    return name


class OnnxRuntimeRunner:
    """Runs an exported model (see `esrgan.inference.export`) with ONNX Runtime's CPU provider.

    The memory arena is off: tiles of one plan share a shape, but the arena would keep the peak of the
    largest one resident between images, and the memory budget counts on it being returned.
    """

    def __init__(self, *, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False  # shapes vary between images
        options.intra_op_num_threads = threads if threads is not None else torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.path = Path(path)
        self._session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N,C,h,w) float32 CPU -> the model's output, float32 CPU, clamped to [0, 1]."""
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        out = self._session.run(None, {self._input: arr})[0]
        return torch.from_numpy(out).clamp_(0.0, 1.0)
