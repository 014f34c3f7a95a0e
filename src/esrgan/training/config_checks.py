"""The error and the small range checks that every config section uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn


class ConfigError(ValueError):
    """A config file, key or value is invalid; the message names the key."""


def fail(key: str, message: str) -> NoReturn:
    raise ConfigError(f"{key}: {message}")


def require(section: object, ok: Callable[[Any], bool], expected: str, *names: str) -> None:
    """Each named field of ``section`` that is set (not None) must satisfy ``ok``."""
    for name in names:
        value = getattr(section, name)
        if value is not None and not ok(value):
            fail(name, f"must be {expected}, got {value}")


def at_least(section: object, minimum: int, *names: str) -> None:
    require(section, lambda v: v >= minimum, f">= {minimum}", *names)
