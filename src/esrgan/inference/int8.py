"""int8 inference on the CPU: the generator quantised with NNCF and run by OpenVINO.

Plain post-training quantisation of an RRDBNet loses too much: about 1 dB of Set5 PSNR for the 23-block
models, 0.36 dB on our 1.1M-parameter one, although its output is 40-44 dB from fp32's (the error is
structured, not noise). Two things win it back (`quantize_int8`): activation ranges that cover every
calibration value instead of NNCF's average of per-image extremes, and SmoothQuant on the
convolutions, which moves the very different per-channel ranges of a dense block's concatenated input
into the weights. The first and last convolutions stay fp32. Activation statistics come from 8
shipped crops and the drop is measured on 8 others (`esrgan/inference/calibration`, public-domain and
CC0 photos, LR made with MATLAB bicubic as in the evaluation protocol); neither Set5 nor Set14 is
used. Only when the PSNR-Y drop on those crops exceeds `max_drop` does NNCF's accuracy control put the
costliest layers back to fp32 (slow on a big network).

The quantised model is made once per weights and settings and cached (`cached_int8`, keyed by the
weights' tensor hash, the recipe version, the OpenVINO and NNCF versions and `max_drop`): seconds for
a small model, about a minute for a 23-block one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from esrgan.inference.runtime import openvino_infer
from esrgan.utils import user_cache_dir

# Bumped when the quantisation recipe changes for the same weights and settings (crops, preset, scope).
INT8_VERSION = 2
DEFAULT_MAX_DROP_DB = 0.15
"""PSNR-Y drop (dB) allowed on the validation crops before the accuracy control steps in."""
SMOOTH_QUANT_ALPHA = 0.5
"""How much of each input channel's range SmoothQuant moves into the weights (0.3-0.7 measured alike)."""
_CALIBRATION = "esrgan.inference.calibration"
# OpenVINO runs the fp32 parts of the graph in bf16 on CPUs with native bf16 unless told otherwise.
_F32 = {"INFERENCE_PRECISION_HINT": "f32"}


@dataclass(frozen=True)
class Int8Drop:
    """A model's measured quality in int8 against fp32: `esrgan test --precision int8` and
    `--precision fp32` on Set5 and Set14 (x4, Y channel, regenerated LR), same machine."""

    set5_db: float
    set14_db: float
    set5_lpips: float
    """LPIPS change (int8 minus fp32; positive is worse)."""
    set14_lpips: float

    @property
    def worst_db(self) -> float:
        return max(self.set5_db, self.set14_db)

    def summary(self) -> str:
        return (
            f"{-self.set5_db:+.2f} dB Set5, {-self.set14_db:+.2f} dB Set14 "
            f"(LPIPS {self.set5_lpips:+.3f} / {self.set14_lpips:+.3f})"
        )


# Measured with INT8_VERSION 2 and the default max_drop on a 2-core AMD EPYC with AVX-512 VNNI, OpenVINO
# 2026.4.1, NNCF 3.4.0 (re-measure when any of these changes); the commands are in the README's Speed
# section and tests/test_release_models.py checks ours again.
KNOWN_DROPS: dict[str, Int8Drop] = {
    # fp32 31.155 / 27.989 dB, LPIPS 0.2328 / 0.3289; int8 31.135 / 27.975, 0.2335 / 0.3301
    "esrgan-x4-psnr": Int8Drop(set5_db=0.020, set14_db=0.014, set5_lpips=0.001, set14_lpips=0.001),
    # fp32 30.336 / 27.436, 0.1927 / 0.2725; int8 30.321 / 27.418, 0.1963 / 0.2763
    "esrgan-x4-gan": Int8Drop(set5_db=0.014, set14_db=0.018, set5_lpips=0.004, set14_lpips=0.004),
    # fp32 30.714 / 27.715, 0.2031 / 0.2933; int8 30.675 / 27.686, 0.2048 / 0.2947
    "esrgan-x4-interp": Int8Drop(set5_db=0.039, set14_db=0.029, set5_lpips=0.002, set14_lpips=0.001),
    # fp32 30.392 / 26.641, 0.1952 / 0.2557; int8 30.235 / 26.555, 0.2016 / 0.2626
    "realsr-df2k-x4": Int8Drop(set5_db=0.156, set14_db=0.086, set5_lpips=0.006, set14_lpips=0.007),
    # fp32 26.638 / 25.432, 0.2701 / 0.3235; int8 26.666 / 25.356, 0.2752 / 0.3246 (Set5 gains)
    "realesrgan-x4plus": Int8Drop(set5_db=-0.028, set14_db=0.077, set5_lpips=0.005, set14_lpips=0.001),
}


def known_drop(model: str) -> Int8Drop | None:
    """The measured int8 drop of a registered model name (None: not measured)."""
    return KNOWN_DROPS.get(model)


def drops_help() -> str:
    """The measured drops, one clause per model, for --help texts."""
    if not KNOWN_DROPS:
        return "not measured yet"
    return "; ".join(f"{name} {drop.summary()}" for name, drop in KNOWN_DROPS.items())


class Int8Error(ValueError):
    """int8 inference cannot be set up (missing package, unsupported model): one-line message."""


def int8_available() -> bool:
    """Whether OpenVINO and NNCF are installed (found, not imported: NNCF takes 1.5 s to import, and a
    cached int8 model never needs it)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None and find_spec("nncf") is not None


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        raise Int8Error(f"--precision int8 needs {package}: pip install 'esrgan[int8]'") from None


def _require() -> None:
    if not int8_available():
        raise Int8Error("--precision int8 needs OpenVINO and NNCF: pip install 'esrgan[int8]'")


@dataclass(frozen=True)
class Int8Model:
    """A quantised model in the cache and what its making measured on the validation crops."""

    path: Path
    """OpenVINO IR (.xml, with its .bin)."""
    max_drop_db: float
    fp32_psnr: float
    """Mean PSNR-Y of the fp32 network on the validation crops (dB)."""
    int8_psnr: float
    int8_convs: int
    """Convolutions that run in int8."""
    fp32_convs: int
    """Convolutions kept in fp32 (the first and last, plus what the accuracy control put back)."""
    seconds: float
    """How long making it took."""

    @property
    def drop_db(self) -> float:
        return self.fp32_psnr - self.int8_psnr

    def summary(self) -> str:
        return (
            f"int8 model: {self.int8_convs} of {self.int8_convs + self.fp32_convs} convolutions in int8; "
            f"PSNR-Y on the calibration check crops {self.int8_psnr:.2f} dB vs fp32 {self.fp32_psnr:.2f} "
            f"(drop {self.drop_db:.3f} dB, allowed {self.max_drop_db:g})"
        )

    def _to_json(self) -> str:
        data = asdict(self)
        data["path"] = self.path.name
        return json.dumps(data, indent=1)

    @classmethod
    def _from_json(cls, path: Path) -> Int8Model:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["path"] = path.with_suffix(".xml")
        return cls(**data)


def calibration_crops() -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The shipped HR crops as (3, H, W) float tensors in [0, 1]: (statistics crops, validation crops)."""
    from PIL import Image

    stats: list[torch.Tensor] = []
    check: list[torch.Tensor] = []
    folder = resources.files(_CALIBRATION)
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".png"):
            continue
        with entry.open("rb") as fh, Image.open(fh) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)
        # `_0`/`_2` crops give statistics, `_1`/`_3` check the drop (see the folder's README).
        (stats if int(entry.name.rsplit("_", 1)[1].split(".")[0]) % 2 == 0 else check).append(x)
    if not stats or not check:
        raise Int8Error(f"the int8 calibration crops are missing from the package ({folder})")
    return stats, check


def low_res(hr: torch.Tensor, scale: int) -> np.ndarray:
    """An HR crop (3, H, W) made LR the way the evaluation protocol does (MATLAB bicubic), (1, 3, h, w)."""
    from esrgan.data.imresize import degrade

    lr = degrade(hr.unsqueeze(0).to(torch.float64), scale)
    return lr.to(torch.float32).numpy()


_infer = openvino_infer  # the name the quantiser and its tests use


def _mean_psnr(outputs: list[np.ndarray], targets: list[torch.Tensor], scale: int) -> float:
    from esrgan.metrics import psnr

    values = [
        psnr(torch.from_numpy(o).clamp_(0.0, 1.0), t.unsqueeze(0), crop_border=scale).item()
        for o, t in zip(outputs, targets, strict=True)
    ]
    return float(np.mean(values))


def _convolutions(model: Any) -> tuple[list[str], int]:
    """Names of the model's convolutions in graph order, and how many have int8 weights."""
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]
    quantised = 0
    for op in convs:
        node = op.input_value(1).get_node()
        # int8 weights: an i8 constant behind Convert/Multiply (compressed) or a FakeQuantize.
        for _ in range(4):
            kind = node.get_type_name()
            if kind == "FakeQuantize" or (
                kind == "Constant" and node.get_element_type().get_type_name() in ("i8", "u8")
            ):
                quantised += 1
                break
            if node.get_input_size() == 0:
                break
            node = node.input_value(0).get_node()
    return [op.get_friendly_name() for op in convs], quantised


def quantize_int8(
    model: nn.Module, path: str | Path, *, max_drop: float = DEFAULT_MAX_DROP_DB, progress: bool = False
) -> Int8Model:
    """Quantise `model` (a generator with `.scale`: RRDBNet, SRVGGNetCompact) to an int8 OpenVINO IR at `path`
    (.xml plus .bin plus a .json report), keeping the PSNR-Y drop on the validation crops within
    `max_drop` dB; written atomically. `progress`: show NNCF's progress bars on stderr (they are
    discarded otherwise)."""
    _require()
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    from esrgan.inference.export import export_onnx

    path = Path(path)
    scale = getattr(model, "scale", None)
    if not isinstance(scale, int) or scale < 1:
        raise Int8Error("int8 needs a generator with an integer .scale")
    if not max_drop > 0:
        raise Int8Error(f"max_drop must be positive, got {max_drop}")
    start = time.monotonic()
    stats_hr, check_hr = calibration_crops()
    stats = [low_res(x, scale) for x in stats_hr]
    check = [(low_res(x, scale), x) for x in check_hr]
    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="esrgan-int8-") as tmp:
        fp32 = core.read_model(export_onnx(model, Path(tmp) / "model.onnx"))
        names, _ = _convolutions(fp32)

        def validate(compiled: Any, items: Any) -> float:
            items = list(items)
            outputs = [_infer(compiled, lr) for lr, _ in items]
            return _mean_psnr(outputs, [hr for _, hr in items], scale)

        options: dict[str, Any] = dict(
            preset=nncf.QuantizationPreset.MIXED,  # asymmetric activations: LeakyReLU outputs
            subset_size=len(stats),
            ignored_scope=nncf.IgnoredScope(names=[names[0], names[-1]]),
            # SmoothQuant needs the transformer patterns switched on; this graph has only convolutions.
            model_type=nncf.ModelType.TRANSFORMER,
        )
        advanced = AdvancedQuantizationParameters(
            # Activation ranges from the extreme values over all crops, not NNCF's mean of the per-crop
            # extremes: clipping bright, saturated images cost ours 0.33 dB on BSDS500-val crops, the
            # full range 0.09.
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
            # A dense block's convolution reads the concatenation of tensors with very different ranges,
            # so one activation scale fits none of them; SmoothQuant moves per-channel scales into the
            # weights. With it, every convolution but the first and last stays int8: on BSDS500-val
            # crops ours lost 0.01 dB, realsr-df2k-x4 0.05 (0.45 without it).
            smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=SMOOTH_QUANT_ALPHA, matmul=-1),
        )
        fp32_psnr = validate(core.compile_model(fp32, "CPU", _F32), check)
        nncf_log = logging.getLogger("nncf")
        level = nncf_log.level
        nncf_log.setLevel(logging.ERROR)  # NNCF reports every step; the caller prints one summary
        bars = sys.stderr if progress else io.StringIO()  # NNCF draws its bars on stdout
        try:
            with contextlib.redirect_stdout(bars):
                quantised = nncf.quantize(fp32, nncf.Dataset(stats), advanced_parameters=advanced, **options)
                int8_psnr = validate(core.compile_model(quantised, "CPU", _F32), check)
                if fp32_psnr - int8_psnr > max_drop:
                    # Rarely needed after SmoothQuant, and slow on a big network (the ranking runs it
                    # about 75 times per round): put the costliest layers back to fp32.
                    quantised = nncf.quantize_with_accuracy_control(
                        fp32,
                        nncf.Dataset(stats),
                        nncf.Dataset(check),
                        validation_fn=validate,
                        max_drop=max_drop,
                        drop_type=nncf.DropType.ABSOLUTE,
                        advanced_quantization_parameters=advanced,
                        **options,
                    )
                    int8_psnr = validate(core.compile_model(quantised, "CPU", _F32), check)
        finally:
            nncf_log.setLevel(level)
    convs, in_int8 = _convolutions(quantised)
    report = Int8Model(
        path=path,
        max_drop_db=float(max_drop),
        fp32_psnr=fp32_psnr,
        int8_psnr=int8_psnr,
        int8_convs=in_int8,
        fp32_convs=len(convs) - in_int8,
        seconds=time.monotonic() - start,
    )
    _save(quantised, report)
    return report


def _save(quantised: Any, report: Int8Model) -> None:
    """IR and report written beside the target under temporary names, then renamed (.json last: its
    presence says the pair before it is whole)."""
    import openvino as ov

    path = report.path
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.stem}.tmp-{os.getpid()}.xml")
    staged_json = staged.with_suffix(".json")
    try:
        ov.save_model(quantised, str(staged), compress_to_fp16=False)
        staged_json.write_text(report._to_json(), encoding="utf-8")
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(staged, path)
        os.replace(staged_json, path.with_suffix(".json"))
    finally:
        for leftover in (staged, staged.with_suffix(".bin"), staged_json):
            leftover.unlink(missing_ok=True)


def int8_cache_dir() -> Path:
    """Where quantised models are kept: `<user cache>/int8` (`$ESRGAN_CACHE` moves it)."""
    return user_cache_dir() / "int8"


def cached_int8_path(
    model: nn.Module, *, max_drop: float = DEFAULT_MAX_DROP_DB, cache_dir: str | Path | None = None
) -> Path:
    """Where `cached_int8` keeps the quantised `model` (.xml)."""
    from esrgan.inference.export import weights_digest

    folder = Path(cache_dir) if cache_dir is not None else int8_cache_dir()
    versions = f"ov{_version('openvino')}-nncf{_version('nncf')}"
    return folder / f"{weights_digest(model)[:24]}-v{INT8_VERSION}-{versions}-drop{max_drop:g}.xml"


def cached_int8(
    model: nn.Module,
    *,
    max_drop: float = DEFAULT_MAX_DROP_DB,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Int8Model:
    """The int8 model of `model` from the cache, quantised on first use (see `quantize_int8`)."""
    path = cached_int8_path(model, max_drop=max_drop, cache_dir=cache_dir)
    report = path.with_suffix(".json")
    if report.is_file() and path.is_file() and path.with_suffix(".bin").is_file():
        try:
            return Int8Model._from_json(report)
        except (ValueError, TypeError, KeyError):
            pass  # unreadable report: make the model again
    return quantize_int8(model, path, max_drop=max_drop, progress=progress)
