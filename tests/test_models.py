"""Architecture tests: shapes, BasicSR key names, validation, VGG layout and discriminator."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from esrgan.models import RRDBNet, VGGFeatureExtractor, VGGStyleDiscriminator, vgg_layer_names


def tiny(**kw) -> RRDBNet:
    base = dict(num_feat=8, num_block=2, num_grow_ch=4)
    base.update(kw)
    return RRDBNet(**base)


@pytest.mark.parametrize(
    ("scale", "unshuffle", "ups"),
    [(1, True, 2), (2, True, 2), (2, False, 1), (4, False, 2), (8, False, 3)],
)
def test_rrdbnet_output_shape_and_upsampling_convs(scale: int, unshuffle: bool, ups: int) -> None:
    m = tiny(scale=scale, pixel_unshuffle=unshuffle)
    y = m(torch.rand(2, 3, 12, 16))
    assert y.shape == (2, 3, 12 * scale, 16 * scale)
    keys = m.state_dict().keys()
    assert {k.split(".")[0] for k in keys if k.startswith("conv_up")} == {
        f"conv_up{i}" for i in range(1, ups + 1)
    }


def test_rrdbnet_keys_are_basicsr_names() -> None:
    m = tiny(num_block=3)
    keys = list(m.state_dict())
    assert keys[0] == "conv_first.weight"
    assert "body.2.rdb3.conv5.weight" in keys
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"):
        assert f"{name}.weight" in keys and f"{name}.bias" in keys
    # residual scaling is a constant: only conv weights/biases in the state dict
    assert all(k.endswith((".weight", ".bias")) for k in keys)
    assert len(keys) == 2 * (1 + 3 * 3 * 5 + 1 + 2 + 2)


def test_rrdbnet_configurable_dense_blocks() -> None:
    m = tiny(num_dense=2, num_convs=4, num_block=1)
    keys = set(m.state_dict())
    assert "body.0.rdb2.conv4.weight" in keys
    assert "body.0.rdb3.conv1.weight" not in keys and "body.0.rdb1.conv5.weight" not in keys
    assert m(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 3}, "unsupported scale"),
        ({"scale": 16}, "unsupported scale"),
        ({"upsampler": "bilinear"}, "unknown upsampler"),
        ({"scale": 4, "pixel_unshuffle": True}, "pixel_unshuffle"),
        ({"scale": 1, "pixel_unshuffle": False}, "scale 1"),
        ({"num_block": 0}, "num_block"),
    ],
)
def test_rrdbnet_rejects_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_rrdbnet_constructor_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        RRDBNet(3, 3)  # type: ignore[misc]


def test_rrdbnet_small_init_in_dense_blocks() -> None:
    m = RRDBNet(num_feat=32, num_block=1, num_grow_ch=16)
    body_std = m.body[0].rdb1.conv1.weight.std().item()
    first_std = m.conv_first.weight.std().item()
    # kaiming std for fan_in 288 is ~0.083; scaled by 0.1 it is ~0.008
    assert body_std < 0.02 < first_std


def test_pixelshuffle_upsampler_shapes() -> None:
    m = tiny(upsampler="pixelshuffle")
    assert m.conv_up1.weight.shape[0] == 4 * 8
    assert m(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize("size", [32, 48, 128, 200])
def test_discriminator_any_patch_size(size: int) -> None:
    d = VGGStyleDiscriminator(channels=(8, 8, 16, 16), hidden=(10,))
    assert d(torch.rand(3, 3, size, size)).shape == (3, 1)


def test_discriminator_rejects_small_input_and_bad_config() -> None:
    d = VGGStyleDiscriminator(channels=(8, 8), hidden=())
    with pytest.raises(ValueError, match="at least 32"):
        d(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError):
        VGGStyleDiscriminator(channels=())


def test_discriminator_default_strides() -> None:
    d = VGGStyleDiscriminator()
    assert d.num_downsample == 4
    convs = [m for m in d.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]


@pytest.mark.parametrize(
    ("arch", "n_convs", "n_entries"),
    [("vgg11", 8, 21), ("vgg13", 10, 25), ("vgg16", 13, 31), ("vgg19", 16, 37), ("vgg19_bn", 16, 53)],
)
def test_vgg_layout_matches_torchvision(arch: str, n_convs: int, n_entries: int) -> None:
    names = vgg_layer_names(arch)
    assert len(names) == n_entries  # len(torchvision.models.vggNN().features)
    assert sum(n.startswith("conv") for n in names) == n_convs
    v = VGGFeatureExtractor(arch=arch, layers=(names[-1],))
    idx = [i for i, n in enumerate(names) if n.startswith("conv")]
    assert {k for k in v.state_dict() if k.endswith("weight") and "features" in k} >= {
        f"features.{i}.weight" for i in idx
    }


def test_vgg16_loads_real_torchvision_weights_and_splits_before_after_activation(shared_dir) -> None:
    sd = load_file(shared_dir / "weights" / "vgg16_imagenet_features.safetensors")
    v = VGGFeatureExtractor(arch="vgg16", layers=("conv5_3", "relu5_3", "relu1_2"))
    v.load_torchvision_state_dict(sd)
    out = v(torch.rand(1, 3, 64, 64))
    assert out["conv5_3"].shape == (1, 512, 4, 4)
    assert (out["conv5_3"] < 0).any()  # before activation: negative values survive
    assert torch.equal(out["relu5_3"], out["conv5_3"].clamp_min(0))
    assert not any(p.requires_grad for p in v.parameters())
    v.train()
    assert not v.training  # frozen extractor stays in eval mode


def test_vgg_load_rejects_wrong_depth(shared_dir) -> None:
    sd = load_file(shared_dir / "weights" / "vgg16_imagenet_features.safetensors")
    v = VGGFeatureExtractor(arch="vgg19", layers=("conv5_4",))
    with pytest.raises(ValueError, match=r"lack|match"):
        v.load_torchvision_state_dict(sd)


def test_vgg_rejects_unknown_layer() -> None:
    with pytest.raises(ValueError, match="unknown layer"):
        VGGFeatureExtractor(arch="vgg16", layers=("conv5_4",))
    with pytest.raises(ValueError, match="unknown VGG arch"):
        VGGFeatureExtractor(arch="vgg18")


def test_import_does_no_io(tmp_path) -> None:
    """Importing the package and every submodule opens no file from our own code."""
    import subprocess
    import sys

    code = (
        "import builtins, io, os, sys, pkgutil, importlib\n"
        "opened = []\n"
        "real_open, real_io_open = builtins.open, io.open\n"
        "def spy(f, *a, **k):\n"
        "    caller = sys._getframe(1).f_code.co_filename\n"
        "    if os.sep + 'esrgan' + os.sep in caller: opened.append((str(f), caller))\n"
        "    return real_open(f, *a, **k)\n"
        "builtins.open = spy\n"
        "import esrgan\n"
        "for m in pkgutil.walk_packages(esrgan.__path__, 'esrgan.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert not opened, opened\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert r.returncode == 0, r.stderr
