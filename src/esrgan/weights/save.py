"""Write generators: our safetensors (self-describing) and the `.pth` layouts other tools read."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch

from esrgan.models import ArchConfig, CompactConfig, Generator, RRDBNetConfig
from esrgan.utils import atomic_write
from esrgan.weights.canonical import (
    ARCH_KEY,
    FORMAT_KEY,
    FORMAT_VERSION,
    check_fits,
    to_old_layout,
)

PthLayout = Literal["basicsr", "basicsr-params", "old"]
PTH_LAYOUTS: tuple[PthLayout, ...] = ("basicsr", "basicsr-params", "old")
_RESERVED = (ARCH_KEY, FORMAT_KEY)


def _plain(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared or non-contiguous storage; clones also detach from the live model.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in sd.items()}


def architecture_metadata(config: ArchConfig) -> dict[str, str]:
    return {ARCH_KEY: json.dumps(config.to_dict(), sort_keys=True), FORMAT_KEY: FORMAT_VERSION}


def save_state_dict(
    sd: Mapping[str, torch.Tensor],
    config: ArchConfig,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write canonical tensors + architecture metadata to a safetensors file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    check_fits(sd, config, source=str(path))
    extra = dict(metadata or {})
    clash = [k for k in extra if k in _RESERVED]
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved for the architecture description")
    bad = [k for k, v in extra.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise ValueError(f"safetensors metadata must map str to str (bad entries: {bad})")
    meta = {**extra, **architecture_metadata(config)}
    with atomic_write(path) as tmp:
        save_file(_plain(sd), str(tmp), metadata=meta)


def save_generator(
    model: torch.nn.Module, path: str | os.PathLike[str], *, metadata: dict[str, str] | None = None
) -> None:
    """Save `model` as safetensors whose metadata rebuilds it (`load_generator(path)`), atomically.

    DataParallel/DDP (`.module`) and torch.compile (`._orig_mod`) wrappers are taken off first, so their
    prefixes never reach the file.
    """
    for _ in range(4):
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if isinstance(inner, torch.nn.Module):
            model = inner
    if not isinstance(model, Generator):
        raise TypeError(
            f"save_generator expects an RRDBNet or SRVGGNetCompact generator, got {type(model).__name__}"
        )
    save_state_dict(model.state_dict(), model.config, path, metadata=metadata)


def save_pth(
    sd: Mapping[str, torch.Tensor],
    config: ArchConfig,
    path: str | os.PathLike[str],
    *,
    layout: PthLayout | str = "basicsr",
) -> None:
    """Write a `.pth` other tools load: BasicSR `{"params_ema": sd}` / `{"params": sd}`, or old `model.N`.

    `layout` may be any string (a command-line value): one that names no layout is a ValueError.

    Only plain dicts of tensors are pickled, so `torch.load(weights_only=True)` reads the result.
    """
    path = Path(path)
    check_fits(sd, config, source=str(path))
    if isinstance(config, CompactConfig) and config.scale != config.upscale:
        raise ValueError(
            f"{path}: a .pth cannot record the final resize to x{config.scale}: it would load as the "
            f"x{config.upscale} network (write .safetensors instead)"
        )
    plain = _plain(sd)
    if layout == "basicsr":
        obj: dict[str, object] = {"params_ema": plain}
    elif layout == "basicsr-params":
        obj = {"params": plain}
    elif layout == "old":
        if not isinstance(config, RRDBNetConfig):
            raise ValueError(f"the old ESRGAN layout describes RRDBNets only, not {config.arch}")
        if config.num_dense != 3 or config.num_convs != 5:
            raise ValueError("the old ESRGAN layout only describes 3 dense blocks of 5 convs per RRDB")
        obj = dict(to_old_layout(plain, config))
    else:
        raise ValueError(f"unknown .pth layout {layout!r}: use one of {PTH_LAYOUTS}")
    with atomic_write(path) as tmp:
        torch.save(obj, tmp)
