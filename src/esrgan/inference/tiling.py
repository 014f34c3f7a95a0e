"""Tiled super-resolution: any image size in bounded memory, with feathered (blended) seams.

The model only ever sees tiles of at most `tile` x `tile` input pixels; the full-size output is
accumulated on the CPU in float32. Neighbouring tiles overlap by at least `overlap` input pixels and are
blended with raised-cosine weights that fall to ~0 at a tile's inner edges, where the network lacks
context (its zero padding differs from the real neighbourhood), so no step appears at tile borders.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

TileFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]

# Peak bytes of activations per (input pixel x num_feat x scale^2), measured on this code's RRDBNet:
# the x4/x8 upsampling tail dominates (the nearest-upsampled map, the conv output and the previous
# stage's map are alive together). CPU (peak RSS): fp32 14-17, bf16 autocast 24-27 (oneDNN reorder
# buffers; fp32 and bf16 copies coexist). CUDA (torch's peak allocation, H100): fp32 9.0, fp16 and
# bf16 4.5. The constants carry 10-20% margin.
_BYTES_CPU_FP32 = 18.0
_BYTES_CPU_AUTOCAST = 30.0
_BYTES_DEVICE_FP32 = 10.0
_BYTES_DEVICE_HALF = 5.0
# Largest activation (elements) kept below 2**31: some CUDA kernels index with int32.
_MAX_ELEMENTS = 2**31 - 1
_MIN_AUTO_TILE = 32
_MAX_AUTO_TILE = 2048

# Input pixels of overlap between neighbouring tiles. Seams are cross-faded in the middle of the overlap,
# so each output pixel keeps about half of it as real context: the 23-block x4 models need ~24 pixels to
# stay within 0.05 dB (PSNR to HR) of untiled output.
DEFAULT_TILE_OVERLAP = 48


def default_tile_overlap(tile: int | str) -> int:
    """The overlap to use with `tile` when none is given: `DEFAULT_TILE_OVERLAP`, or half the tile for
    explicit tiles under twice that, so a small tile still works (with less context) instead of failing."""
    if isinstance(tile, int) and not isinstance(tile, bool) and 0 < tile < 2 * DEFAULT_TILE_OVERLAP:
        return tile // 2
    return DEFAULT_TILE_OVERLAP


@dataclass(frozen=True)
class CostModel:
    """Memory cost of running a tile; see `activation_bytes_per_pixel`."""

    num_feat: int
    num_grow_ch: int
    scale: int
    unshuffle: int = 1

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> CostModel:
        cfg = getattr(model, "config", None)
        if cfg is None:
            raise ValueError("tile='auto' needs a model with a .config (RRDBNet); pass an explicit tile size")
        return cls(
            num_feat=cfg.num_feat,
            num_grow_ch=cfg.num_grow_ch,
            scale=cfg.scale,
            unshuffle=getattr(model, "unshuffle_factor", 1),
        )

    def activation_bytes_per_pixel(self, *, dtype: torch.dtype, device_type: str = "cpu") -> float:
        """Peak activation bytes per input pixel (batch 1).

        max(upsampling tail ~ k * num_feat * scale^2, RRDB body ~ k * (2 num_feat + 4 num_grow) / u^2)
        with k measured: CPU fp32 18, CPU bf16/fp16 (autocast) 30; GPU fp32 10, GPU fp16/bf16 5. The
        body term (the widest dense-block concatenation, num_feat + 4 num_grow channels, with its
        neighbours) only matters for x1 and x2 models, whose tail is small.
        """
        if device_type == "cpu":
            k = _BYTES_CPU_FP32 if dtype == torch.float32 else _BYTES_CPU_AUTOCAST
        else:
            k = _BYTES_DEVICE_FP32 if dtype == torch.float32 else _BYTES_DEVICE_HALF
        tail = k * self.num_feat * self.scale**2
        body = k * (2 * self.num_feat + 4 * self.num_grow_ch) / self.unshuffle**2
        return max(tail, body)

    def max_tile_for_elements(self) -> int:
        widest = max(self.num_feat * self.scale**2, self.num_feat + 4 * self.num_grow_ch)
        return math.isqrt(_MAX_ELEMENTS // widest)


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
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        # MPS shares system RAM; torch reports no free figure.
        return available_cpu_memory()
    return available_cpu_memory()


def auto_tile_size(
    cost: CostModel,
    *,
    device: torch.device,
    dtype: torch.dtype,
    image_hw: tuple[int, int],
    batch: int = 1,
    multiple: int = 1,
    fraction: float = 0.5,
    available: int | None = None,
) -> int:
    """Largest square tile (input pixels) whose activations fit in `fraction` of free memory.

    On the CPU the full-size float32 input and output accumulators share that memory and are
    subtracted first. Returns 0 (no tiling) when the whole image fits in one tile.
    """
    h, w = image_hw
    free = available if available is not None else available_device_memory(device)
    budget = free * fraction
    if device.type == "cpu" or device.type == "mps":
        c = 4  # RGB(A) worst case
        budget -= 4 * batch * c * h * w * (1 + cost.scale**2)
    per_px = cost.activation_bytes_per_pixel(dtype=dtype, device_type=device.type) * batch
    tile = int(math.sqrt(max(budget, 0) / per_px)) if budget > 0 else 0
    tile = min(tile, _MAX_AUTO_TILE, cost.max_tile_for_elements())
    tile = max(tile, _MIN_AUTO_TILE)
    tile -= tile % max(multiple, 1)
    if tile >= max(h, w):
        return 0
    return tile


def axis_tiles(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """(start, size) of tiles covering [0, length); all full-size, evenly spread, starts aligned to
    `multiple`, neighbours overlapping by at least `overlap` (when `length` allows)."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if tile <= 0 or tile >= length:
        return [(0, length)]
    # Alignment can move a start left by up to multiple-1, so plan with that much extra overlap.
    stride = tile - overlap - (multiple - 1)
    if stride <= 0:
        raise ValueError(f"tile {tile} too small for overlap {overlap} (and input multiple {multiple})")
    n = math.ceil((length - tile) / stride) + 1
    starts = []
    for i in range(n):
        s = round(i * (length - tile) / (n - 1))
        starts.append(s - s % multiple)
    starts[-1] = length - tile  # both multiples of `multiple`; the last tile ends at the border
    return [(s, tile) for s in starts]


def _ramp(n: int) -> torch.Tensor:
    """Blend weights rising across an overlap of n samples, from the tile's edge inwards.

    Zero over the outer quarter (pixels with the least context, where the model's zero padding shows
    most), a raised cosine over the middle half, one over the inner quarter. Two mirrored ramps over
    the same overlap sum to one, so the blend is a plain cross-fade centred on the overlap's middle.
    """
    t = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    u = ((t - 0.25) * 2).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * u)


def axis_weights(tiles: Sequence[tuple[int, int]], scale: int, length: int) -> list[torch.Tensor]:
    """Per-tile 1-D blend weights in output pixels, normalised so they sum to 1 at every position."""
    raw = []
    for i, (start, size) in enumerate(tiles):
        w = torch.ones(size * scale, dtype=torch.float64)
        if i > 0:
            prev_start, prev_size = tiles[i - 1]
            ov = (prev_start + prev_size - start) * scale
            if ov > 0:
                w[:ov] *= _ramp(ov)
        if i < len(tiles) - 1:
            next_start = tiles[i + 1][0]
            ov = (start + size - next_start) * scale
            if ov > 0:
                w[-ov:] *= _ramp(ov).flip(0)
        raw.append(w)
    # A floor keeps every covered position's total positive when three or more tiles overlap.
    raw = [w.clamp_(min=1e-12) for w in raw]
    total = torch.zeros(length * scale, dtype=torch.float64)
    for (start, size), w in zip(tiles, raw, strict=True):
        total[start * scale : (start + size) * scale] += w
    return [
        (w / total[start * scale : (start + size) * scale]).float()
        for (start, size), w in zip(tiles, raw, strict=True)
    ]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad H and W up to a multiple (replicate works for any size, even 1 pixel)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, ph, pw


def count_tiles(h: int, w: int, *, tile: int, overlap: int, multiple: int = 1) -> int:
    hp, wp = h + (-h) % multiple, w + (-w) % multiple
    return len(axis_tiles(hp, tile, overlap, multiple)) * len(axis_tiles(wp, tile, overlap, multiple))


def tiled_apply(
    fn: TileFn,
    x: torch.Tensor,
    *,
    scale: int,
    out_channels: int,
    tile: int,
    overlap: int,
    multiple: int = 1,
    on_tile: ProgressFn | None = None,
) -> torch.Tensor:
    """Apply an upscaling `fn` ((N,C,h,w) CPU float32 -> (N,out_channels,s*h,s*w) CPU float32) over
    tiles of `x` and blend the results. `tile=0` runs the whole (padded) image at once."""
    if x.dim() != 4:
        raise ValueError(f"expected an (N,C,H,W) tensor, got shape {tuple(x.shape)}")
    if tile < 0 or overlap < 0:
        raise ValueError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    if tile % multiple:
        tile -= tile % multiple
    n, _, h, w = x.shape
    xp, _, _ = pad_to_multiple(x, multiple)
    hp, wp = xp.shape[-2:]
    rows = axis_tiles(hp, tile, overlap, multiple)
    cols = axis_tiles(wp, tile, overlap, multiple)
    total = len(rows) * len(cols)
    if total == 1:
        out = fn(xp)
        if on_tile is not None:
            on_tile(1, 1)
        return out[..., : h * scale, : w * scale]

    row_w = axis_weights(rows, scale, hp)
    col_w = axis_weights(cols, scale, wp)
    out = torch.zeros(n, out_channels, hp * scale, wp * scale, dtype=torch.float32)
    done = 0
    for (ys, th), wy in zip(rows, row_w, strict=True):
        for (xs, tw), wx in zip(cols, col_w, strict=True):
            patch = fn(xp[..., ys : ys + th, xs : xs + tw])
            weight = wy[:, None] * wx[None, :]
            out[..., ys * scale : (ys + th) * scale, xs * scale : (xs + tw) * scale].addcmul_(patch, weight)
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    return out[..., : h * scale, : w * scale]
