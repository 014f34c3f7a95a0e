"""Export a generator for other runtimes (ONNX, OpenVINO IR) with dynamic batch, height and width (checked
against PyTorch by `esrgan.inference.export_check`).

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
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from esrgan.utils import atomic_write, user_cache_dir

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


def export_copy(model: nn.Module) -> nn.Module:
    """A frozen float32 CPU copy of `model` in eval mode: what is exported and compared."""
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
    clone = export_copy(model)
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


def check_format(name: str) -> str:
    """The export format `name` names (`EXPORT_FORMATS`, any case); ExportError for another."""
    fmt = name.strip().lower()
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {name!r}: use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def export_model(model: nn.Module, path: str | Path, *, format: str) -> Path:
    """`export_onnx` or `export_openvino` by name (`EXPORT_FORMATS`)."""
    if check_format(format) == "onnx":
        return export_onnx(model, path)
    return export_openvino(model, path)


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


def openvino_cache_dir() -> Path:
    """Where fp32 OpenVINO IRs are kept: `<user cache>/openvino` (`$ESRGAN_CACHE` moves it)."""
    return user_cache_dir() / "openvino"


def cached_openvino(model: nn.Module, *, cache_dir: str | Path | None = None) -> Path:
    """The fp32 OpenVINO IR (.xml) of `model` for the installed OpenVINO, converted on first use and
    reused after (keyed like `cached_onnx`); converted from the cached ONNX file when ONNX Runtime is
    installed, so the slow export runs once for both runtimes."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ov_version = version("openvino")
    except PackageNotFoundError:
        raise ExportError("OpenVINO needs the openvino package: pip install openvino") from None
    folder = Path(cache_dir) if cache_dir is not None else openvino_cache_dir()
    torch_version = torch.__version__.split("+")[0]
    path = folder / f"{weights_digest(model)[:24]}-v{EXPORT_VERSION}-torch{torch_version}-ov{ov_version}.xml"
    if path.is_file() and path.with_suffix(".bin").is_file():
        return path
    onnx_path = None
    with contextlib.suppress(ImportError):
        onnx_path = cached_onnx(model, cache_dir=cache_dir)
    return export_openvino(model, path, onnx_path=onnx_path)
