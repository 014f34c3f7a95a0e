"""Small shared helpers: atomic file writes and verified downloads."""

from esrgan.utils.download import DownloadError, download, file_hash
from esrgan.utils.files import atomic_write, user_cache_dir

__all__ = ["DownloadError", "atomic_write", "download", "file_hash", "user_cache_dir"]
