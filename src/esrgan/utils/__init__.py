"""Small shared helpers: atomic file writes, checksummed JSON caches and verified downloads."""

from esrgan.utils.download import DownloadError, download, file_hash
from esrgan.utils.files import atomic_write, read_checked_json, user_cache_dir, write_checked_json

__all__ = [
    "DownloadError",
    "atomic_write",
    "download",
    "file_hash",
    "read_checked_json",
    "user_cache_dir",
    "write_checked_json",
]
