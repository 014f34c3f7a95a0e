"""Atomic writes and verified downloads (against a local HTTP server on 127.0.0.1)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from esrgan.utils import DownloadError, atomic_write, download


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]  # temp file removed
    with atomic_write(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == tmp_path
        tmp.write_text("new")
    assert target.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_download_verifies_and_reuses(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    payload = os.urandom(200_000)
    (root / "w.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "cache" / "w.bin"
    assert download(f"{base}/w.bin", dest, sha256=sha, progress=False) == dest
    assert dest.read_bytes() == payload
    (root / "w.bin").unlink()  # a verified cached file is reused without the network
    assert download(f"{base}/w.bin", dest, sha256_prefix=sha[:8], progress=False) == dest


def test_download_hash_mismatch_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    (root / "w.bin").write_bytes(b"not the weights")
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match="md5 mismatch"):
        download(f"{base}/w.bin", dest, md5="0" * 32, progress=False)
    assert not dest.exists() and not dest.with_name("w.bin.part").exists()


def test_download_http_error_without_resume_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    base, _ = server
    dest = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match="404"):
        download(f"{base}/missing.bin", dest, resume=False, progress=False)
    assert not dest.exists() and not dest.with_name("missing.bin.part").exists()
