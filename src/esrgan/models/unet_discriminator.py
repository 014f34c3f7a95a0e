"""Real-ESRGAN's U-Net discriminator with spectral normalisation (one logit per pixel).

Key names are Real-ESRGAN's ``UNetDiscriminatorSN`` (``conv0`` ... ``conv9``; the spectrally normalised
``conv1``-``conv8`` hold ``weight_orig``, ``weight_u`` and ``weight_v`` as torch's hook-based
``spectral_norm`` saves them), so its ``net_d`` checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

_EPS = 1e-12  # torch's spectral_norm default: keeps normalize() finite for an all-zero weight


def _leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class SpectralNormConv2d(nn.Module):
    """A bias-free conv whose weight is divided by its largest singular value (Miyato et al. 2018).

    The same estimate as ``torch.nn.utils.spectral_norm`` (one power iteration per forward in training
    mode, none in eval mode) and the same state-dict keys. Written out rather than wrapped because the
    hook runs its power iteration inside the caller's autocast: CUDA autocast lists ``mv`` among its
    half-precision ops, and ``dot`` refuses a half/fp32 pair. Here the estimate is always fp32 and only
    the conv is autocast.
    """

    weight_u: torch.Tensor
    weight_v: torch.Tensor

    def __init__(self, *, in_ch: int, out_ch: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        if min(in_ch, out_ch, kernel_size, stride) < 1 or padding < 0:
            raise ValueError("channels, kernel_size and stride must be positive and padding >= 0")
        self.stride, self.padding = stride, padding
        conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=False)  # nn.Conv2d's init
        self.weight_orig = nn.Parameter(conv.weight.detach().clone())
        self.register_buffer("weight_u", F.normalize(torch.randn(out_ch), dim=0, eps=_EPS))
        self.register_buffer("weight_v", F.normalize(torch.randn(in_ch * kernel_size**2), dim=0, eps=_EPS))

    def normalized_weight(self) -> torch.Tensor:
        """``weight_orig / sigma``; in training mode ``u`` and ``v`` first take one power-iteration step."""
        with torch.autocast(self.weight_orig.device.type, enabled=False):
            w = self.weight_orig.float().reshape(self.weight_orig.shape[0], -1)
            u, v = self.weight_u, self.weight_v
            if self.training:
                with torch.no_grad():
                    v = F.normalize(torch.mv(w.t(), u), dim=0, eps=_EPS, out=v)
                    u = F.normalize(torch.mv(w, v), dim=0, eps=_EPS, out=u)
                # Copies: the buffers change in place at the next forward, and autograd (R1's double
                # backward among them) must see the vectors this weight was computed with.
                u, v = u.clone(), v.clone()
            sigma = torch.dot(u, torch.mv(w, v))
            return (self.weight_orig / sigma).to(self.weight_orig.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), None, self.stride, self.padding)

    def extra_repr(self) -> str:
        out_ch, in_ch, k, _ = self.weight_orig.shape
        return f"{in_ch}, {out_ch}, kernel_size={k}, stride={self.stride}, padding={self.padding}"


class UNetDiscriminatorSN(nn.Module):
    """Three stride-2 downsamples, three bilinear x2 upsamples with additive skips, two more convs.

    Input ``(N, C, H, W)`` with H and W multiples of 8; output ``(N, 1, H, W)`` raw logits, one realness
    judgement per pixel. Every conv except the first and the last is spectrally normalised; LeakyReLU 0.2.
    """

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True) -> None:
        super().__init__()
        if num_in_ch < 1 or num_feat < 1:
            raise ValueError(f"num_in_ch and num_feat must be >= 1, got {num_in_ch} and {num_feat}")
        self.skip_connection = skip_connection
        f = num_feat

        def sn(cin: int, cout: int, k: int, stride: int) -> SpectralNormConv2d:
            return SpectralNormConv2d(in_ch=cin, out_ch=cout, kernel_size=k, stride=stride, padding=1)

        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.conv1 = sn(f, f * 2, 4, 2)
        self.conv2 = sn(f * 2, f * 4, 4, 2)
        self.conv3 = sn(f * 4, f * 8, 4, 2)
        self.conv4 = sn(f * 8, f * 4, 3, 1)
        self.conv5 = sn(f * 4, f * 2, 3, 1)
        self.conv6 = sn(f * 2, f, 3, 1)
        self.conv7 = sn(f, f, 3, 1)
        self.conv8 = sn(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(
                f"U-Net discriminator input sides must be multiples of 8, got {tuple(x.shape[-2:])}"
            )
        act, up = _leaky_relu, _upsample2
        x0 = act(self.conv0(x))
        x1 = act(self.conv1(x0))
        x2 = act(self.conv2(x1))
        x3 = act(self.conv3(x2))
        y = act(self.conv4(up(x3)))
        if self.skip_connection:
            y = y + x2
        y = act(self.conv5(up(y)))
        if self.skip_connection:
            y = y + x1
        y = act(self.conv6(up(y)))
        if self.skip_connection:
            y = y + x0
        y = act(self.conv7(y))
        y = act(self.conv8(y))
        return self.conv9(y)
