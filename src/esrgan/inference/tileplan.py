"""Where the tiles of an image go (pure arithmetic, no torch): the fewest equal tiles per axis that fit
a memory budget (`plan_tiles`) or an explicit tile size (`TilePlan.square`). `esrgan.inference.tiling`
runs a plan; the warm start path (`esrgan.inference.warm`) asks whether a plan is one tile.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

MIN_AUTO_TILE = 32
MAX_AUTO_TILE = 2048

# Input pixels of overlap between neighbouring tiles. Seams are cross-faded in the middle of the overlap,
# so each output pixel keeps about half of it as real context: the 23-block x4 models need ~24 pixels to
# stay within 0.05 dB (PSNR to HR) of untiled output.
DEFAULT_TILE_OVERLAP = 48


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """The size an image is padded to (bottom and right) for a model that takes multiples of `multiple`."""
    return height + (-height) % multiple, width + (-width) % multiple


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
