"""The error every training failure the user can act on is reported as."""

from __future__ import annotations


class TrainingError(RuntimeError):
    """The run cannot start or continue; the message is one line meant for the user."""


def io_reason(exc: BaseException) -> str:
    """Why a write failed, in words: the OS error behind it (torch and safetensors wrap ENOSPC in
    messages such as "unexpected pos 704 vs 598"), else the first line of the message."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain is short; the bound only guards against a cycle
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else exc.__class__.__name__
