"""Weights I/O: every layout round-trips to identical outputs; bad files give one-line WeightsErrors."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterator

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from _weights_fixtures import sample_input, tiny_model, torch_threads
from esrgan.models import RRDBNet
from esrgan.weights import (
    WeightsError,
    canonicalize,
    interpolate_generators,
    interpolate_state_dicts,
    load_generator,
    load_state_dict_file,
    load_tensor_file,
    load_weights,
    save_generator,
    save_pth,
    state_dict_sha256,
)
from esrgan.weights.canonical import expected_shapes, to_old_layout, to_trunk_layout


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


CONFIGS = {
    "x4-1block": {"scale": 4, "num_block": 1},
    "x4-3blocks": {"scale": 4, "num_block": 3},
    "x2-2blocks": {"scale": 2, "num_block": 2},
    "x8": {"scale": 8, "num_block": 1},
    "x2-unshuffle": {"scale": 2, "pixel_unshuffle": True, "num_block": 1},
    "x1-unshuffle": {"scale": 1, "num_block": 2},
    "x4-pixelshuffle": {"scale": 4, "upsampler": "pixelshuffle", "num_block": 1},
    "x4-2dense-4convs-gray": {"num_dense": 2, "num_convs": 4, "in_ch": 1, "out_ch": 1, "num_block": 2},
}


def _prefixed(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def _write(model: RRDBNet, layout: str, folder: pathlib.Path) -> tuple[pathlib.Path, str]:
    """Write `model` in `layout`; return the path and the layout name the loader should report."""
    sd = model.state_dict()
    if layout == "safetensors":
        path = folder / "g.safetensors"
        save_generator(model, path)
        return path, "esrgan-safetensors"
    if layout in ("basicsr", "basicsr-params", "old"):
        path = folder / "g.pth"
        save_pth(sd, model.config, path, layout=layout)  # type: ignore[arg-type]
        return path, "esrgan-old" if layout == "old" else "basicsr"
    path = folder / "g.pth"
    if layout == "module":
        torch.save({"params": _prefixed(sd, "module.")}, path)
    elif layout == "orig_mod":
        torch.save({"state_dict": _prefixed(sd, "_orig_mod.module.")}, path)
    elif layout == "training-checkpoint":
        torch.save({"g_model_state_dict": dict(sd), "iteration": 12, "optimizer": {"lr": 1e-4}}, path)
    elif layout == "model_state_dict":
        path = folder / "g.ckpt"
        torch.save({"model_state_dict": dict(sd)}, path)
    elif layout == "model":
        path = folder / "g.pt"
        torch.save({"model": dict(sd)}, path)
    elif layout == "trunk":
        torch.save(to_trunk_layout(sd), path)
        return path, "esrgan"
    elif layout == "plain-safetensors":
        path = folder / "g.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        raise AssertionError(layout)
    return path, "basicsr"


LAYOUTS = [
    "safetensors",
    "plain-safetensors",
    "basicsr",
    "basicsr-params",
    "module",
    "orig_mod",
    "training-checkpoint",
    "model_state_dict",
    "model",
    "old",
    "trunk",
]


# The old model.N layout only has names for 3 dense blocks of 5 convs per RRDB.
CASES = [
    (layout, name)
    for layout in LAYOUTS
    for name, kwargs in CONFIGS.items()
    if layout != "old" or (kwargs.get("num_dense", 3), kwargs.get("num_convs", 5)) == (3, 5)
]


@pytest.mark.parametrize(("layout", "config_name"), CASES)
def test_round_trip_identical_outputs(tmp_path: pathlib.Path, config_name: str, layout: str) -> None:
    model = tiny_model(**CONFIGS[config_name])
    path, expected_layout = _write(model, layout, tmp_path)
    loaded = load_weights(path)
    assert loaded.layout == expected_layout
    assert loaded.config == model.config
    restored = load_generator(path)
    assert not restored.training
    x = sample_input(model)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))
    assert state_dict_sha256(loaded.state_dict) == state_dict_sha256(model.state_dict())


def test_old_layout_key_names_match_the_2018_release() -> None:
    model = tiny_model(num_block=2)
    keys = set(to_old_layout(model.state_dict(), model.config))
    # Indices of the original sequential model: 0 conv, 1 trunk (sub.N = RRDBs, sub.nb = trunk conv),
    # 2/5 upsample, 3/6 convs, 4/7 lrelu, 8 HR conv, 9 lrelu, 10 last conv.
    for key in (
        "model.0.weight",
        "model.1.sub.0.RDB1.conv1.0.weight",
        "model.1.sub.1.RDB3.conv5.0.bias",
        "model.1.sub.2.weight",
        "model.3.weight",
        "model.6.weight",
        "model.8.weight",
        "model.10.bias",
    ):
        assert key in keys
    assert len(keys) == len(model.state_dict())


def test_trunk_layout_key_names() -> None:
    model = tiny_model()
    keys = set(to_trunk_layout(model.state_dict()))
    for key in ("conv_first.weight", "RRDB_trunk.0.RDB2.conv3.weight", "trunk_conv.bias", "upconv1.weight"):
        assert key in keys
    assert {"upconv2.weight", "HRconv.weight", "conv_last.bias"} <= keys


def test_params_ema_is_preferred_over_params(tmp_path: pathlib.Path) -> None:
    ema, raw = tiny_model(), tiny_model()
    with torch.no_grad():
        for p in raw.parameters():
            p.add_(1.0)
    path = tmp_path / "both.pth"
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, path)
    sd = load_state_dict_file(path)
    assert all(torch.equal(sd[k], v) for k, v in ema.state_dict().items())


def test_canonicalize_reports_layout_and_infers_from_shapes() -> None:
    model = tiny_model(num_block=3, num_feat=12, num_grow_ch=6, scale=8)
    sd, config, layout = canonicalize({"params": _prefixed(model.state_dict(), "module.")})
    assert layout == "basicsr"
    assert config == model.config
    assert set(sd) == set(model.state_dict())


def test_expected_shapes_match_the_model() -> None:
    for kwargs in CONFIGS.values():
        model = tiny_model(**kwargs)
        actual = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert actual == expected_shapes(model.config)


def test_metadata_wins_over_inference(tmp_path: pathlib.Path) -> None:
    # The residual scale is invisible in shapes: only the metadata can restore a non-default one.
    model = tiny_model(res_scale=0.1)
    path = tmp_path / "g.safetensors"
    save_generator(model, path, metadata={"note": "res 0.1"})
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert json.loads(meta["esrgan.arch"])["res_scale"] == 0.1
    assert meta["format_version"] == "1" and meta["note"] == "res 0.1"
    restored = load_generator(path)
    assert restored.config.res_scale == 0.1
    x = sample_input(model)
    with torch.no_grad():
        assert torch.equal(restored(x), model(x))
        default = tiny_model()
        assert not torch.equal(default(x), model(x))


def test_metadata_contradicting_shapes_is_an_error(tmp_path: pathlib.Path) -> None:
    model = tiny_model(num_block=1)
    path = tmp_path / "lying.safetensors"
    meta = {"esrgan.arch": json.dumps({**model.config.to_dict(), "num_block": 2}), "format_version": "1"}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
    with pytest.raises(
        WeightsError, match=r"lying\.safetensors: weights do not fit the architecture \(missing"
    ):
        load_generator(path)


def test_save_generator_takes_off_parallel_wrappers(tmp_path: pathlib.Path) -> None:
    model = tiny_model()
    save_generator(torch.nn.DataParallel(model), tmp_path / "g.safetensors")  # type: ignore[arg-type]
    with safe_open(str(tmp_path / "g.safetensors"), framework="pt") as fh:
        assert set(fh.keys()) == set(model.state_dict())
    with pytest.raises(TypeError, match="expects an RRDBNet"):
        save_generator(torch.nn.Conv2d(1, 1, 1), tmp_path / "c.safetensors")  # type: ignore[arg-type]


def test_save_generator_is_atomic_and_leaves_only_the_file(tmp_path: pathlib.Path) -> None:
    model = tiny_model()
    save_generator(model, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="reserved"):
        save_generator(model, tmp_path / "b.safetensors", metadata={"esrgan.arch": "{}"})
    with pytest.raises(ValueError, match="str to str"):
        save_generator(model, tmp_path / "c.safetensors", metadata={"alpha": 0.5})  # type: ignore[dict-item]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors"]


def test_old_layout_refuses_architectures_it_cannot_name(tmp_path: pathlib.Path) -> None:
    model = tiny_model(num_dense=2)
    with pytest.raises(ValueError, match="3 dense blocks of 5 convs"):
        save_pth(model.state_dict(), model.config, tmp_path / "g.pth", layout="old")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("layout", ["basicsr", "basicsr-params", "old"])
def test_pth_outputs_hold_plain_tensors_only(tmp_path: pathlib.Path, layout: str) -> None:
    model = tiny_model()
    path = tmp_path / "g.pth"
    save_pth(model.state_dict(), model.config, path, layout=layout)  # type: ignore[arg-type]
    obj = torch.load(path, weights_only=True)
    if layout == "old":
        assert "model.0.weight" in obj
    else:
        top = "params_ema" if layout == "basicsr" else "params"
        assert list(obj) == [top]
        assert set(obj[top]) == set(model.state_dict())


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (self.marker,))


def test_pickles_with_code_are_refused_not_run(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params": tiny_model().state_dict(), "payload": _RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(WeightsError, match=r"evil\.pth: refusing to unpickle"):
        load_generator(path)
    assert not marker.exists()


def test_file_errors_name_the_file_and_reason(tmp_path: pathlib.Path) -> None:
    with pytest.raises(WeightsError, match=r"missing\.pth: file not found"):
        load_generator(tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="not a registered model"):
        load_generator("no-such-model")
    odd = tmp_path / "weights.onnx"
    odd.write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"weights\.onnx: unsupported weights format"):
        load_generator(odd)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(WeightsError, match=r"junk\.pth: not a readable PyTorch checkpoint"):
        load_generator(junk)
    model = tiny_model()
    save_generator(model, tmp_path / "g.safetensors")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes((tmp_path / "g.safetensors").read_bytes()[:-100])
    with pytest.raises(WeightsError, match=r"cut\.safetensors: not a readable safetensors file"):
        load_generator(truncated)


def test_tensor_files_read_plain_state_dicts_and_name_bad_ones(tmp_path: pathlib.Path) -> None:
    # The one reader of VGG weights and LPIPS heads: safetensors, or a weights-only PyTorch file.
    sd = {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.randn(4)}
    save_file(sd, tmp_path / "vgg.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pth")
    for name in ("vgg.safetensors", "wrapped.pth"):
        got = load_tensor_file(tmp_path / name, what="VGG weights")
        assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd)
    with pytest.raises(FileNotFoundError, match=r"gone\.pth: VGG weights file not found"):
        load_tensor_file(tmp_path / "gone.pth", what="VGG weights")
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pth")
    with pytest.raises(WeightsError, match=r"no_tensors\.pth: LPIPS heads file is not a state dict"):
        load_tensor_file(tmp_path / "no_tensors.pth", what="LPIPS heads")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk\.pth: not a readable PyTorch checkpoint"):
        load_tensor_file(tmp_path / "junk.pth")
    marker = tmp_path / "pwned"
    torch.save({"w": torch.zeros(1), "payload": _RunsCodeWhenUnpickled(marker)}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match=r"evil\.pth: refusing to unpickle"):
        load_tensor_file(tmp_path / "evil.pth")
    assert not marker.exists()


def test_weights_that_fit_no_rrdbnet_are_rejected(tmp_path: pathlib.Path) -> None:
    from esrgan.models import VGGStyleDiscriminator

    path = tmp_path / "netD.pth"
    torch.save({"params": VGGStyleDiscriminator().state_dict()}, path)
    with pytest.raises(WeightsError, match=r"netD\.pth: not an RRDBNet generator"):
        load_generator(path)
    sd = dict(tiny_model(num_block=2).state_dict())
    del sd["body.1.rdb2.conv3.weight"]
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"broken\.pth: weights do not fit the architecture"):
        load_generator(path)
    sd = dict(tiny_model(num_block=2).state_dict())
    sd["body.1.rdb1.conv2.weight"] = torch.zeros(4, 13, 3, 3)
    torch.save(sd, path)
    with pytest.raises(WeightsError, match=r"body\.1\.rdb1\.conv2\.weight has shape \(4, 13, 3, 3\)"):
        load_generator(path)


def test_sha256_is_format_and_order_independent() -> None:
    sd = tiny_model().state_dict()
    reordered = dict(reversed(list(sd.items())))
    assert state_dict_sha256(reordered) == state_dict_sha256(sd)
    changed = dict(sd)
    changed["conv_last.bias"] = changed["conv_last.bias"] + 1e-3
    assert state_dict_sha256(changed) != state_dict_sha256(sd)


def test_interpolate_state_dicts() -> None:
    a, b = tiny_model().state_dict(), tiny_model(num_feat=8).state_dict()
    b = {k: v + 1.0 for k, v in b.items()}
    assert all(torch.equal(v, a[k]) for k, v in interpolate_state_dicts(a, b, 0.0).items())
    assert all(torch.equal(v, b[k]) for k, v in interpolate_state_dicts(a, b, 1.0).items())
    mixed = interpolate_state_dicts(a, b, 0.8)
    assert all(torch.allclose(v, 0.2 * a[k] + 0.8 * b[k], atol=1e-6) for k, v in mixed.items())
    for alpha in (-0.1, 1.01):
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            interpolate_state_dicts(a, b, alpha)
    with pytest.raises(WeightsError, match="different keys"):
        interpolate_state_dicts(a, {k: v for k, v in b.items() if k != "conv_hr.bias"}, 0.5)


def test_interpolate_generators_refuses_mismatched_architectures(tmp_path: pathlib.Path) -> None:
    save_generator(tiny_model(num_block=1), tmp_path / "psnr.safetensors")
    save_generator(tiny_model(num_block=2), tmp_path / "gan.safetensors")
    torch.save({"params": tiny_model(num_block=1).state_dict()}, tmp_path / "gan1.pth")
    with pytest.raises(WeightsError, match="architectures differ \\(num_block 1 vs 2\\)"):
        interpolate_generators(tmp_path / "psnr.safetensors", tmp_path / "gan.safetensors", 0.8)
    model = interpolate_generators(tmp_path / "psnr.safetensors", tmp_path / "gan1.pth", 0.5)
    assert model.config == tiny_model(num_block=1).config


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_interpolate_state_dicts_across_devices() -> None:
    from esrgan.weights import interpolate_state_dicts

    a = {"w": torch.zeros(3)}
    b = {"w": torch.ones(3, device="cuda")}
    out = interpolate_state_dicts(a, b, 0.8)
    assert out["w"].device.type == "cpu"
    assert torch.allclose(out["w"], torch.full((3,), 0.8))
