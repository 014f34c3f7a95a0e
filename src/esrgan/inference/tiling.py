"""Tiled super-resolution: any image size in bounded memory, with feathered (blended) seams.

The model only ever sees tiles; the full-size output is one preallocated float32 buffer on the CPU into
which each tile is written with its blend weight. Each axis is cut into the fewest equal tiles that fit
the memory budget (`esrgan.inference.memory` says how large a tile may be), so only the overlap is
computed twice. Neighbouring tiles overlap by at least `overlap` input pixels and are blended with
raised-cosine weights that fall to ~0 at a tile's inner edges, where the network lacks context (its
zero padding differs from the real neighbourhood), so no step appears at tile borders.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F

TileFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]

MIN_AUTO_TILE = 32
MAX_AUTO_TILE = 2048

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
