"""Exported networks loaded by OpenVINO or ONNX Runtime and run on NumPy arrays, with the settings
every path of ours uses, so the torch runners (`esrgan.inference.runtime`) and the warm start path
(`esrgan.inference.warm`, which has no torch) compute the same image. The runtimes are imported here
when a network loads, never at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

OPENVINO_HINTS = {"fp32": "f32", "bf16": "bf16"}
"""OpenVINO's `INFERENCE_PRECISION_HINT` for the parts of a network that are not int8."""


def compile_openvino(path: str | Path, *, threads: int, hint: str = "f32") -> Any:
    """An OpenVINO IR compiled for the CPU. `hint` is what runs the parts that are not int8: `f32`
    (OpenVINO would otherwise pick bf16 on CPUs that have it and change the output) or `bf16`."""
    import openvino as ov

    if hint not in OPENVINO_HINTS.values():
        raise ValueError(f"unknown OpenVINO precision hint {hint!r}: use f32 or bf16")
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": hint,
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        # OpenVINO keeps the compiled network beside the IR: the next process loads it in a fraction
        # of the compile time (whole-process start-up).
        "CACHE_DIR": str(Path(path).parent / "compiled"),
    }
    return ov.Core().compile_model(str(path), "CPU", config)


def openvino_infer(compiled: Any, arr: np.ndarray) -> np.ndarray:
    """One synchronous inference. The input is copied in and the output copied out, so no NumPy array
    of ours shares memory with OpenVINO's request (its default shares the input buffer)."""
    out = compiled(arr, share_inputs=False, share_outputs=False)[compiled.output(0)]
    return np.array(out, dtype=np.float32, copy=True)


def onnx_session(path: str | Path, *, threads: int) -> Any:
    """An ONNX Runtime session on the CPU provider.

    The memory arena is off: tiles of one plan share a shape, but the arena would keep the peak of the
    largest one resident between images, and the memory budget counts on it being returned.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False  # shapes vary between images
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_infer(session: Any, arr: np.ndarray) -> np.ndarray:
    """One inference of the session's first input and output, float32."""
    out = session.run(None, {session.get_inputs()[0].name: arr})[0]
    return np.asarray(out, dtype=np.float32)
