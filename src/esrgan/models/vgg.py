"""VGG feature extractor with torchvision's `vggNN().features` state-dict layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

VGGArch = Literal["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]

# Convs per block for each depth (torchvision configs A, B, D, E).
_BLOCKS: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
_WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(arch: str) -> list[str]:
    """Names of the entries of `features` in order: conv1_1, (bn1_1,) relu1_1, ..., pool5."""
    depth, bn = _parse_arch(arch)
    names: list[str] = []
    for b, n in enumerate(_BLOCKS[depth], start=1):
        for i in range(1, n + 1):
            names.append(f"conv{b}_{i}")
            if bn:
                names.append(f"bn{b}_{i}")
            names.append(f"relu{b}_{i}")
        names.append(f"pool{b}")
    return names


def _parse_arch(arch: str) -> tuple[str, bool]:
    depth, _, suffix = arch.partition("_")
    if depth not in _BLOCKS or suffix not in ("", "bn"):
        raise ValueError(f"unknown VGG arch {arch!r}: use one of {sorted(_BLOCKS)} with optional '_bn'")
    return depth, suffix == "bn"


class VGGFeatureExtractor(nn.Module):
    """Returns the requested named layers (`conv5_4` is before activation, `relu5_4` after).

    Only the layers up to the deepest requested one are built; keys are `features.{index}` exactly as
    torchvision, so its published files load with `load_torchvision_state_dict`.
    Input: RGB in [0, 1] (or [-1, 1] with `range_norm=True`).
    """

    # Buffers registered in __init__ (declared so their type is Tensor, not Module.__getattr__'s union).
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        *,
        arch: VGGArch | str = "vgg19",
        layers: Sequence[str] = ("conv5_4",),
        use_input_norm: bool = True,
        range_norm: bool = False,
        requires_grad: bool = False,
    ) -> None:
        super().__init__()
        _parse_arch(arch)  # validates the name
        self.arch = arch
        all_names = vgg_layer_names(arch)
        if not layers:
            raise ValueError("layers must name at least one VGG layer")
        unknown = [n for n in layers if n not in all_names]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown} for {arch}; valid: {', '.join(all_names)}")
        self.layers = tuple(layers)
        last = max(all_names.index(n) for n in layers)
        self.names = all_names[: last + 1]
        modules: list[nn.Module] = []
        in_ch = 3
        for name in self.names:
            if name.startswith("conv"):
                block = int(name[4]) - 1
                modules.append(nn.Conv2d(in_ch, _WIDTHS[block], 3, 1, 1))
                in_ch = _WIDTHS[block]
            elif name.startswith("bn"):
                modules.append(nn.BatchNorm2d(in_ch))
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*modules)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(requires_grad)
        if not requires_grad:
            self.eval()

    def load_torchvision_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a torchvision `vggNN()` / `vggNN().features` state dict (extra deeper layers ignored)."""
        sd = {k: v for k, v in state_dict.items() if not k.startswith("classifier.")}
        if sd and not any(k.startswith("features.") for k in sd):
            sd = {f"features.{k}": v for k, v in sd.items()}
        own = self.state_dict()
        missing = [k for k in own if k not in sd]
        if missing:
            raise ValueError(
                f"VGG weights lack {len(missing)} tensor(s) needed by {self.arch} up to "
                f"{self.names[-1]}, e.g. {missing[:3]} (wrong VGG depth or BN variant?)"
            )
        wrong = [k for k in own if tuple(sd[k].shape) != tuple(own[k].shape)]
        if wrong:
            raise ValueError(f"VGG weight shapes do not match {self.arch}: {wrong[:3]}")
        self.load_state_dict({k: sd[k] for k in own}, strict=True)

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        # A frozen feature extractor stays in eval mode (BN statistics must not drift).
        if not any(p.requires_grad for p in self.parameters()):
            mode = False
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        wanted = set(self.layers)
        for name, module in zip(self.names, self.features, strict=True):
            x = module(x)
            if name in wanted:
                out[name] = x
        return out
