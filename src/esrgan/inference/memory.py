"""How much memory an upscale needs and how much there is: the measured cost of a tile's activations
and of the whole image's buffers (`CostModel`), the largest tile a budget allows, memory sizes as text,
and the free memory of the CPU or an accelerator. `esrgan.inference.tiling` lays the tiles out.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the warm start path (`esrgan.inference.warm`) uses this module without torch
    import torch

    from esrgan.models import ArchConfig

# Peak bytes of activations per (input pixel x num_feat x scale^2), measured on this code's RRDBNet as
# the rise of peak RSS (CPU) or torch's peak allocation (CUDA, H100) over one tile: the x4/x8
# upsampling tail dominates (the nearest-upsampled map, the conv output and the previous stage's map
# are alive together). CPU: eager fp32 channels_last 10.4, eager fp32 contiguous 14.5 (oneDNN reorder
# buffers), ONNX Runtime fp32 15.4, OpenVINO fp32 12.4 and int8 10.2-10.4, OpenVINO bf16 6.5 (23 blocks;
# more on small networks), bf16 autocast 24-27 (fp32 and bf16 copies coexist). CUDA: fp32 9.0, fp16/bf16
# 4.5. The constants carry 10-20% margin; tests/test_inference_tiling.py checks the peak RSS of real
# OpenVINO runs against the budget.
_BYTES_PER_PIXEL = {
    ("cpu", "torch", "fp32"): 12.0,
    ("cpu", "onnxruntime", "fp32"): 17.0,
    ("cpu", "openvino", "fp32"): 14.0,  # fp32 and int8 networks (fp32 interface)
    ("cpu", "openvino", "half"): 9.0,  # bf16 inference precision
    ("cpu", "torch", "half"): 30.0,
    ("device", "torch", "fp32"): 10.0,
    ("device", "torch", "half"): 5.0,
}
# Bytes per output value: while tiles run, the float32 output buffer; once they are done (activations
# freed), that buffer, the one float copy that quantising for a file makes, and the 8-bit array plus
# the encoder's copy of it.
OUTPUT_BYTES_WHILE_TILING = 4
OUTPUT_BYTES_WHEN_WRITING = 10
# Bytes per input value: the float32 input and its padded copy.
INPUT_BYTES_PER_VALUE = 8
# Largest activation (elements) kept below 2**31: some CUDA kernels index with int32.
_MAX_ELEMENTS = 2**31 - 1
# Share of the free memory that `max_memory=None` lets an upscale use.
DEFAULT_MEMORY_FRACTION = 0.5

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_memory(text: str) -> int:
    """Bytes in a size such as `2GiB`, `1.5 GB`, `512MiB` or `1000000` (bytes).

    KB/MB/GB are powers of 1000 and KiB/MiB/GiB powers of 1024, as everywhere else; the unit is
    case-insensitive. A size that is not positive, or an unknown unit, is a ValueError.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or (unit and unit not in _UNITS):
        raise ValueError(
            f"{text!r} is not a memory size: use a number with B, KB, MB, GB (x1000) or KiB, MiB, GiB "
            "(x1024), e.g. 2GiB"
        )
    value = int(float(match.group(1)) * _UNITS[unit or "b"])
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return value


def format_memory(n: float) -> str:
    """`2.0 GiB`-style text for a byte count (for messages and reports)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class CostModel:
    """Memory cost of upscaling an image in tiles; see `activation_bytes_per_pixel` and `peak_bytes`.
    Channels, from the generator's `activation_channels`: held per output pixel by the upsampling tail,
    per input pixel by the body, and per input pixel by the widest single activation."""

    tail_channels: float
    body_channels: float
    widest_channels: int
    scale: int
    in_ch: int = 3
    out_ch: int = 3

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> CostModel:
        cfg = getattr(model, "config", None)
        if cfg is None or not hasattr(cfg, "activation_channels"):
            raise ValueError("tile='auto' needs a generator with a .config; pass an explicit tile size")
        return cls.for_config(cfg)

    @classmethod
    def for_config(cls, cfg: ArchConfig) -> CostModel:
        tail, body, widest = cfg.activation_channels()
        return cls(tail, body, widest, cfg.scale, cfg.in_ch, cfg.out_ch)

    def activation_bytes_per_pixel(
        self, *, dtype: torch.dtype | None = None, device_type: str = "cpu", runtime: str = "torch"
    ) -> float:
        """Peak activation bytes per input pixel of a tile (batch 1).

        max(tail ~ k * tail_channels * scale^2, body ~ k * body_channels), k measured per device,
        runtime and precision (see `_BYTES_PER_PIXEL`). An RRDBNet's body term (its widest dense-block
        concatenation with neighbours) only matters for x1 and x2 models, whose tail is small.
        """
        import torch

        kind = "fp32" if dtype is None or dtype == torch.float32 else "half"
        where = "cpu" if device_type == "cpu" else "device"
        k = _BYTES_PER_PIXEL.get((where, runtime, kind)) or _BYTES_PER_PIXEL[(where, "torch", kind)]
        return max(k * self.tail_channels * self.scale**2, k * self.body_channels)

    def max_tile_pixels(self) -> int:
        """Largest tile area (input pixels) whose widest activation stays under int32 indexing."""
        return _MAX_ELEMENTS // self.widest_channels

    def max_tile_for_elements(self) -> int:
        return math.isqrt(self.max_tile_pixels())

    def image_bytes(self, image_hw: tuple[int, int], *, batch: int = 1, writing: bool = False) -> int:
        """CPU bytes held for the whole image: the input copies and the output buffer while tiles run,
        or (`writing`) the output with what writing it to a file adds, once the tiles are done."""
        h, w = image_hw
        outputs = batch * self.out_ch * h * w * self.scale**2
        if writing:
            return OUTPUT_BYTES_WHEN_WRITING * outputs
        return INPUT_BYTES_PER_VALUE * batch * self.in_ch * h * w + OUTPUT_BYTES_WHILE_TILING * outputs

    def tile_bytes(
        self,
        tile_hw: tuple[int, int],
        *,
        batch: int = 1,
        dtype: torch.dtype | None = None,
        device_type: str = "cpu",
        runtime: str = "torch",
    ) -> int:
        """Peak bytes of running one tile of `tile_hw` input pixels."""
        per_px = self.activation_bytes_per_pixel(dtype=dtype, device_type=device_type, runtime=runtime)
        return int(per_px * batch * tile_hw[0] * tile_hw[1])

    def peak_bytes(
        self,
        image_hw: tuple[int, int],
        tile_hw: tuple[int, int],
        *,
        batch: int = 1,
        dtype: torch.dtype | None = None,
        device_type: str = "cpu",
        runtime: str = "torch",
    ) -> int:
        """Estimated peak bytes an upscale adds on top of the loaded model: on the CPU the image's
        buffers plus one tile's activations, or writing the output once the tiles are done, whichever
        is larger; on an accelerator (whose outputs go to the CPU) the tile's activations."""
        tile = self.tile_bytes(tile_hw, batch=batch, dtype=dtype, device_type=device_type, runtime=runtime)
        if device_type in ("cpu", "mps"):
            tiling = tile + self.image_bytes(image_hw, batch=batch)
            return max(tiling, self.image_bytes(image_hw, batch=batch, writing=True))
        return tile


def available_cpu_memory() -> int:
    """Bytes of RAM available to new allocations (MemAvailable; else free pages via sysconf)."""
    meminfo = Path("/proc/meminfo")
    try:
        match = re.search(r"^MemAvailable:\s+(\d+)\s+kB", meminfo.read_text(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        # No way to ask (e.g. macOS without /proc): assume a modest 4 GiB rather than guessing big.
        return 4 * 2**30


def available_device_memory(device: torch.device) -> int:
    if device.type == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        # MPS shares system RAM; torch reports no free figure.
        return available_cpu_memory()
    return available_cpu_memory()


def process_rss() -> int:
    """Resident bytes of this process now (Linux /proc; 0 where unknown)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


def tile_pixels_for_budget(
    cost: CostModel,
    *,
    budget: int,
    image_hw: tuple[int, int],
    batch: int = 1,
    dtype: torch.dtype | None = None,
    device_type: str = "cpu",
    runtime: str = "torch",
) -> int:
    """Largest tile area (input pixels) whose peak (`CostModel.peak_bytes`) fits in `budget` bytes
    (0 when not even the image's buffers fit), capped by int32 indexing. `dtype` None: float32."""
    per_px = cost.activation_bytes_per_pixel(dtype=dtype, device_type=device_type, runtime=runtime)
    return tile_pixels_for_bytes(
        cost, budget=budget, image_hw=image_hw, per_px=per_px, batch=batch, device_type=device_type
    )


def tile_pixels_for_bytes(
    cost: CostModel,
    *,
    budget: int,
    image_hw: tuple[int, int],
    per_px: float,
    batch: int = 1,
    device_type: str = "cpu",
) -> int:
    """`tile_pixels_for_budget` for a path whose activations cost `per_px` bytes per input pixel (batch
    1): what the warm start path, which knows the figure but has no torch dtype, asks."""
    # The image's buffers, held on the CPU while tiling; they, or writing the output, must fit first.
    held = cost.image_bytes(image_hw, batch=batch) if device_type in ("cpu", "mps") else 0
    writing = cost.image_bytes(image_hw, batch=batch, writing=True) if held else 0
    if budget < max(held, writing):
        return 0
    spare = budget - held
    return max(0, min(int(spare / (per_px * batch)), cost.max_tile_pixels() // max(batch, 1)))
