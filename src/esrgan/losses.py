"""Training losses: content (L1/L2), VGG perceptual, GAN: relativistic average (ESRGAN) or vanilla.

Formulas follow the ESRGAN paper and the seed project's review:

- ``L_D^Ra = -E_xr[log D(xr, xf)] - E_xf[log(1 - D(xf, xr))]``
- ``L_G^Ra = -E_xr[log(1 - D(xr, xf))] - E_xf[log D(xf, xr)]``
- ``D(a, b) = sigmoid(C(a) - E[C(b)])`` with ``C`` the raw discriminator logit,
- ``L_G = w_percep * L_percep + lambda * L_G^Ra + eta * L_content`` (lambda 5e-3, eta 1e-2).

The vanilla GAN loss (Real-ESRGAN's) is the plain cross-entropy with real labelled 1 and fake 0:
``L_D = -E_xr[log sigmoid(C(xr))] - E_xf[log(1 - sigmoid(C(xf)))]``, ``L_G = -E_xf[log sigmoid(C(xf))]``.
Either works on one logit per image or on a per-pixel logit map (U-Net D): means run over every logit.

The sigmoid/log pairs are evaluated with ``binary_cross_entropy_with_logits`` (log-sum-exp form), so large
logits do not overflow.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import torch
from torch import nn
from torch.nn import functional as F

from esrgan.metrics.lpips import normalize_channels
from esrgan.models import VGGFeatureExtractor
from esrgan.weights.io import load_tensor_file

Criterion = Literal["l1", "l2"]
FeatureNorm = Literal["none", "channel"]
GanLoss = Literal["ragan", "vanilla"]
GAN_LOSSES: tuple[GanLoss, ...] = ("ragan", "vanilla")
_StateDictT = TypeVar("_StateDictT", bound=dict[str, Any])

# torchvision's published ImageNet VGG weights; the 8 hex digits are the sha256 prefix (torch.hub style).
TORCHVISION_VGG_URLS: dict[str, str] = {
    "vgg11": "https://download.pytorch.org/models/vgg11-8a719046.pth",
    "vgg13": "https://download.pytorch.org/models/vgg13-19584684.pth",
    "vgg16": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "vgg19": "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    "vgg11_bn": "https://download.pytorch.org/models/vgg11_bn-6002323d.pth",
    "vgg13_bn": "https://download.pytorch.org/models/vgg13_bn-abd245e5.pth",
    "vgg16_bn": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
    "vgg19_bn": "https://download.pytorch.org/models/vgg19_bn-c79401a0.pth",
}
_HUB_HASH = re.compile(r"-([0-9a-f]{8,})\.[^.]+$")


def _criterion(name: str) -> nn.Module:
    if name == "l1":
        return nn.L1Loss()
    if name in ("l2", "mse"):
        return nn.MSELoss()
    raise ValueError(f"unknown loss criterion {name!r}: use 'l1' or 'l2'")


class ContentLoss(nn.Module):
    """Pixel loss between SR and HR: mean absolute (L1, default) or mean squared (L2) error."""

    def __init__(self, *, criterion: Criterion | str = "l1") -> None:
        super().__init__()
        self.criterion_name = "l2" if criterion == "mse" else criterion
        self.criterion = _criterion(criterion)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return self.criterion(sr.float(), hr.float())


class PerceptualLoss(nn.Module):
    """Distance between VGG features (before activation) of SR and HR, weighted per layer.

    ``sum_l w_l * crit(phi_l(sr), phi_l(hr))``, divided by ``sum_l w_l`` when ``normalize_loss``. With
    ``feature_norm="channel"`` each feature vector is first scaled to unit length over its channels (as
    LPIPS does), so the distance measures the direction of a response and not its magnitude, and ``crit``
    is multiplied by the channel count (a per-position sum over channels). The
    extractor is frozen and kept in eval mode; its weights come from their own file, so this module's
    ``state_dict`` is empty and training checkpoints never carry them.
    """

    def __init__(
        self,
        *,
        extractor: VGGFeatureExtractor,
        layer_weights: Mapping[str, float],
        criterion: Criterion | str = "l1",
        normalize_loss: bool = False,
        feature_norm: FeatureNorm = "none",
    ) -> None:
        super().__init__()
        if feature_norm not in ("none", "channel"):
            raise ValueError(f"feature_norm must be 'none' or 'channel', got {feature_norm!r}")
        if not layer_weights:
            raise ValueError("layer_weights must name at least one VGG layer")
        missing = [k for k in layer_weights if k not in extractor.layers]
        if missing:
            raise ValueError(f"extractor does not output layer(s) {missing} (has {list(extractor.layers)})")
        bad = [k for k, w in layer_weights.items() if not (w >= 0)]
        if bad:
            raise ValueError(f"layer weights must be >= 0: {bad}")
        total = float(sum(layer_weights.values()))
        if normalize_loss and total <= 0:
            raise ValueError("normalize_loss needs a positive sum of layer weights")
        self.layer_weights = dict(layer_weights)
        self.normalize_loss = normalize_loss
        self.feature_norm = feature_norm
        self.criterion = _criterion(criterion)
        self.extractor = extractor
        self.extractor.requires_grad_(False)
        self.extractor.eval()

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.extractor.eval()  # BN statistics of a frozen VGG must never move
        return self

    @overload
    def state_dict(
        self, *, destination: _StateDictT, prefix: str = ..., keep_vars: bool = ...
    ) -> _StateDictT: ...

    @overload
    def state_dict(self, *, prefix: str = ..., keep_vars: bool = ...) -> dict[str, Any]: ...

    def state_dict(
        self,
        *args: Any,
        destination: dict[str, Any] | None = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> dict[str, Any]:
        # Parent modules pass `destination` and ignore the return value; writing nothing keeps VGG out.
        return destination if destination is not None else {}

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        feats_sr = self.extractor(sr)
        with torch.no_grad():
            feats_hr = self.extractor(hr.detach())
        loss = sr.new_zeros((), dtype=torch.float32)
        for name, w in self.layer_weights.items():
            if w == 0:
                continue
            a, b = feats_sr[name].float(), feats_hr[name].float()
            if self.feature_norm == "channel":
                a, b = normalize_channels(a), normalize_channels(b)
                loss = loss + w * a.shape[1] * self.criterion(a, b)
            else:
                loss = loss + w * self.criterion(a, b)
        if self.normalize_loss:
            loss = loss / sum(self.layer_weights.values())
        return loss


def _relativistic(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    real_pool: torch.Tensor | None,
    fake_pool: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    real_mean = (real_logits if real_pool is None else real_pool.float()).mean()
    fake_mean = (fake_logits if fake_pool is None else fake_pool.float()).mean()
    return real_logits - fake_mean, fake_logits - real_mean


def ragan_d_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    real_pool: torch.Tensor | None = None,
    fake_pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """Discriminator RaGAN loss: real should look more realistic than the average fake, and vice versa.

    ``real_pool`` / ``fake_pool``: the logits whose mean is ``E[C(x)]`` (default: the given ones); in
    distributed training, the logits of the whole global batch.
    """
    rel_real, rel_fake = _relativistic(real_logits, fake_logits, real_pool, fake_pool)
    return F.binary_cross_entropy_with_logits(
        rel_real, torch.ones_like(rel_real)
    ) + F.binary_cross_entropy_with_logits(rel_fake, torch.zeros_like(rel_fake))


def ragan_g_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    real_pool: torch.Tensor | None = None,
    fake_pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generator RaGAN loss: the symmetric counterpart (labels swapped), so G benefits from both terms."""
    rel_real, rel_fake = _relativistic(real_logits, fake_logits, real_pool, fake_pool)
    return F.binary_cross_entropy_with_logits(
        rel_real, torch.zeros_like(rel_real)
    ) + F.binary_cross_entropy_with_logits(rel_fake, torch.ones_like(rel_fake))


def vanilla_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator vanilla GAN loss: BCE of real logits against 1 plus BCE of fake logits against 0."""
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def vanilla_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator vanilla (non-saturating) GAN loss: BCE of the fake logits against the real label 1."""
    fake_logits = fake_logits.float()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def gan_d_loss(
    kind: GanLoss,
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    real_pool: torch.Tensor | None = None,
    fake_pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """D's loss of ``kind``; the pools (global-batch logits for the RaGAN means) matter to ``ragan`` only."""
    if kind == "ragan":
        return ragan_d_loss(real_logits, fake_logits, real_pool=real_pool, fake_pool=fake_pool)
    if kind == "vanilla":
        return vanilla_d_loss(real_logits, fake_logits)
    raise ValueError(f"unknown GAN loss {kind!r}: use one of {list(GAN_LOSSES)}")


def gan_g_loss(
    kind: GanLoss,
    real_logits: torch.Tensor | None,
    fake_logits: torch.Tensor,
    *,
    real_pool: torch.Tensor | None = None,
    fake_pool: torch.Tensor | None = None,
) -> torch.Tensor:
    """G's adversarial loss of ``kind``; ``ragan`` needs D's logits on real images, ``vanilla`` does not."""
    if kind == "ragan":
        if real_logits is None:
            raise ValueError("the ragan generator loss needs the real logits")
        return ragan_g_loss(real_logits, fake_logits, real_pool=real_pool, fake_pool=fake_pool)
    if kind == "vanilla":
        return vanilla_g_loss(fake_logits)
    raise ValueError(f"unknown GAN loss {kind!r}: use one of {list(GAN_LOSSES)}")


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
    """R1 gradient penalty (Mescheder et al. 2018): the batch mean of ``||grad_x C(x)||^2`` at real images.

    ``real`` must require grad and ``real_logits`` must come from it; the graph is kept so that the penalty
    trains D. ``scale``: a mixed-precision loss scale, applied before the gradient and taken off after, so
    that fp16 gradients do not underflow.
    """
    (grad,) = torch.autograd.grad(real_logits.float().sum() * scale, real, create_graph=True)
    return (grad.float() / scale).pow(2).flatten(1).sum(1).mean()


@dataclass(frozen=True)
class GeneratorLossWeights:
    """Weights of the GAN-stage generator objective (paper: 1, 5e-3, 1e-2)."""

    perceptual: float = 1.0
    adversarial: float = 5e-3
    content: float = 1e-2

    def __post_init__(self) -> None:
        for name in ("perceptual", "adversarial", "content"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} loss weight must be >= 0, got {getattr(self, name)}")


def generator_total_loss(
    *,
    perceptual: torch.Tensor,
    adversarial: torch.Tensor,
    content: torch.Tensor,
    weights: GeneratorLossWeights,
) -> torch.Tensor:
    """``L_G = w_p * L_percep + lambda * L_G^adv + eta * L_content`` (``L_G^adv``: RaGAN or vanilla)."""
    return weights.perceptual * perceptual + weights.adversarial * adversarial + weights.content * content


def vgg_weights_url(arch: str) -> str:
    """torchvision's official URL of the ImageNet weights for ``arch`` (e.g. ``vgg19``)."""
    if arch not in TORCHVISION_VGG_URLS:
        raise ValueError(
            f"no torchvision weights for VGG arch {arch!r}: use one of {sorted(TORCHVISION_VGG_URLS)}"
        )
    return TORCHVISION_VGG_URLS[arch]


def resolve_vgg_weights(
    spec: str | os.PathLike[str],
    *,
    arch: str,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Path:
    """Local path of VGG weights: ``spec`` is a file, a URL, or ``"torchvision"`` (official URL for arch).

    URLs are downloaded once into ``cache_dir`` (default: the user cache) and checked against the sha256
    prefix in their file name (``vgg19-dcbb9e9d.pth``), as torch.hub does.
    """
    from esrgan.utils import download, user_cache_dir

    text = os.fspath(spec)
    if text == "torchvision":
        text = vgg_weights_url(arch)
    if not text.startswith(("http://", "https://")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: VGG weights file not found")
        return path
    name = text.rsplit("/", 1)[-1].split("?", 1)[0]
    match = _HUB_HASH.search(name)
    dest = (cache_dir if cache_dir is not None else user_cache_dir() / "vgg") / name
    return download(text, dest, sha256_prefix=match.group(1) if match else None, progress=progress)


def build_perceptual_loss(
    *,
    weights: str | os.PathLike[str],
    arch: str = "vgg19",
    layer_weights: Mapping[str, float],
    criterion: Criterion | str = "l1",
    normalize_input: bool = True,
    normalize_loss: bool = False,
    feature_norm: FeatureNorm = "none",
    cache_dir: Path | None = None,
    progress: bool = True,
) -> PerceptualLoss:
    """Build the extractor for the weighted layers, load its weights (file, URL or torchvision), wrap it."""
    extractor = VGGFeatureExtractor(
        arch=arch, layers=tuple(layer_weights), use_input_norm=normalize_input, requires_grad=False
    )
    path = resolve_vgg_weights(weights, arch=arch, cache_dir=cache_dir, progress=progress)
    try:
        extractor.load_torchvision_state_dict(load_tensor_file(path, what="VGG weights"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return PerceptualLoss(
        extractor=extractor,
        layer_weights=layer_weights,
        criterion=criterion,
        normalize_loss=normalize_loss,
        feature_norm=feature_norm,
    )
