"""Device and precision resolution, and the Upscaler's contract (shapes, range, validation)."""

from __future__ import annotations

import warnings

import pytest
import torch

from esrgan.inference import (
    DeviceError,
    Upscaler,
    resolve_device,
    resolve_precision,
    upscale_image,
)
from esrgan.inference.precision import cpu_has_native_bf16, cpu_has_native_fp16
from esrgan.io import ImageData
from esrgan.models import RRDBNet

CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _tiny(seed: int = 0, **kw) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(**({"num_feat": 8, "num_block": 1, "num_grow_ch": 4} | kw)).eval()


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * torch.log10((a.double() - b.double()).pow(2).mean()).item()


# --------------------------------------------------------------------------------------------- device


def test_resolve_device_cpu_and_auto():
    assert resolve_device("cpu") == CPU
    assert resolve_device(" CPU ") == CPU
    assert resolve_device(torch.device("cpu")) == CPU
    auto = resolve_device("auto")
    assert auto.type == ("cuda" if torch.cuda.is_available() else auto.type)
    assert auto.type in ("cpu", "cuda", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS is available here")
def test_unavailable_mps_is_a_clear_error():
    with pytest.raises(DeviceError, match="MPS is not available"):
        resolve_device("mps")


def test_unknown_device():
    with pytest.raises(DeviceError, match="unknown device 'tpu9'"):
        resolve_device("tpu9")


# ------------------------------------------------------------------------------------------ precision


def test_auto_precision_on_cpu_follows_native_bf16():
    expected = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    assert resolve_precision("auto", CPU) == expected


def test_explicit_precisions_on_cpu():
    assert resolve_precision("fp32", CPU) == torch.float32
    assert resolve_precision("FP32", "cpu") == torch.float32
    with pytest.raises(DeviceError, match="unknown precision 'fp64'"):
        resolve_precision("fp64", CPU)


@pytest.mark.skipif(cpu_has_native_fp16(), reason="this CPU has fp16 units")
def test_fp16_on_cpu_without_fp16_units_is_refused():
    with pytest.raises(DeviceError, match="fp16 needs a CPU with AMX-FP16"):
        resolve_precision("fp16", CPU)


@pytest.mark.skipif(cpu_has_native_bf16(), reason="this CPU has native bf16")
def test_bf16_on_cpu_without_native_support_warns():
    with pytest.warns(RuntimeWarning, match="emulated"):
        assert resolve_precision("bf16", CPU) == torch.bfloat16


@needs_cuda
def test_cuda_auto_is_fp16():
    assert resolve_precision("auto", torch.device("cuda")) == torch.float16


def test_training_and_inference_share_one_policy():
    import esrgan.device
    import esrgan.inference

    assert esrgan.inference.resolve_device is esrgan.device.resolve_device
    assert esrgan.inference.resolve_precision is esrgan.device.resolve_precision
    assert esrgan.inference.DeviceError is esrgan.device.DeviceError
    assert resolve_precision("auto", CPU, training=True) == resolve_precision("auto", CPU)


def test_training_runtime_takes_the_policy_and_reports_its_errors_as_training_errors():
    from esrgan.training import Config, TrainingError
    from esrgan.training.runtime import start_runtime

    rt = start_runtime(Config(device="cpu", precision="auto"))
    expected = resolve_precision("auto", CPU, training=True)
    assert rt.device == CPU and rt.amp_dtype == (None if expected == torch.float32 else expected)
    assert not rt.grad_scaler().is_enabled()
    with pytest.raises(TrainingError, match="unknown device 'tpu9'"):
        start_runtime(Config(device="tpu9"))


@pytest.mark.skipif(cpu_has_native_fp16(), reason="this CPU has fp16 units")
def test_fp16_on_cpu_without_fp16_units_is_honoured_for_training_with_a_warning():
    from esrgan.device import needs_grad_scaler

    with pytest.warns(RuntimeWarning, match="emulated"):
        dtype = resolve_precision("fp16", CPU, training=True)
    assert dtype == torch.float16 and needs_grad_scaler(dtype)


@needs_cuda
def test_cuda_auto_for_training_prefers_bf16():
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_precision("auto", torch.device("cuda"), training=True) == expected


# ------------------------------------------------------------------------------------------- upscaler


def test_upscaler_output_contract():
    up = Upscaler(_tiny(), device="cpu", precision="fp32", tile=0)
    assert up.scale == 4 and up.precision == "fp32" and up.device == CPU
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    y = up.upscale(x)
    assert y.shape == (2, 3, 36, 28) and y.dtype == torch.float32 and y.device == CPU
    assert y.min() >= 0 and y.max() <= 1
    y.add_(0)  # an ordinary tensor (not an inference-mode one): callers may edit it in place
    assert not y.requires_grad


def test_bf16_close_to_fp32_on_cpu():
    model = _tiny(seed=1)
    x = torch.rand(1, 3, 16, 16)
    ref = Upscaler(model, device="cpu", precision="fp32", tile=0).upscale(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on CPUs without it
        up = Upscaler(_tiny(seed=1), device="cpu", precision="bf16", tile=0)
    out = up.upscale(x)
    assert up.precision == "bf16" and out.dtype == torch.float32
    assert _psnr(out, ref) > 35


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_matches_cpu(precision):
    x = torch.rand(1, 3, 40, 36)
    ref = Upscaler(_tiny(seed=2), device="cpu", precision="fp32", tile=0).upscale(x)
    up = Upscaler(_tiny(seed=2), device="cuda", precision=precision, tile=24, tile_overlap=8)
    out = up.upscale(x)
    assert out.device == CPU and out.dtype == torch.float32
    assert _psnr(out, ref) > (50 if precision == "fp32" else 35)


@needs_cuda
def test_cuda_auto_tile_uses_free_memory():
    up = Upscaler(_tiny(), device="cuda", precision="auto", tile="auto")
    assert up.tile_for(64, 64) == 0
    assert up.upscale(torch.rand(1, 3, 20, 20)).shape == (1, 3, 80, 80)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": -1}, "tile must be"),
        ({"tile": "big"}, "tile must be"),
        ({"tile": 1.5}, "tile must be"),
        ({"tile_overlap": -2}, "tile_overlap"),
        ({"tile": 16, "tile_overlap": 16}, "larger than tile_overlap"),
        ({"precision": "int4"}, "unknown precision .int4.: use one of auto, fp32, bf16, fp16, int8"),
        ({"device": "quantum"}, "unknown device"),
    ],
)
def test_upscaler_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Upscaler(_tiny(), **kwargs)


def test_upscaler_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"torch\.nn\.Module"):
        Upscaler("not a model")  # type: ignore[arg-type]
    up = Upscaler(_tiny(), device="cpu", precision="fp32", tile=0)
    with pytest.raises(ValueError, match="3 channels"):
        up.upscale(torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="N,C,H,W"):
        up.upscale(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="float"):
        up.upscale(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# --------------------------------------------------------------------------------------- upscale_image


def test_grayscale_runs_as_replicated_rgb_and_comes_back_gray():
    up = Upscaler(_tiny(seed=4), device="cpu", precision="fp32", tile=0)
    gray = torch.rand(1, 10, 12)
    out = upscale_image(up, ImageData(pixels=gray, bit_depth=16))
    assert out.pixels.shape == (1, 40, 48) and out.grayscale and out.bit_depth == 16
    rgb = up.upscale(gray.expand(3, -1, -1)[None])[0]
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    torch.testing.assert_close(out.pixels[0], luma)


def test_alpha_upscaled_bicubic_and_colour_unaffected():
    up = Upscaler(_tiny(seed=5), device="cpu", precision="fp32", tile=0)
    rgb, alpha = torch.rand(3, 8, 10), torch.rand(1, 8, 10)
    with_alpha = upscale_image(up, ImageData(pixels=rgb, alpha=alpha))
    without = upscale_image(up, ImageData(pixels=rgb))
    torch.testing.assert_close(with_alpha.pixels, without.pixels)
    expected = torch.nn.functional.interpolate(alpha[None], scale_factor=4, mode="bicubic")[0].clamp(0, 1)
    torch.testing.assert_close(with_alpha.alpha, expected)
    assert with_alpha.mode == "RGBA"


def test_single_channel_model_handles_rgb_per_channel():
    model = _tiny(seed=6, in_ch=1, out_ch=1)
    up = Upscaler(model, device="cpu", precision="fp32", tile=0)
    rgb = torch.rand(3, 6, 6)
    out = upscale_image(up, ImageData(pixels=rgb))
    assert out.pixels.shape == (3, 24, 24)
    torch.testing.assert_close(out.pixels[1:2], up.upscale(rgb[1:2][None])[0])
