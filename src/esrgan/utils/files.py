"""Atomic file writes: a reader never sees a half-written file, a crash leaves no partial output.

A write goes to ``.{name}.tmp-XXXXXXXX{suffix}`` beside the target, is fsynced, renamed over the target,
and the folder is fsynced so that the rename survives a power loss too. A process killed mid-write
(SIGKILL, OOM killer) can leave such a temporary file; ``remove_stale_temp_files`` clears them when the
folder's only writer starts again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# mkstemp's random part: 8 characters of [a-z0-9_].
_TEMP_NAME = re.compile(r"^\..+\.tmp-[a-z0-9_]{8}")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is fsynced and renamed over `path`.

    On any exception the temporary file is removed and `path` is left untouched. `suffix` (default:
    the target's own) is kept so that writers which pick a format from the extension still work.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.tmp-",
        suffix=suffix if suffix is not None else target.suffix,
        dir=target.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the result the mode a plain open() would have (umask applied).
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        # After the writer: some (safetensors) replace the file they are given, with their own mode.
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def _json_sha256(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def write_checked_json(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Write `payload` as JSON atomically, with a sha256 over it that `read_checked_json` verifies: for
    caches whose damaged entries must be recomputed, never trusted."""
    text = json.dumps({"payload": payload, "sha256": _json_sha256(payload)}, indent=1)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_checked_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The payload `write_checked_json` wrote, or None when the file is missing or unreadable, is not
    such JSON, or its checksum does not match."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        payload = data["payload"]
        if not isinstance(payload, dict) or data["sha256"] != _json_sha256(payload):
            return None
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return payload


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files that interrupted ``atomic_write`` calls left in ``folder``.

    Only for a folder whose single writer is starting (a run folder when its training starts): a
    temporary file of a write in progress elsewhere would be deleted too. Returns the files removed.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            if _TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems refuse fsync on a folder (EINVAL)
            os.fsync(fd)
    finally:
        os.close(fd)


def user_cache_dir() -> Path:
    """Cache root for converted/downloaded weights and datasets (`$ESRGAN_CACHE` overrides)."""
    env = os.environ.get("ESRGAN_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("esrgan"))
