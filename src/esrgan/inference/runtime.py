"""What runs a tile: eager PyTorch, or the same network exported to ONNX and run by ONNX Runtime or
OpenVINO.

ONNX Runtime runs the fp32 network faster than eager PyTorch with the same output (1.28x on a 2-core
AVX2 EPYC, several times on an AVX512 one; 88-91 dB apart), so `resolve_runtime("auto", ...)` picks it
for fp32 on the CPU when it is installed and the model is worth exporting. OpenVINO runs fp32, bf16
(`INFERENCE_PRECISION_HINT`) and int8 networks; which of them `auto` uses on this CPU is measured by
`esrgan.inference.autoselect`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# Re-exported: the runners' settings and the NumPy calls live in `compiled`, which needs no torch.
from esrgan.inference.compiled import OPENVINO_HINTS as OPENVINO_HINTS
from esrgan.inference.compiled import compile_openvino, onnx_infer, onnx_session
from esrgan.inference.compiled import openvino_infer as openvino_infer

RUNTIME_NAMES = ("auto", "torch", "onnxruntime", "openvino")
# `auto` exports only networks this large: the one-time export takes tens of seconds, which pays off
# for real models (the 23-block x4 ones have 16.7M parameters) but never for the tiny ones of tests.
AUTO_ONNX_MIN_PARAMETERS = 1_000_000


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime is installed (found, not imported: a cached decision never runs it)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def openvino_available() -> bool:
    """Whether OpenVINO is installed (found, not imported: importing it takes a second)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None


def resolve_runtime(name: str, *, model: nn.Module, device: torch.device, dtype: torch.dtype) -> str:
    """`torch`, `onnxruntime` or `openvino` for runtime `name` (`RUNTIME_NAMES`).

    `auto` is ONNX Runtime for fp32 on the CPU with a generator (a model with a `.config`) of at
    least `AUTO_ONNX_MIN_PARAMETERS` when onnxruntime is installed, else PyTorch. Asking for
    `onnxruntime` anywhere else is a ValueError; `openvino` runs fp32 or bf16 on the CPU.
    """
    name = name.strip().lower()
    if name not in RUNTIME_NAMES:
        raise ValueError(f"unknown runtime {name!r}: use one of {', '.join(RUNTIME_NAMES)}")
    fits = device.type == "cpu" and dtype == torch.float32 and getattr(model, "config", None) is not None
    if name == "auto":
        big = sum(p.numel() for p in model.parameters()) >= AUTO_ONNX_MIN_PARAMETERS
        return "onnxruntime" if fits and big and onnxruntime_available() else "torch"
    if name == "openvino":
        generator = device.type == "cpu" and getattr(model, "config", None) is not None
        if not generator or dtype not in (torch.float32, torch.bfloat16):
            raise ValueError("runtime openvino runs fp32, bf16 or int8 on the CPU only")
        if not openvino_available():
            raise ValueError("runtime openvino needs the openvino package: pip install openvino")
    if name == "onnxruntime":
        if not fits:
            raise ValueError("runtime onnxruntime runs fp32 on the CPU only (use --precision fp32)")
        if not onnxruntime_available():
            raise ValueError("runtime onnxruntime needs the onnxruntime package: pip install onnxruntime")
    return name


class OnnxRuntimeRunner:
    """Runs an exported model (see `esrgan.inference.export`) with ONNX Runtime's CPU provider
    (`compiled.onnx_session`: no memory arena, so the memory budget holds)."""

    def __init__(self, *, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        count = threads if threads is not None else torch.get_num_threads()
        self._session = onnx_session(self.path, threads=count)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N,C,h,w) float32 CPU -> the model's output, float32 CPU, clamped to [0, 1]."""
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(onnx_infer(self._session, arr)).clamp_(0.0, 1.0)


class OpenVinoRunner:
    """Runs an OpenVINO IR on the CPU. `hint` is what runs the parts that are not int8: `f32` (the
    default, since OpenVINO would otherwise pick bf16 on CPUs that have it and change the output) or
    `bf16`."""

    def __init__(self, *, path: str | Path, threads: int | None = None, hint: str = "f32") -> None:
        self.path = Path(path)
        self.hint = hint
        count = threads if threads is not None else torch.get_num_threads()
        self._compiled = compile_openvino(self.path, threads=count, hint=hint)

    def release_memory(self) -> None:
        """Free the activation buffers the last inference left allocated (the next one allocates again)."""
        self._compiled.release_memory()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N,C,h,w) float32 CPU -> the model's output, float32 CPU, clamped to [0, 1]."""
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(openvino_infer(self._compiled, arr)).clamp_(0.0, 1.0)
