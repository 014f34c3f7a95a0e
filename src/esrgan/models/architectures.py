"""Generator architectures by name: rebuild a config from its stored dictionary (metadata, checkpoints)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields

from esrgan.models.arch import ArchConfig
from esrgan.models.compact import CompactConfig
from esrgan.models.rrdbnet import RRDBNetConfig

ARCHITECTURES: dict[str, type[RRDBNetConfig] | type[CompactConfig]] = {
    RRDBNetConfig.arch: RRDBNetConfig,
    CompactConfig.arch: CompactConfig,
}


def config_from_dict(raw: Mapping[str, object]) -> ArchConfig:
    """The config `to_dict` wrote; no `arch` entry means RRDBNet (files older than other architectures).

    ValueError names an unknown architecture or unknown fields; values are validated by the config.
    """
    values = dict(raw)
    name = values.pop("arch", RRDBNetConfig.arch)
    cls = ARCHITECTURES.get(str(name))
    if cls is None:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {name} fields {sorted(unknown)}")
    return cls(**values)  # type: ignore[arg-type]
