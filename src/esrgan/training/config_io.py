"""Reading, overriding and writing training configs (JSON or YAML files, ``key.sub=value`` overrides).

Values are checked against the type hints of ``esrgan.training.config`` before the dataclasses are
built, so a wrong type names its dotted key; range checks run in each section's ``__post_init__`` and
get the section's name put in front here. Command-line overrides use ``key.sub=value`` (``key/sub=value``
as in the seed's table works too); values are parsed as YAML scalars or lists.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from esrgan.data.degradation_config import DegradationConfigError
from esrgan.training.config import Config, ConfigError
from esrgan.utils import atomic_write


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check/convert one value against a type hint; raise ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: invalid value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {value!r}")
        return _build(tp, value, key + ".")
    if origin is tuple:
        fixed = [a for a in args if a is not Ellipsis]
        if not isinstance(value, (list, tuple)) or (Ellipsis not in args and len(value) != len(args)):
            size = "a list" if Ellipsis in args else f"a list of {len(args)}"
            raise ConfigError(f"{key}: expected {size}, got {value!r}")
        types_ = [fixed[0]] * len(value) if Ellipsis in args else list(args)
        pairs = enumerate(zip(value, types_, strict=True))
        return tuple(_convert(v, t, f"{key}[{i}]") for i, (v, t) in pairs)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {_convert(k, args[0], key): _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # 2e5 in YAML/JSON is a float
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)  # YAML 1.1 reads "2e-4" as a string
                except ValueError:
                    pass
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {_type_name(tp)}")  # pragma: no cover - schema bug


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """``cls(**data)`` with every value type-checked; errors name the dotted key below ``prefix``."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (valid keys: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (ConfigError, DegradationConfigError) as exc:  # a section's check names its key in the section
        raise ConfigError(f"{prefix}{exc}") from None


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a nested mapping (seed JSON layout) into a ``Config``."""
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a mapping at the top level, got {type(data).__name__}")
    cfg: Config = _build(Config, data)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], parsed value); values are YAML (numbers, lists, true/false, null)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"{text}: override must look like key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{key}: cannot parse value {raw!r}") from exc
    return key.replace("/", ".").split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key.sub=value`` overrides applied (sections created as needed)."""
    out: dict[str, Any] = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(path[: i + 1])}: is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: invalid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None) -> Config:
    """Load a JSON/YAML config (or the defaults when ``path`` is None) and apply CLI overrides."""
    data = read_config_file(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path is not None else str(exc)) from None


def load_run_config(
    config: str | None, overrides: list[str], *, run_dir: Path | None, resume: bool | None
) -> tuple[Config, Path]:
    """The config and run folder of an ``esrgan train`` command line.

    ``config`` may be left out when resuming (``--resume --run-dir RUN``): the run's ``config.yaml`` is
    used, and a first argument that is an override (``key=value``, no such file) joins ``overrides``.
    The run folder defaults to ``runs/<config file name>``.
    """
    extra = list(overrides)
    if config is not None and "=" in config and not Path(config).exists():
        extra.insert(0, config)
        config = None
    if config is None:
        if run_dir is None or not resume:
            raise ConfigError("CONFIG is required (it may be omitted only with --resume --run-dir RUN)")
        path = run_dir / "config.yaml"
    else:
        path = Path(config)
    return load_config(path, extra), run_dir if run_dir is not None else Path("runs") / path.stem


def save_config(cfg: Config, path: str | os.PathLike[str]) -> None:
    """Write the resolved config (YAML), atomically."""
    with atomic_write(path) as tmp:
        tmp.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
