"""What every generator tells its callers, whatever its architecture (RRDBNet, SRVGGNetCompact).

Inference, tiling, export, quantisation, the weights tools and training read these facts instead of
probing a network's class: the scale, the input size requirement, the channels, and a memory cost.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from torch import nn


class ArchConfig(Protocol):
    """Hyper-parameters of one generator architecture: enough to rebuild it (weights metadata)."""

    arch: ClassVar[str]
    """Architecture name as stored in metadata and configs (``rrdbnet``, ``compact``)."""

    @property
    def in_ch(self) -> int: ...

    @property
    def out_ch(self) -> int: ...

    @property
    def num_feat(self) -> int: ...

    @property
    def scale(self) -> int:
        """Output size over input size."""
        ...

    @property
    def input_multiple(self) -> int:
        """Input height/width must be a multiple of this."""
        ...

    def activation_channels(self) -> tuple[float, float, int]:
        """Memory cost in channels: (tail per output pixel, body per input pixel, widest activation per
        input pixel); `esrgan.inference.tiling.CostModel` turns them into bytes."""
        ...

    def state_dict_shapes(self) -> dict[str, tuple[int, ...]]:
        """Key -> shape of the network's state dict (the public key contract), without building it."""
        ...

    def summary(self) -> str:
        """One line for people: architecture, scale and size."""
        ...

    def to_dict(self) -> dict[str, object]: ...

    def build(self) -> Generator:
        """The network this describes, freshly initialised."""
        ...


class Generator(nn.Module):
    """Base of the super-resolution generators: `config` describes the network."""

    config: ArchConfig
    scale: int

    @property
    def input_multiple(self) -> int:
        """Input height/width must be a multiple of this."""
        return self.config.input_multiple
