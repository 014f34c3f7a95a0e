"""Architecture tests: shapes, BasicSR key names, validation, VGG layout and the discriminators."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from esrgan.models import (
    RRDBNet,
    SpectralNormConv2d,
    UNetDiscriminatorSN,
    VGGFeatureExtractor,
    VGGStyleDiscriminator,
    vgg_layer_names,
)


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


# Real-ESRGAN's UNetDiscriminatorSN(num_in_ch=3, num_feat=64), written out from its constructor: conv1-conv8
# are wrapped in torch.nn.utils.spectral_norm, so they save weight_orig, weight_u (out) and weight_v
# (in * k * k) instead of weight, and have no bias.
REAL_ESRGAN_UNET_D_SHAPES: dict[str, tuple[int, ...]] = {
    "conv0.weight": (64, 3, 3, 3), "conv0.bias": (64,),
    "conv1.weight_orig": (128, 64, 4, 4), "conv1.weight_u": (128,), "conv1.weight_v": (1024,),
    "conv2.weight_orig": (256, 128, 4, 4), "conv2.weight_u": (256,), "conv2.weight_v": (2048,),
    "conv3.weight_orig": (512, 256, 4, 4), "conv3.weight_u": (512,), "conv3.weight_v": (4096,),
    "conv4.weight_orig": (256, 512, 3, 3), "conv4.weight_u": (256,), "conv4.weight_v": (4608,),
    "conv5.weight_orig": (128, 256, 3, 3), "conv5.weight_u": (128,), "conv5.weight_v": (2304,),
    "conv6.weight_orig": (64, 128, 3, 3), "conv6.weight_u": (64,), "conv6.weight_v": (1152,),
    "conv7.weight_orig": (64, 64, 3, 3), "conv7.weight_u": (64,), "conv7.weight_v": (576,),
    "conv8.weight_orig": (64, 64, 3, 3), "conv8.weight_u": (64,), "conv8.weight_v": (576,),
    "conv9.weight": (1, 64, 3, 3), "conv9.bias": (1,),
}  # fmt: skip


def _sn_convs(d: torch.nn.Module) -> list[SpectralNormConv2d]:
    return [m for m in d.modules() if isinstance(m, SpectralNormConv2d)]


def _largest_singular_value(conv: SpectralNormConv2d) -> float:
    w = conv.normalized_weight().detach()
    return float(torch.linalg.matrix_norm(w.reshape(w.shape[0], -1), ord=2))


def test_unet_discriminator_has_real_esrgans_keys_and_loads_their_state_dict_strictly() -> None:
    d = UNetDiscriminatorSN(num_in_ch=3, num_feat=64)
    assert {k: tuple(v.shape) for k, v in d.state_dict().items()} == REAL_ESRGAN_UNET_D_SHAPES
    assert list(d.state_dict()) == list(REAL_ESRGAN_UNET_D_SHAPES)  # their order too
    theirs = {}
    for key, shape in REAL_ESRGAN_UNET_D_SHAPES.items():
        t = torch.randn(shape)
        theirs[key] = t / t.norm() if key.endswith(("_u", "_v")) else t  # u and v are unit vectors
    d.load_state_dict(theirs, strict=True)
    d.eval()  # eval: sigma comes from the loaded u and v as they are
    u, v, w = theirs["conv3.weight_u"], theirs["conv3.weight_v"], theirs["conv3.weight_orig"]
    sigma = torch.dot(u, w.reshape(512, -1) @ v)
    torch.testing.assert_close(d.conv3.normalized_weight(), w / sigma)


def test_spectral_norm_conv_matches_torchs_spectral_norm_step_for_step() -> None:
    ref = torch.nn.utils.spectral_norm(torch.nn.Conv2d(6, 10, 4, 2, 1, bias=False))
    ours = SpectralNormConv2d(in_ch=6, out_ch=10, kernel_size=4, stride=2, padding=1)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 6, 16, 16)
    for _ in range(3):  # training mode: one power iteration per forward, buffers updated in place
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
        torch.testing.assert_close(ours.weight_u, ref.weight_u, rtol=0, atol=0)
        torch.testing.assert_close(ours.weight_v, ref.weight_v, rtol=0, atol=0)
    ours.eval()
    ref.eval()
    u_before = ours.weight_u.clone()
    torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0)
    assert torch.equal(ours.weight_u, u_before)  # eval mode leaves the estimate alone


def test_spectral_norm_bounds_the_largest_singular_value_near_one() -> None:
    d = UNetDiscriminatorSN(num_in_ch=3, num_feat=8)
    with torch.no_grad():
        for conv in _sn_convs(d):
            conv.weight_orig.mul_(25.0)  # far from 1 before normalisation
    d.eval()
    before = [_largest_singular_value(c) for c in _sn_convs(d)]
    assert max(before) > 2  # the random initial u, v underestimate sigma: not yet bounded
    d.train()
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        for _ in range(200):  # one power iteration per training-mode forward (measured: 1e-3 after ~100)
            d(x)
    d.eval()
    after = [_largest_singular_value(c) for c in _sn_convs(d)]
    assert len(after) == 8
    assert all(abs(s - 1) < 1e-3 for s in after), after
    raw = [float(torch.linalg.matrix_norm(c.weight_orig.detach().flatten(1), ord=2))
           for c in _sn_convs(d)]  # fmt: skip
    assert min(raw) > 5  # the bound comes from the normalisation, not from small weights


@pytest.mark.parametrize(("h", "w"), [(8, 8), (32, 32), (64, 40)])
def test_unet_discriminator_gives_one_logit_per_pixel(h: int, w: int) -> None:
    for skip in (True, False):
        d = UNetDiscriminatorSN(num_in_ch=3, num_feat=4, skip_connection=skip)
        assert d(torch.rand(2, 3, h, w)).shape == (2, 1, h, w)
    assert UNetDiscriminatorSN(num_in_ch=1, num_feat=4)(torch.rand(1, 1, h, w)).shape == (1, 1, h, w)


def test_unet_discriminator_rejects_sides_that_are_not_multiples_of_8_and_bad_sizes() -> None:
    d = UNetDiscriminatorSN(num_feat=4)
    with pytest.raises(ValueError, match="multiples of 8"):
        d(torch.rand(1, 3, 36, 32))
    with pytest.raises(ValueError, match="num_feat"):
        UNetDiscriminatorSN(num_feat=0)
    with pytest.raises(ValueError):
        SpectralNormConv2d(in_ch=3, out_ch=0, kernel_size=3, stride=1, padding=1)


def test_unet_discriminator_under_bf16_autocast_keeps_the_estimate_in_fp32() -> None:
    d = UNetDiscriminatorSN(num_feat=4)
    x = torch.rand(1, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = d(x)
    assert y.dtype == torch.bfloat16 and y.shape == (1, 1, 16, 16)
    assert all(c.weight_u.dtype == torch.float32 and c.weight_v.dtype == torch.float32 for c in _sn_convs(d))
    assert all(torch.isclose(c.weight_u.norm(), torch.tensor(1.0)) for c in _sn_convs(d))
