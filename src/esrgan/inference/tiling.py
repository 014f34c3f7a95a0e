"""Tiled super-resolution: any image size in bounded memory, with feathered (blended) seams.

The model only ever sees tiles; the full-size output is one preallocated float32 buffer on the CPU into
which each tile is written with its blend weight. Each axis is cut into the fewest equal tiles that fit
the memory budget, so only the overlap is computed twice. Neighbouring tiles overlap by at least
`overlap` input pixels and are blended with raised-cosine weights that fall to ~0 at a tile's inner
edges, where the network lacks context (its zero padding differs from the real neighbourhood), so no
step appears at tile borders.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from esrgan.models import ArchConfig

TileFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]

# Peak bytes of activations per (input pixel x num_feat x scale^2), measured on this code's RRDBNet as
# the rise of peak RSS (CPU) or torch's peak allocation (CUDA, H100) over one tile: the x4/x8
# upsampling tail dominates (the nearest-upsampled map, the conv output and the previous stage's map
# are alive together). CPU: eager fp32 channels_last 10.4, eager fp32 contiguous 14.5 (oneDNN reorder
# buffers), ONNX Runtime fp32 15.4, OpenVINO int8 10.2-10.4, bf16 autocast 24-27 (fp32 and bf16 copies
# coexist). CUDA: fp32 9.0, fp16/bf16 4.5. The constants carry 10-20% margin.
_BYTES_PER_PIXEL = {
    ("cpu", "torch", "fp32"): 12.0,
    ("cpu", "onnxruntime", "fp32"): 17.0,
    ("cpu", "openvino", "fp32"): 12.0,  # int8 network, fp32 interface
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
MIN_AUTO_TILE = 32
MAX_AUTO_TILE = 2048
# Share of the free memory that `max_memory=None` lets an upscale use.
DEFAULT_MEMORY_FRACTION = 0.5

# Input pixels of overlap between neighbouring tiles. Seams are cross-faded in the middle of the overlap,
# so each output pixel keeps about half of it as real context: the 23-block x4 models need ~24 pixels to
# stay within 0.05 dB (PSNR to HR) of untiled output.
DEFAULT_TILE_OVERLAP = 48

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


def default_tile_overlap(tile: int | str) -> int:
    """The overlap to use with `tile` when none is given: `DEFAULT_TILE_OVERLAP`, or half the tile for
    explicit tiles under twice that, so a small tile still works (with less context) instead of failing."""
    if isinstance(tile, int) and not isinstance(tile, bool) and 0 < tile < 2 * DEFAULT_TILE_OVERLAP:
        return tile // 2
    return DEFAULT_TILE_OVERLAP


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
        self, *, dtype: torch.dtype, device_type: str = "cpu", runtime: str = "torch"
    ) -> float:
        """Peak activation bytes per input pixel of a tile (batch 1).

        max(tail ~ k * tail_channels * scale^2, body ~ k * body_channels), k measured per device,
        runtime and precision (see `_BYTES_PER_PIXEL`). An RRDBNet's body term (its widest dense-block
        concatenation with neighbours) only matters for x1 and x2 models, whose tail is small.
        """
        kind = "fp32" if dtype == torch.float32 else "half"
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
        dtype: torch.dtype = torch.float32,
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
        dtype: torch.dtype = torch.float32,
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


def balanced_axis_tiles(length: int, count: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """`count` equal tiles (start, size) covering [0, length), each as small as coverage allows:
    neighbours overlap by `overlap` (plus at most `multiple` - 1 for aligned starts), no more."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if count <= 1:
        return [(0, length)]
    extra = overlap + multiple - 1
    size = math.ceil((length + (count - 1) * extra) / count)
    size += (-size) % multiple
    while True:
        if size >= length:
            return [(0, length)]
        starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
        starts = [s - s % multiple for s in starts[:-1]] + [length - size]
        if all(b - a <= size - overlap for a, b in itertools.pairwise(starts)):
            return [(s, size) for s in starts]
        size += multiple


def axis_tile_count(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """Fewest tiles of at most `tile` pixels that cover `length` with `overlap` between neighbours."""
    if tile <= 0 or tile >= length:
        return 1
    stride = tile - overlap - (multiple - 1)
    if stride <= 0:
        raise ValueError(f"tile {tile} too small for overlap {overlap} (and input multiple {multiple})")
    count = max(2, math.ceil((length - tile) / stride) + 1)
    # Balanced tiles are at most `tile` for this count except when alignment rounds up; step past that.
    while balanced_axis_tiles(length, count, overlap, multiple)[0][1] > tile:
        count += 1
    lower = count - 1
    while lower >= 2 and balanced_axis_tiles(length, lower, overlap, multiple)[0][1] <= tile:
        count, lower = lower, lower - 1
    return count


def axis_tiles(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """(start, size) of the fewest equal tiles of at most `tile` pixels covering [0, length), starts
    aligned to `multiple`, neighbours overlapping by at least `overlap` (when `length` allows)."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    return balanced_axis_tiles(length, axis_tile_count(length, tile, overlap, multiple), overlap, multiple)


def fixed_axis_tiles(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """(start, size) of the fewest tiles of exactly `tile` pixels covering [0, length), evenly spread,
    starts aligned to `multiple`: the layout of an explicit tile size. Their overlap is at least
    `overlap`; the slack a balanced layout would save goes into wider overlaps, i.e. more context at
    the seams (what `benchmarks/tiling_error.py` measures), at the same tile count and memory."""
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if tile <= 0 or tile >= length:
        return [(0, length)]
    stride = tile - overlap - (multiple - 1)
    if stride <= 0:
        raise ValueError(f"tile {tile} too small for overlap {overlap} (and input multiple {multiple})")
    count = math.ceil((length - tile) / stride) + 1
    starts = [round(i * (length - tile) / (count - 1)) for i in range(count)]
    starts = [s - s % multiple for s in starts[:-1]] + [length - tile]
    return [(s, tile) for s in starts]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of one image go: `rows` and `cols` are (start, size) per axis, in input pixels
    of the image padded to the model's input multiple."""

    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def tile_hw(self) -> tuple[int, int]:
        return self.rows[0][1], self.cols[0][1]

    @property
    def computed_pixels(self) -> int:
        return sum(r for _, r in self.rows) * sum(c for _, c in self.cols)

    @property
    def compute_ratio(self) -> float:
        """Input pixels the network runs on (overlaps counted twice) over the image's pixels."""
        height = self.rows[-1][0] + self.rows[-1][1]
        width = self.cols[-1][0] + self.cols[-1][1]
        return self.computed_pixels / (height * width)

    @classmethod
    def square(cls, height: int, width: int, *, tile: int, overlap: int, multiple: int = 1) -> TilePlan:
        """An explicit tile size's plan: the fewest `tile` x `tile` tiles (0: one tile) covering a
        padded image, laid out by `fixed_axis_tiles`."""
        return cls(
            rows=tuple(fixed_axis_tiles(height, tile, overlap, multiple)),
            cols=tuple(fixed_axis_tiles(width, tile, overlap, multiple)),
        )


def plan_tiles(
    height: int,
    width: int,
    *,
    max_pixels: int,
    overlap: int,
    multiple: int = 1,
    min_side: int = MIN_AUTO_TILE,
) -> TilePlan:
    """Tiles of at most `max_pixels` input pixels each that cover a (padded) `height` x `width` image
    with the least computation: every (rows, cols) split is tried with balanced equal tiles, the one
    computing the fewest pixels (overlaps included) wins, ties going to fewer tiles.

    Tiles may be oblong (a wide image gets tall tiles rather than more of them). When even
    `min_side`-square tiles exceed `max_pixels`, those are used: memory cannot be bounded further.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if height * width <= max_pixels:
        return TilePlan(rows=((0, height),), cols=((0, width),))
    floor = max(min_side, overlap + multiple)
    floor += (-floor) % multiple
    best: tuple[int, int, TilePlan] | None = None
    for n_rows in range(1, math.ceil(height / max(floor - overlap - multiple + 1, 1)) + 2):
        rows = balanced_axis_tiles(height, n_rows, overlap, multiple)
        th = rows[0][1]
        if th < min(floor, height):
            break
        max_tw = max_pixels // th
        if max_tw < min(floor, width):
            continue
        cols = axis_tiles(width, max_tw, overlap, multiple)
        plan = TilePlan(rows=tuple(rows), cols=tuple(cols))
        key = (plan.computed_pixels, plan.count)
        if best is None or key < best[:2]:
            best = (*key, plan)
        if len(cols) == 1:
            break  # more rows only adds overlap
    if best is None:
        return TilePlan.square(
            height, width, tile=min(floor, max(height, width)), overlap=overlap, multiple=multiple
        )
    return best[2]


def tile_pixels_for_budget(
    cost: CostModel,
    *,
    budget: int,
    image_hw: tuple[int, int],
    batch: int = 1,
    dtype: torch.dtype = torch.float32,
    device_type: str = "cpu",
    runtime: str = "torch",
) -> int:
    """Largest tile area (input pixels) whose peak (`CostModel.peak_bytes`) fits in `budget` bytes
    (0 when not even the image's buffers fit), capped by int32 indexing."""
    if budget < cost.peak_bytes(image_hw, (0, 0), batch=batch, dtype=dtype, device_type=device_type):
        return 0  # not even the image's buffers fit
    held = cost.image_bytes(image_hw, batch=batch) if device_type in ("cpu", "mps") else 0
    spare = budget - held
    per_px = cost.activation_bytes_per_pixel(dtype=dtype, device_type=device_type, runtime=runtime) * batch
    return max(0, min(int(spare / per_px), cost.max_tile_pixels() // max(batch, 1)))


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
    return TilePlan.square(hp, wp, tile=tile, overlap=overlap, multiple=multiple).count


def tiled_apply(
    fn: TileFn,
    x: torch.Tensor,
    *,
    scale: int,
    out_channels: int,
    tile: int = 0,
    overlap: int = 0,
    multiple: int = 1,
    plan: TilePlan | None = None,
    on_tile: ProgressFn | None = None,
) -> torch.Tensor:
    """Apply an upscaling `fn` ((N,C,h,w) CPU float32 -> (N,out_channels,s*h,s*w) CPU float32) over
    tiles of `x` and blend the results into one preallocated output.

    The tiles are `plan` (for `x` padded to `multiple`), else the fewest `tile` x `tile` squares
    (0: the whole padded image at once) overlapping by at least `overlap` (`TilePlan.square`).
    """
    if x.dim() != 4:
        raise ValueError(f"expected an (N,C,H,W) tensor, got shape {tuple(x.shape)}")
    if tile < 0 or overlap < 0:
        raise ValueError(f"tile and overlap must be >= 0, got tile={tile}, overlap={overlap}")
    if tile % multiple:
        tile -= tile % multiple
    n, _, h, w = x.shape
    xp, _, _ = pad_to_multiple(x, multiple)
    hp, wp = xp.shape[-2:]
    if plan is None:
        plan = TilePlan.square(hp, wp, tile=tile, overlap=overlap, multiple=multiple)
    elif plan.rows[-1][0] + plan.rows[-1][1] != hp or plan.cols[-1][0] + plan.cols[-1][1] != wp:
        raise ValueError(f"tile plan does not cover the padded {hp}x{wp} input")
    total = plan.count
    if total == 1:
        out = fn(xp)
        if on_tile is not None:
            on_tile(1, 1)
        return out[..., : h * scale, : w * scale]

    row_w = axis_weights(plan.rows, scale, hp)
    col_w = axis_weights(plan.cols, scale, wp)
    out = torch.zeros(n, out_channels, hp * scale, wp * scale, dtype=torch.float32)
    done = 0
    for (ys, th), wy in zip(plan.rows, row_w, strict=True):
        for (xs, tw), wx in zip(plan.cols, col_w, strict=True):
            patch = fn(xp[..., ys : ys + th, xs : xs + tw])
            region = out[..., ys * scale : (ys + th) * scale, xs * scale : (xs + tw) * scale]
            region.addcmul_(patch, wy[:, None] * wx[None, :])
            del patch
            done += 1
            if on_tile is not None:
                on_tile(done, total)
    return out[..., : h * scale, : w * scale]
