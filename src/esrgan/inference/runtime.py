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
from typing import Any

import numpy as np
import torch
from torch import nn

RUNTIME_NAMES = ("auto", "torch", "onnxruntime", "openvino")
OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}
"""OpenVINO's `INFERENCE_PRECISION_HINT` for the parts of a network that are not int8."""
# `auto` exports only networks this large: the one-time export takes tens of seconds, which pays off
# for real models (the 23-block x4 ones have 16.7M parameters) but never for the tiny ones of tests.
AUTO_ONNX_MIN_PARAMETERS = 1_000_000


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


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


def openvino_infer(compiled: Any, arr: np.ndarray) -> np.ndarray:
    """One synchronous inference. The input is copied in and the output copied out, so no NumPy array
    of ours shares memory with OpenVINO's request (its default shares the input buffer)."""
    out = compiled(arr, share_inputs=False, share_outputs=False)[compiled.output(0)]
    return np.array(out, dtype=np.float32, copy=True)


class OpenVinoRunner:
    """Runs an OpenVINO IR on the CPU. `hint` is what runs the parts that are not int8: `f32` (the
    default, since OpenVINO would otherwise pick bf16 on CPUs that have it and change the output) or
    `bf16`."""

    def __init__(self, *, path: str | Path, threads: int | None = None, hint: str = "f32") -> None:
        import openvino as ov

        if hint not in OPENVINO_HINTS.values():
            raise ValueError(f"unknown OpenVINO precision hint {hint!r}: use f32 or bf16")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint}
        config["INFERENCE_NUM_THREADS"] = threads if threads is not None else torch.get_num_threads()
        config["PERFORMANCE_HINT"] = "LATENCY"
        # OpenVINO keeps the compiled network beside the IR: the next process loads it in a fraction
        # of the compile time (whole-process start-up).
        config["CACHE_DIR"] = str(Path(path).parent / "compiled")
        self.path = Path(path)
        self.hint = hint
        self._compiled = ov.Core().compile_model(str(self.path), "CPU", config)

    def release_memory(self) -> None:
        """Free the activation buffers the last inference left allocated (the next one allocates again)."""
        self._compiled.release_memory()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N,C,h,w) float32 CPU -> the model's output, float32 CPU, clamped to [0, 1]."""
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(openvino_infer(self._compiled, arr)).clamp_(0.0, 1.0)
