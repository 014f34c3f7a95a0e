"""Export a generator for other runtimes (ONNX, OpenVINO IR) with dynamic batch, height and width, and
check an export against PyTorch on a real image.

The ONNX file is also what `esrgan.inference.runtime` runs with ONNX Runtime: `cached_onnx` builds it
once per weights (tensor hash) and runtime version under the user cache folder.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import logging
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from esrgan.utils import atomic_write, user_cache_dir

if TYPE_CHECKING:
    from esrgan.inference.int8 import Int8Model

EXPORT_FORMATS = ("onnx", "openvino")
ONNX_OPSET = 18
# Bumped when the exported graph changes for the same weights (names, opset, export options).
EXPORT_VERSION = 1
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class ExportError(ValueError):
    """A model cannot be exported or the runtime it needs is missing (one-line message)."""


def weights_digest(model: nn.Module) -> str:
    """sha256 of the model's architecture and every tensor (name, dtype, shape, bytes): the cache key
    of anything derived from the weights, whatever file or device they came from."""
    h = hashlib.sha256()
    cfg = getattr(model, "config", None)
    to_dict = getattr(cfg, "to_dict", None)
    h.update(json.dumps(to_dict() if callable(to_dict) else repr(cfg), sort_keys=True).encode())
    h.update(type(model).__qualname__.encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _export_copy(model: nn.Module) -> nn.Module:
    # A float32 CPU copy in the default layout: the caller's model may be on a GPU, in half precision
    # or channels_last, and must not change.
    clone = copy.deepcopy(model).to("cpu", torch.float32)
    clone.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone.eval()


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = ONNX_OPSET) -> Path:
    """Write `model` as one ONNX file (fp32, weights inside) whose input `input` and output `output`
    have dynamic batch, height and width; written atomically."""
    path = Path(path)
    in_ch = int(getattr(getattr(model, "config", None), "in_ch", 3))
    multiple = int(getattr(model, "input_multiple", 1))
    clone = _export_copy(model)
    side = 16 * multiple
    example = torch.rand(1, in_ch, side, side)
    dims = {0: torch.export.Dim.DYNAMIC, 2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    # The exporter prints progress lines, logs missing torchvision ops and warns about its own
    # deprecations; a library keeps quiet.
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        stack.enter_context(torch.no_grad())
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.callback(logging.getLogger("torch.onnx").setLevel, logging.getLogger("torch.onnx").level)
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(
                clone,
                (example,),
                dynamo=True,
                dynamic_shapes=(dims,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                external_data=False,
                verbose=False,
            )
        except ImportError as exc:
            raise ExportError(f"ONNX export needs the onnx and onnxscript packages ({exc})") from None
        except Exception as exc:  # the exporter raises many types; callers get one line
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{type(model).__name__} cannot be exported to ONNX: {first}") from None
    if program is None:
        raise ExportError("torch.onnx.export returned no program")
    with atomic_write(path) as tmp:
        program.save(str(tmp), external_data=False)
    return path


def export_openvino(model: nn.Module, path: str | Path, *, onnx_path: str | Path | None = None) -> Path:
    """Write `model` as OpenVINO IR (`path` .xml plus its .bin), fp32, dynamic batch/height/width.

    Converted from the model's ONNX export (`onnx_path` when one exists already, else made here).
    """
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("OpenVINO export needs the openvino package: pip install openvino") from None
    path = Path(path)
    if path.suffix.lower() != ".xml":
        raise ExportError(f"{path}: an OpenVINO model is written as a .xml file (plus .bin)")
    with tempfile.TemporaryDirectory(prefix="esrgan-export-") as tmp:
        source = Path(onnx_path) if onnx_path is not None else export_onnx(model, Path(tmp) / "model.onnx")
        converted = ov.convert_model(str(source))
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside the target, then renamed: no half-written IR on failure.
        staged = path.with_name(f".{path.stem}.tmp-{os.getpid()}.xml")
        try:
            ov.save_model(converted, str(staged), compress_to_fp16=False)
            os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
            os.replace(staged, path)
        finally:
            staged.unlink(missing_ok=True)
            staged.with_suffix(".bin").unlink(missing_ok=True)
    return path


def _format(name: str) -> str:
    fmt = name.strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {name!r}: use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def export_model(model: nn.Module, path: str | Path, *, format: str) -> Path:
    """`export_onnx` or `export_openvino` by name (`EXPORT_FORMATS`)."""
    if _format(format) == "onnx":
        return export_onnx(model, path)
    return export_openvino(model, path)


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
    fmt = _format(format)
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
        from esrgan.inference.int8 import Int8Error, quantize_int8

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
    fmt = _format(format)
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
    clone = _export_copy(model)
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


def onnx_cache_dir() -> Path:
    """Where ONNX files for ONNX Runtime are kept: `<user cache>/onnx` (`$ESRGAN_CACHE` moves it)."""
    return user_cache_dir() / "onnx"


def cached_onnx(model: nn.Module, *, cache_dir: str | Path | None = None) -> Path:
    """The ONNX file of `model` for the installed ONNX Runtime, exported on first use and reused after:
    keyed by the weights' tensor hash, the export version and the torch and ONNX Runtime versions."""
    import onnxruntime as ort

    folder = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
    torch_version = torch.__version__.split("+")[0]
    key = f"{weights_digest(model)[:24]}-v{EXPORT_VERSION}-torch{torch_version}-ort{ort.__version__}"
    path = folder / f"{key}.onnx"
    if not path.is_file():
        export_onnx(model, path)
    return path
