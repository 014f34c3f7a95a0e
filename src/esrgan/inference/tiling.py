"""Tiled super-resolution: any image size in bounded memory, with feathered (blended) seams.

The model only ever sees tiles; the full-size output is one preallocated float32 buffer on the CPU into
which each tile is written with its blend weight. Each axis is cut into the fewest equal tiles that fit
the memory budget (`esrgan.inference.memory` says how large a tile may be), so only the overlap is
computed twice. Neighbouring tiles overlap by at least `overlap` input pixels and are blended with
raised-cosine weights that fall to ~0 at a tile's inner edges, where the network lacks context (its
zero padding differs from the real neighbourhood), so no step appears at tile borders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch.nn import functional as F

# Re-exported: the plans are `tileplan`'s, which needs no torch.
from esrgan.inference.tileplan import DEFAULT_TILE_OVERLAP as DEFAULT_TILE_OVERLAP
from esrgan.inference.tileplan import MAX_AUTO_TILE as MAX_AUTO_TILE
from esrgan.inference.tileplan import MIN_AUTO_TILE as MIN_AUTO_TILE
from esrgan.inference.tileplan import TilePlan as TilePlan
from esrgan.inference.tileplan import axis_tile_count as axis_tile_count
from esrgan.inference.tileplan import axis_tiles as axis_tiles
from esrgan.inference.tileplan import balanced_axis_tiles as balanced_axis_tiles
from esrgan.inference.tileplan import default_tile_overlap as default_tile_overlap
from esrgan.inference.tileplan import fixed_axis_tiles as fixed_axis_tiles
from esrgan.inference.tileplan import plan_tiles as plan_tiles

TileFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]


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
