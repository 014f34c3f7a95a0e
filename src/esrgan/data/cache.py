"""Decoded-image cache: PNG/JPEG decoding and on-the-fly LR generation happen once per image.

Two layers. In memory: a dict of decoded uint8 arrays per process. On disk (optional): one `.npy` file
per decoded or derived image, read back memory-mapped, so DataLoader workers share the pages through the
OS page cache instead of each holding a private copy, a random crop touches only the rows it needs, and
later runs skip decoding entirely. Disk entries are keyed by the source's absolute path, size and
modification time, so an edited source image is never served stale.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np

from esrgan.io import read_rgb
from esrgan.utils import atomic_write, user_cache_dir


def default_cache_dir() -> Path:
    """Where decoded images go by default: `<user cache>/decoded` (`$ESRGAN_CACHE` moves it)."""
    return user_cache_dir() / "decoded"


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to uint8 HWC RGB (grayscale replicated, alpha dropped, 16-bit rounded to 8)."""
    rgb = read_rgb(path)
    if rgb.dtype == np.uint16:
        return np.round(rgb / 65535.0 * 255.0).astype(np.uint8)
    return rgb


def _read_only(folder: Path) -> bool:
    """Whether `folder`, or the nearest existing folder above it, cannot or must not be written to.

    A folder without any write bit is read-only by intent (a shared dataset mount, say), even for root.
    """
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # `folder` is absolute
    write_bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    return not existing.stat().st_mode & write_bits or not os.access(existing, os.W_OK)


class ImageCache:
    """Decoded uint8 HWC images keyed by source file (and a variant name for derived images).

    `memory`: keep decoded arrays in this process. `disk_dir`: also store them as `.npy` files there and
    read them back memory-mapped; nothing is ever written beside the source images, and a read-only
    `disk_dir` is an error at the first write (a dataset folder is no place for a cache).
    `max_memory_bytes` bounds the in-memory layer (entries beyond it are simply not kept;
    memory-mapped entries cost nothing and are always kept).
    """

    def __init__(
        self,
        *,
        memory: bool = True,
        disk_dir: str | os.PathLike[str] | None = None,
        max_memory_bytes: int | None = None,
    ) -> None:
        if max_memory_bytes is not None and max_memory_bytes < 0:
            raise ValueError(f"max_memory_bytes must be >= 0, got {max_memory_bytes}")
        self.memory = memory
        self.disk_dir = Path(disk_dir).expanduser().absolute() if disk_dir is not None else None
        self._disk_checked = False
        self.max_memory_bytes = max_memory_bytes
        self._entries: dict[tuple[str, str], np.ndarray] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __getstate__(self) -> dict[str, object]:
        # Workers started with spawn/forkserver get an empty memory layer instead of a pickled copy of it.
        state = self.__dict__.copy()
        state["_entries"] = {}
        state["_bytes"] = 0
        return state

    def image(self, path: str | os.PathLike[str]) -> np.ndarray:
        """The decoded image at `path` (read-only array; copy before modifying)."""
        return self.derived(path, "decoded", lambda: load_image(path))

    def derived(
        self, path: str | os.PathLike[str], variant: str, make: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """A uint8 array derived from the file at `path` (e.g. its on-the-fly LR), made once by `make`."""
        key = (os.fspath(Path(path).absolute()), variant)
        arr = self._entries.get(key)
        if arr is not None:
            self.hits += 1
            return arr
        self.misses += 1
        arr = self._load_disk(key) if self.disk_dir is not None else None
        if arr is None:
            arr = np.ascontiguousarray(make())
            if arr.dtype != np.uint8:
                raise ValueError(f"{path}: cached images must be uint8, got {arr.dtype}")
            if self.disk_dir is not None:
                self._store_disk(key, arr)
                mapped = self._load_disk(key)
                arr = mapped if mapped is not None else arr
        arr.setflags(write=False)
        if self.memory:
            size = 0 if isinstance(arr, np.memmap) else arr.nbytes
            if self.max_memory_bytes is None or self._bytes + size <= self.max_memory_bytes:
                self._entries[key] = arr
                self._bytes += size
        return arr

    def clear(self) -> None:
        """Drop the in-memory layer (disk entries stay)."""
        self._entries.clear()
        self._bytes = 0

    def _disk_path(self, key: tuple[str, str]) -> Path | None:
        assert self.disk_dir is not None
        try:
            st = os.stat(key[0])
        except OSError:
            return None
        ident = f"{key[0]}|{st.st_size}|{st.st_mtime_ns}|{key[1]}".encode()
        digest = hashlib.sha256(ident).hexdigest()[:32]
        return self.disk_dir / digest[:2] / f"{digest}.npy"

    def _load_disk(self, key: tuple[str, str]) -> np.ndarray | None:
        path = self._disk_path(key)
        if path is None or not path.is_file():
            return None
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            # A damaged entry (disk full during an old run, say) is rebuilt rather than trusted.
            path.unlink(missing_ok=True)
            return None

    def _store_disk(self, key: tuple[str, str], arr: np.ndarray) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        if not self._disk_checked:
            assert self.disk_dir is not None
            if _read_only(self.disk_dir):
                raise ValueError(
                    f"{self.disk_dir}: the image cache folder is read-only; give ImageCache a writable "
                    "disk_dir (default: the user cache folder)"
                )
            self._disk_checked = True
        with atomic_write(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
