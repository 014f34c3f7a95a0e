"""An export checked against PyTorch: `esrgan export` writes a model (fp32 through `esrgan.inference.export`,
or int8 through `esrgan.inference.int8`) and compares its output with PyTorch's on a real image.

Apart from `esrgan.inference.export` because the int8 path needs `int8`, which itself exports with
`export`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from esrgan.inference.export import ExportError, check_format, export_copy, export_model
from esrgan.inference.int8 import Int8Error, Int8Model, quantize_int8


@dataclass(frozen=True)
class ExportReport:
    """An export and how far its output is from PyTorch's on the check image."""

    path: Path
    format: str
    max_abs_diff: float
    check_hw: tuple[int, int]
    psnr_db: float = float("inf")
    """PSNR of the export's output against PyTorch's on the check image (all channels)."""
    int8: Int8Model | None = None
    """The quantisation report of an int8 export."""

    def summary(self) -> str:
        h, w = self.check_hw
        kind = "int8" if self.int8 is not None else "fp32"
        text = (
            f"{self.path} ({self.format}, {kind}, dynamic batch/height/width): max |{self.format} - pytorch| "
            f"= {self.max_abs_diff:.2e} on a {w}x{h} image (output in [0, 1])"
        )
        if self.int8 is not None:
            text += f", PSNR {self.psnr_db:.1f} dB from fp32; {self.int8.summary()}"
        return text


# The check runs on a crop this size at most (two 23-block passes stay a few seconds on a CPU); not
# square and not the export's example size, so the dynamic height and width are exercised.
CHECK_HW = (96, 80)


def synthetic_check_image(seed: int = 0) -> torch.Tensor:
    """A (3,H,W) `CHECK_HW` image with smooth structure and fine texture, for when no photo is given."""
    from torch.nn import functional as F

    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, 12, 12, generator=g)
    smooth = F.interpolate(low, size=CHECK_HW, mode="bicubic", align_corners=False)
    return (0.85 * smooth + 0.15 * torch.rand(1, 3, *CHECK_HW, generator=g))[0].clamp(0, 1)


def export_and_check(
    model: nn.Module, path: str | Path, *, format: str, image: torch.Tensor, int8: bool = False
) -> ExportReport:
    """Export `model` to `path` and compare the export with PyTorch on the centre crop (at most
    `CHECK_HW`) of `image` ((C,H,W) or (1,C,H,W) float in [0, 1], e.g. a real photo). `int8`: quantise
    it for OpenVINO first (`esrgan.inference.int8.quantize_int8`; format must be openvino)."""
    fmt = check_format(format)
    if int8 and fmt != "openvino":
        raise ExportError("an int8 export is an OpenVINO model: use --format openvino")
    x = image if image.dim() == 4 else image.unsqueeze(0)
    multiple = int(getattr(model, "input_multiple", 1))
    h, w = (min(c, s) for c, s in zip(CHECK_HW, x.shape[-2:], strict=True))
    h, w = max(h - h % multiple, multiple), max(w - w % multiple, multiple)
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ExportError(f"check image is smaller than the model's input multiple {multiple}")
    crop = x[..., top : top + h, left : left + w].float()
    report: Int8Model | None = None
    if int8:
        try:
            report = quantize_int8(model, path)
        except Int8Error as exc:
            raise ExportError(str(exc)) from None
        written = report.path
    else:
        written = export_model(model, path, format=fmt)
    diff, psnr_db = _compare(written, model, crop, format=fmt)
    return ExportReport(
        path=written, format=fmt, max_abs_diff=diff, check_hw=(h, w), psnr_db=psnr_db, int8=report
    )


def run_exported(path: str | Path, x: torch.Tensor, *, format: str) -> torch.Tensor:
    """Run an exported model on `x` ((N,C,H,W) float) with its runtime's CPU backend."""
    arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
    fmt = check_format(format)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {session.get_inputs()[0].name: arr})[0]
    elif fmt == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled(arr, share_inputs=False, share_outputs=False)[compiled.output(0)]
    return torch.from_numpy(out.copy())


def _compare(path: str | Path, model: nn.Module, x: torch.Tensor, *, format: str) -> tuple[float, float]:
    """(largest |exported - PyTorch|, PSNR in dB) over the output of `x`, both clamped to [0, 1]."""
    clone = export_copy(model)
    with torch.no_grad():
        expected = clone(x.detach().to("cpu", torch.float32))
    got = run_exported(path, x, format=format)
    if got.shape != expected.shape:
        raise ExportError(f"{path}: output shape {tuple(got.shape)}, PyTorch gives {tuple(expected.shape)}")
    diff = float((got - expected).abs().max())
    mse = float((got.clamp(0, 1).double() - expected.clamp(0, 1).double()).pow(2).mean())
    return diff, (float("inf") if mse == 0 else -10.0 * math.log10(mse))


def max_abs_difference(path: str | Path, model: nn.Module, x: torch.Tensor, *, format: str) -> float:
    """Largest |exported - PyTorch| over the output of `x` (values in [0, 1] images' units)."""
    return _compare(path, model, x, format=format)[0]
