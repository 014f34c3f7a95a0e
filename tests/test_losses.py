"""Losses against hand-computed values: content, perceptual (before activation), RaGAN, vanilla GAN, total."""

from __future__ import annotations

import hashlib
import http.server
import math
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from esrgan.losses import (
    ContentLoss,
    GeneratorLossWeights,
    PerceptualLoss,
    build_perceptual_loss,
    gan_d_loss,
    gan_g_loss,
    generator_total_loss,
    r1_penalty,
    ragan_d_loss,
    ragan_g_loss,
    resolve_vgg_weights,
    vanilla_d_loss,
    vanilla_g_loss,
    vgg_weights_url,
)
from esrgan.models import VGGFeatureExtractor
from esrgan.utils import DownloadError


def test_content_loss_l1_and_l2_hand_values() -> None:
    sr = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    hr = torch.zeros_like(sr)
    assert ContentLoss(criterion="l1")(sr, hr).item() == pytest.approx(1.5)
    assert ContentLoss(criterion="l2")(sr, hr).item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="criterion"):
        ContentLoss(criterion="huber")


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_ragan_losses_match_the_seed_formulas() -> None:
    real = torch.tensor([1.0, 3.0])
    fake = torch.tensor([0.0, 2.0])
    # D_Ra(xr, xf) = sigmoid(C(xr) - mean C(xf)) = sigmoid([0, 2]); D_Ra(xf, xr) = sigmoid([-2, 0]).
    rel_real, rel_fake = [0.0, 2.0], [-2.0, 0.0]
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected_d = (
        -sum(math.log(sig(x)) for x in rel_real) / 2 - sum(math.log(1 - sig(x)) for x in rel_fake) / 2
    )
    expected_g = (
        -sum(math.log(1 - sig(x)) for x in rel_real) / 2 - sum(math.log(sig(x)) for x in rel_fake) / 2
    )
    # The same numbers written out: ln2 and ln(1 + e^-2) etc.
    assert expected_d == pytest.approx(_softplus(0) + _softplus(-2))
    assert expected_g == pytest.approx(_softplus(0) + _softplus(2))
    assert ragan_d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert ragan_g_loss(real, fake).item() == pytest.approx(expected_g, rel=1e-6)
    assert ragan_d_loss(real, fake).item() == pytest.approx(0.8200755, rel=1e-6)
    assert ragan_g_loss(real, fake).item() == pytest.approx(2.8200755, rel=1e-6)


def test_ragan_losses_are_stable_for_huge_logits_and_give_gradients() -> None:
    real = torch.tensor([[1e4], [-1e4]], requires_grad=True)
    fake = torch.tensor([[-1e4], [3e4]], requires_grad=True)
    for fn in (ragan_d_loss, ragan_g_loss):
        loss = fn(real, fake)
        assert torch.isfinite(loss)
        (gr, gf) = torch.autograd.grad(loss, (real, fake))
        assert torch.isfinite(gr).all() and torch.isfinite(gf).all()


def test_ragan_d_gradient_pushes_real_up_and_fake_down() -> None:
    real = torch.zeros(4, 1, requires_grad=True)
    fake = torch.zeros(4, 1, requires_grad=True)
    gr, gf = torch.autograd.grad(ragan_d_loss(real, fake), (real, fake))
    assert (gr < 0).all() and (gf > 0).all()  # descending the loss raises C(real), lowers C(fake)
    gr, gf = torch.autograd.grad(ragan_g_loss(real, fake), (real, fake))
    assert (gr > 0).all() and (gf < 0).all()


def test_r1_penalty_hand_values_and_loss_scale() -> None:
    # A quadratic critic C(x) = sum(a * x^2) has grad 2 a x: for x = 1 in sample 0 and x = 2 in sample 1,
    # ||grad||^2 = 4 |a|^2 and 16 |a|^2, so the batch mean is 10 |a|^2.
    a = torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1)
    x = torch.cat([torch.ones(1, 3, 1, 1), 2 * torch.ones(1, 3, 1, 1)]).requires_grad_(True)
    logits = (a * x**2).sum(dim=(1, 2, 3))
    expected = 10 * float((a**2).sum())
    assert r1_penalty(logits, x).item() == pytest.approx(expected)
    assert r1_penalty((a * x**2).sum(dim=(1, 2, 3)), x, scale=1024.0).item() == pytest.approx(expected)
    # The graph is kept: the penalty trains the critic (d/da of 10 |a|^2 is 20 a).
    a2 = a.clone().requires_grad_(True)
    (grad_a,) = torch.autograd.grad(r1_penalty((a2 * x**2).sum(dim=(1, 2, 3)), x), a2)
    assert torch.allclose(grad_a, 20 * a)


def test_generator_total_loss_weights() -> None:
    w = GeneratorLossWeights()
    assert (w.perceptual, w.adversarial, w.content) == (1.0, 5e-3, 1e-2)
    total = generator_total_loss(
        perceptual=torch.tensor(2.0), adversarial=torch.tensor(3.0), content=torch.tensor(4.0), weights=w
    )
    assert total.item() == pytest.approx(2.0 + 0.015 + 0.04)
    with pytest.raises(ValueError, match="adversarial"):
        GeneratorLossWeights(adversarial=-1.0)


def _channel_copy_extractor(layers: tuple[str, ...], *, norm: bool = False) -> VGGFeatureExtractor:
    """vgg11 whose conv1_1 copies input channel c % 3 into feature channel c (no bias)."""
    ext = VGGFeatureExtractor(arch="vgg11", layers=layers, use_input_norm=norm)
    conv = ext.features[0]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(64):
            conv.weight[c, c % 3, 1, 1] = 1.0
    return ext


def test_perceptual_loss_hand_values_before_activation() -> None:
    sr = torch.zeros(1, 3, 4, 4)
    hr = torch.zeros(1, 3, 4, 4)
    hr[:, 0] = -1.0  # negative: visible before the ReLU, zero after it
    share = 22 / 64  # feature channels 0, 3, ..., 63 copy input channel 0
    pre = PerceptualLoss(extractor=_channel_copy_extractor(("conv1_1",)), layer_weights={"conv1_1": 2.0})
    assert pre(sr, hr).item() == pytest.approx(2.0 * share)
    both = PerceptualLoss(
        extractor=_channel_copy_extractor(("conv1_1", "relu1_1")),
        layer_weights={"conv1_1": 1.0, "relu1_1": 3.0},
        normalize_loss=True,
    )
    assert both(sr, hr).item() == pytest.approx(share / 4)  # relu1_1 sees no difference
    l2 = PerceptualLoss(
        extractor=_channel_copy_extractor(("conv1_1",)), layer_weights={"conv1_1": 1.0}, criterion="l2"
    )
    assert l2(sr, 2 * hr).item() == pytest.approx(4 * share)
    normed = PerceptualLoss(
        extractor=_channel_copy_extractor(("conv1_1",), norm=True), layer_weights={"conv1_1": 1.0}
    )
    assert normed(sr, hr).item() == pytest.approx(share / 0.229, rel=1e-5)  # ImageNet std of R


def test_perceptual_loss_channel_norm_compares_directions_not_magnitudes() -> None:
    sr = torch.zeros(1, 3, 4, 4)
    hr = torch.zeros(1, 3, 4, 4)
    sr[:, 0] = 1.0  # feature channels 0, 3, ..., 63 (22 of them) respond
    hr[:, 1] = 1.0  # channels 1, 4, ..., 61 (21): orthogonal unit vectors after normalising
    loss = PerceptualLoss(
        extractor=_channel_copy_extractor(("conv1_1",)),
        layer_weights={"conv1_1": 1.5},
        criterion="l2",
        feature_norm="channel",
    )
    # |a - b|^2 summed over channels is 2 for orthogonal unit vectors, at every position.
    assert loss(sr, hr).item() == pytest.approx(1.5 * 2.0)
    assert loss(sr, 7 * hr).item() == pytest.approx(1.5 * 2.0)  # magnitude does not count
    assert loss(3 * sr, sr).item() == pytest.approx(0.0, abs=1e-6)
    raw = PerceptualLoss(extractor=_channel_copy_extractor(("conv1_1",)), layer_weights={"conv1_1": 1.0})
    assert raw(3 * sr, sr).item() > 0
    unknown: Any = "layer"
    with pytest.raises(ValueError, match="feature_norm"):
        PerceptualLoss(extractor=raw.extractor, layer_weights={"conv1_1": 1.0}, feature_norm=unknown)


def test_perceptual_loss_is_frozen_and_not_in_state_dict() -> None:
    loss = PerceptualLoss(extractor=_channel_copy_extractor(("conv1_1",)), layer_weights={"conv1_1": 1.0})
    loss.train()
    assert not loss.extractor.training
    assert not any(p.requires_grad for p in loss.parameters())
    assert len(loss.state_dict()) == 0
    holder = torch.nn.Module()
    holder.percep = loss
    holder.lin = torch.nn.Linear(2, 2)
    assert set(holder.state_dict()) == {"lin.weight", "lin.bias"}
    sr = torch.rand(1, 3, 4, 4, requires_grad=True)
    loss(sr, torch.rand(1, 3, 4, 4)).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="conv2_1"):
        PerceptualLoss(extractor=_channel_copy_extractor(("conv1_1",)), layer_weights={"conv2_1": 1.0})


def test_perceptual_loss_with_shared_vgg16_conv5_3(shared_dir: Path) -> None:
    path = shared_dir / "weights" / "vgg16_imagenet_features.safetensors"
    loss = build_perceptual_loss(weights=path, arch="vgg16", layer_weights={"conv5_3": 1.0})
    x = torch.rand(1, 3, 32, 32)
    assert loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(x, torch.rand(1, 3, 32, 32)).item() > 0
    with pytest.raises(ValueError, match="lack"):  # VGG16 file has no conv5_4 of VGG19
        build_perceptual_loss(weights=path, arch="vgg19", layer_weights={"conv5_4": 1.0})


def test_torchvision_url_table() -> None:
    assert vgg_weights_url("vgg19") == "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
    assert vgg_weights_url("vgg16_bn").endswith("vgg16_bn-6c64b313.pth")
    with pytest.raises(ValueError, match="vgg7"):
        vgg_weights_url("vgg7")


@pytest.fixture
def http_dir(tmp_path: Path):
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_vgg_weights_download_from_url_with_hub_hash(tmp_path: Path, http_dir) -> None:
    served, base = http_dir
    ext = _channel_copy_extractor(("conv1_1",))
    tmp = served / "tmp.pth"
    torch.save({k: v.clone() for k, v in ext.state_dict().items()}, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    good = served / f"vgg11-{digest[:8]}.pth"
    tmp.rename(good)
    cache = tmp_path / "cache"
    loss = build_perceptual_loss(
        weights=f"{base}/{good.name}", arch="vgg11", layer_weights={"conv1_1": 1.0}, normalize_input=False,
        cache_dir=cache, progress=False,
    )  # fmt: skip
    assert (cache / good.name).is_file()
    sr, hr = torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    hr[:, 0] = -1.0
    assert loss(sr, hr).item() == pytest.approx(22 / 64)
    bad = served / "vgg11-00000000.pth"
    bad.write_bytes(good.read_bytes())
    with pytest.raises(DownloadError, match="sha256"):
        resolve_vgg_weights(f"{base}/{bad.name}", arch="vgg11", cache_dir=cache, progress=False)
    assert not (cache / bad.name).exists()
    with pytest.raises(FileNotFoundError):
        resolve_vgg_weights(tmp_path / "missing.pth", arch="vgg11")


def test_ragan_pools_give_the_means() -> None:
    # E[C(x_f)] = mean([0, 2]) = 1 and E[C(x_r)] = mean([1, 3]) = 2 from the pools, not the one-item batch.
    real, fake = torch.tensor([1.0]), torch.tensor([0.0])
    pools = {"real_pool": torch.tensor([1.0, 3.0]), "fake_pool": torch.tensor([0.0, 2.0])}
    assert ragan_d_loss(real, fake, **pools).item() == pytest.approx(_softplus(0) + _softplus(-2))
    assert ragan_g_loss(real, fake, **pools).item() == pytest.approx(_softplus(0) + _softplus(2))


def test_vanilla_gan_losses_hand_values() -> None:
    real = torch.tensor([1.0, 3.0])
    fake = torch.tensor([0.0, 2.0])
    # D: real labelled 1 -> mean(-log sigmoid(real)); fake labelled 0 -> mean(-log(1 - sigmoid(fake))).
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected_d = (
        -(math.log(sig(1)) + math.log(sig(3))) / 2 - (math.log(1 - sig(0)) + math.log(1 - sig(2))) / 2
    )
    expected_g = -(math.log(sig(0)) + math.log(sig(2))) / 2  # G: its fakes labelled real
    assert expected_d == pytest.approx((_softplus(-1) + _softplus(-3) + _softplus(0) + _softplus(2)) / 2)
    assert vanilla_d_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert vanilla_g_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)
    assert vanilla_d_loss(real, fake).item() == pytest.approx(1.5909621, rel=1e-6)
    assert vanilla_g_loss(fake).item() == pytest.approx(0.4100376, rel=1e-6)
    assert gan_d_loss("vanilla", real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert gan_g_loss("vanilla", None, fake).item() == pytest.approx(expected_g, rel=1e-6)
    assert gan_d_loss("ragan", real, fake).item() == pytest.approx(0.8200755, rel=1e-6)
    assert gan_g_loss("ragan", real, fake).item() == pytest.approx(2.8200755, rel=1e-6)


def test_vanilla_gan_losses_are_stable_and_push_the_right_way() -> None:
    real = torch.tensor([[1e4], [-1e4]], requires_grad=True)
    fake = torch.tensor([[-1e4], [3e4]], requires_grad=True)
    assert torch.isfinite(vanilla_d_loss(real, fake)) and torch.isfinite(vanilla_g_loss(fake))
    real, fake = torch.zeros(4, 1, requires_grad=True), torch.zeros(4, 1, requires_grad=True)
    gr, gf = torch.autograd.grad(vanilla_d_loss(real, fake), (real, fake))
    assert (gr < 0).all() and (gf > 0).all()  # D raises real logits, lowers fake ones
    (gf,) = torch.autograd.grad(vanilla_g_loss(fake), (fake,))
    assert (gf < 0).all()  # G raises the logits of its fakes


@pytest.mark.parametrize("kind", ["ragan", "vanilla"])
def test_gan_losses_take_per_pixel_logit_maps_as_one_logit_per_pixel(kind: str) -> None:
    # A U-Net D's (N, 1, H, W) map: every pixel is one logit, so the loss equals that of the flat list.
    real = torch.randn(2, 1, 4, 4, requires_grad=True)
    fake = torch.randn(2, 1, 4, 4, requires_grad=True)
    flat_r, flat_f = real.detach().flatten(), fake.detach().flatten()
    torch.testing.assert_close(gan_d_loss(kind, real, fake), gan_d_loss(kind, flat_r, flat_f))
    torch.testing.assert_close(gan_g_loss(kind, real, fake), gan_g_loss(kind, flat_r, flat_f))
    gr, gf = torch.autograd.grad(gan_d_loss(kind, real, fake), (real, fake))
    assert gr.shape == real.shape and (gr != 0).all() and (gf != 0).all()  # every pixel is judged
    # Hand value for vanilla with constant maps: BCE of 0 against 1 and 0 is ln 2 each.
    zeros = torch.zeros(2, 1, 4, 4)
    if kind == "vanilla":
        assert gan_d_loss(kind, zeros, zeros).item() == pytest.approx(2 * math.log(2))
        assert gan_g_loss(kind, None, zeros).item() == pytest.approx(math.log(2))


def test_gan_loss_names_are_checked() -> None:
    x = torch.zeros(2)
    unknown: Any = "wgan"
    with pytest.raises(ValueError, match="wgan"):
        gan_d_loss(unknown, x, x)
    with pytest.raises(ValueError, match="wgan"):
        gan_g_loss(unknown, x, x)
    with pytest.raises(ValueError, match="real logits"):
        gan_g_loss("ragan", None, x)


# Real-ESRGAN's perceptual_opt for VGG19 (BasicSR's PerceptualLoss): these layers before activation,
# ImageNet input normalisation, L1, the weighted sum not divided by the weights' total.
REAL_ESRGAN_LAYER_WEIGHTS = {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
# Indices of those layers in torchvision's vgg19().features.
TORCHVISION_VGG19_INDEX = {"conv1_2": 2, "conv2_2": 7, "conv3_4": 16, "conv4_4": 25, "conv5_4": 34}


def test_real_esrgans_vgg19_perceptual_loss_is_expressible_and_matches_a_hand_computation(
    tmp_path: Path,
) -> None:
    from safetensors.torch import save_file

    from esrgan.training import load_config
    from esrgan.training.distributed import DistInfo
    from esrgan.training.runtime import Runtime
    from esrgan.training.stage import build_losses

    # Random VGG19 weights in torchvision's layout (offline: the real file would be downloaded).
    vgg = VGGFeatureExtractor(arch="vgg19", layers=("conv5_4",), use_input_norm=False)
    save_file({k: v.contiguous() for k, v in vgg.state_dict().items()}, tmp_path / "vgg19.safetensors")
    layer_weights = "{" + ", ".join(f"{k}: {v}" for k, v in REAL_ESRGAN_LAYER_WEIGHTS.items()) + "}"
    cfg = load_config(
        None,
        [f"perceptual_loss.layer_weights={layer_weights}", "perceptual_loss.arch=vgg19",
         f"perceptual_loss.weights={tmp_path / 'vgg19.safetensors'}", "device=cpu"],
    )  # fmt: skip
    pl = cfg.perceptual_loss
    assert (pl.normalize_input, pl.normalize_loss, pl.criterion, pl.feature_norm) == (
        True,
        False,
        "l1",
        "none",
    )
    rt = Runtime(
        device=torch.device("cpu"), dist=DistInfo(), amp_dtype=None, memory_format=torch.contiguous_format
    )
    loss = build_losses(cfg, rt, progress=False).perceptual

    sr, hr = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, out = (x - mean) / std, {}
        wanted = {i: name for name, i in TORCHVISION_VGG19_INDEX.items()}
        for i, module in enumerate(vgg.features):
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x
        return out

    with torch.no_grad():
        fs, fh = features(sr), features(hr)
    assert all((fs[k] < 0).any() for k in fs)  # before activation
    expected = sum(w * (fs[k] - fh[k]).abs().mean() for k, w in REAL_ESRGAN_LAYER_WEIGHTS.items())
    assert loss(sr, hr).item() == pytest.approx(float(expected), rel=1e-5)
