"""DIV2K/BSDS500 downloads against a local HTTP server serving tiny archives with the real layouts."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from esrgan.data import (
    BSDS500,
    DIV2K,
    ArchiveError,
    ArchiveSpec,
    DatasetError,
    download_bsds500,
    download_div2k,
    extract_archive,
    install_archive,
)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from `root`, honouring `Range: bytes=N-` (the stdlib handler ignores Range)."""

    root: Path
    log: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        path = self.root / self.path.lstrip("/")
        self.log.append((self.path, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404, "not found")
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-"):
            start = int(rng[len("bytes=") : -1])
            if start >= len(data):
                self.send_error(416, "range not satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, list]]:
    root = tmp_path / "www"
    root.mkdir()
    log: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Handler,), {"root": root, "log": log})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root, log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _png(h: int, w: int, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(h: int, w: int, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    # Stored (uncompressed) so that flipping a byte of a member's data is a CRC error, not a zlib one.
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _div2k_archives(www: Path) -> dict[str, str]:
    hr = {f"DIV2K_train_HR/{i:04d}.png": _png(32, 40, i) for i in (1, 2, 3)}
    lr = {f"DIV2K_train_LR_bicubic/X4/{i:04d}x4.png": _png(8, 10, 10 + i) for i in (1, 2, 3)}
    a = _zip(www / "DIV2K_train_HR.zip", hr)
    b = _zip(www / "DIV2K_train_LR_bicubic_X4.zip", lr)
    return {a.name: _md5(a), b.name: _md5(b)}


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".extract-") or p.suffix == ".part"]


def test_div2k_download_extracts_official_layout(server: tuple[str, Path, list], tmp_path: Path) -> None:
    url, www, log = server
    md5 = _div2k_archives(www)
    root = tmp_path / "data"
    with pytest.raises(DatasetError, match="download_div2k"):
        DIV2K(root, split="train", scale=4)  # the constructor only reads
    assert not log
    download_div2k(root, split="train", scale=4, base_url=url, md5=md5, progress=False)
    ds = DIV2K(root, split="train", scale=4)
    assert len(ds) == 3
    assert (root / "DIV2K" / "DIV2K_train_HR" / "0001.png").is_file()
    assert (root / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4" / "0003x4.png").is_file()
    item = ds[2]
    assert item["hr"].shape == (3, 32, 40) and item["lr"].shape == (3, 8, 10)
    assert not _leftovers(root)
    assert not list((root / "DIV2K" / "downloads").iterdir())  # archives removed after extraction
    # Already installed: no further requests.
    n = len(log)
    download_div2k(root, split="train", scale=4, base_url=url, md5=md5, progress=False)
    assert len(log) == n


def test_partial_download_is_resumed_with_range(server: tuple[str, Path, list], tmp_path: Path) -> None:
    url, www, log = server
    md5 = _div2k_archives(www)
    data = (www / "DIV2K_train_HR.zip").read_bytes()
    downloads = tmp_path / "data" / "DIV2K" / "downloads"
    downloads.mkdir(parents=True)
    half = len(data) // 2
    (downloads / "DIV2K_train_HR.zip.part").write_bytes(data[:half])
    download_div2k(tmp_path / "data", split="train", scale=4, base_url=url, md5=md5, progress=False)
    assert len(DIV2K(tmp_path / "data", split="train", scale=4)) == 3
    assert ("/DIV2K_train_HR.zip", f"bytes={half}-") in log
    assert (tmp_path / "data" / "DIV2K" / "DIV2K_train_HR" / "0002.png").read_bytes() == _png(32, 40, 2)


def test_checksum_mismatch_is_an_error_and_leaves_nothing(
    server: tuple[str, Path, list], tmp_path: Path
) -> None:
    url, www, _ = server
    md5 = _div2k_archives(www)
    md5["DIV2K_train_HR.zip"] = "0" * 32
    root = tmp_path / "data"
    with pytest.raises(DatasetError, match=r"DIV2K_train_HR\.zip.*md5 mismatch"):
        download_div2k(root, split="train", scale=4, base_url=url, md5=md5, progress=False)
    assert not (root / "DIV2K" / "DIV2K_train_HR").exists()
    assert not _leftovers(root)
    assert not (root / "DIV2K" / "downloads" / "DIV2K_train_HR.zip").exists()


def test_corrupt_zip_names_the_file_and_extracts_nothing(
    server: tuple[str, Path, list], tmp_path: Path
) -> None:
    url, www, _ = server
    members = {f"DIV2K_valid_HR/{i:04d}.png": _png(16, 16, i) for i in (801, 802)}
    path = _zip(www / "DIV2K_valid_HR.zip", members)
    raw = bytearray(path.read_bytes())
    second = raw.find(b"DIV2K_valid_HR/0802.png") + len("DIV2K_valid_HR/0802.png") + 10
    raw[second] ^= 0xFF  # corrupt the second member's data: the first one extracts fine
    path.write_bytes(bytes(raw))
    root = tmp_path / "data"
    # No MD5 known for this mirror: integrity comes from the archive itself.
    with pytest.raises(ArchiveError, match=r"DIV2K_valid_HR\.zip: corrupt archive"):
        download_div2k(
            root, split="valid", track=None, base_url=url, md5={"DIV2K_valid_HR.zip": None}, progress=False
        )
    assert not (root / "DIV2K" / "DIV2K_valid_HR").exists()
    assert not _leftovers(root)
    assert not (root / "DIV2K" / "downloads" / "DIV2K_valid_HR.zip").exists()  # next run re-downloads


def test_truncated_tgz_names_the_file_and_extracts_nothing(tmp_path: Path) -> None:
    members = {f"BSR/BSDS500/data/images/train/{i}.jpg": _jpeg(24, 36, i) for i in range(6)}
    dest = tmp_path / "data"
    for check in (True, False):  # with and without the up-front integrity pass
        path = _tgz(tmp_path / "BSR_bsds500.tgz", members)
        path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
        with pytest.raises(ArchiveError, match=r"BSR_bsds500\.tgz: corrupt archive"):
            extract_archive(
                path, dest, target="BSR/BSDS500/data/images", check_integrity=check, progress=False
            )
        assert not path.exists()
        assert not (dest / "BSR").exists()
        assert not _leftovers(dest)


def test_bsds500_download_installs_only_images(server: tuple[str, Path, list], tmp_path: Path) -> None:
    url, www, log = server
    splits = ("train", "val", "test")
    members = {f"BSR/BSDS500/data/images/{s}/{s}{i}.jpg": _jpeg(24, 36, i) for s in splits for i in (1, 2)}
    members["BSR/BSDS500/data/groundTruth/train/train1.mat"] = b"not needed"
    members["BSR/documentation/README"] = b"docs"
    archive = _tgz(www / "BSR_bsds500.tgz", members)
    root = tmp_path / "data"
    download_bsds500(root, url=f"{url}/BSR_bsds500.tgz", md5=_md5(archive), progress=False)
    ds = BSDS500(root, split="val", scale=4)
    assert [p.name for p in ds.pairs] == ["val1", "val2"]
    assert ds[0]["hr"].shape == (3, 24, 36) and ds[0]["lr"].shape == (3, 6, 9)
    assert not (root / "BSR" / "BSDS500" / "data" / "groundTruth").exists()
    assert not (root / "BSR" / "documentation").exists()
    assert len(BSDS500(root, split="train", scale=4)) == 2  # installed once for all splits
    n = len(log)
    download_bsds500(root, url=f"{url}/BSR_bsds500.tgz", md5=_md5(archive), progress=False)
    assert len(log) == n  # every split present: nothing fetched


def test_bsds500_archive_without_a_wanted_split(server: tuple[str, Path, list], tmp_path: Path) -> None:
    url, www, _ = server
    archive = _tgz(www / "BSR_bsds500.tgz", {"BSR/BSDS500/data/images/train/1.jpg": _jpeg(8, 8, 1)})
    with pytest.raises(DatasetError, match=r"BSR_bsds500\.tgz did not provide the split\(s\) test"):
        download_bsds500(
            tmp_path / "data", splits=("train", "test"), url=f"{url}/BSR_bsds500.tgz", md5=_md5(archive),
            progress=False,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "hint"),
    [("../evil.png", "parent-directory"), ("/abs/evil.png", "absolute path")],
)
def test_unsafe_zip_members_are_refused(tmp_path: Path, name: str, hint: str) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("DIV2K_train_HR/0001.png", b"x")
        zf.writestr(name, b"evil")
    dest = tmp_path / "out" / "deeper"
    with pytest.raises(ArchiveError, match=rf"bad\.zip: unsafe member .*{hint}"):
        extract_archive(path, dest, target="DIV2K_train_HR", progress=False)
    assert not list(tmp_path.rglob("evil.png"))
    assert not (dest / "DIV2K_train_HR").exists()


def test_tar_links_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "links.tgz"
    with tarfile.open(path, "w:gz") as tf:
        link = tarfile.TarInfo("BSR/BSDS500/data/images/train/passwd.jpg")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(ArchiveError, match=r"links\.tgz: unsafe member .*link"):
        extract_archive(path, tmp_path / "out", target="BSR/BSDS500/data/images", progress=False)
    assert not (tmp_path / "out" / "BSR").exists()


def test_archive_without_the_expected_folder(server: tuple[str, Path, list], tmp_path: Path) -> None:
    url, www, _ = server
    path = _zip(www / "wrong.zip", {"something_else/0001.png": _png(4, 4, 0)})
    spec = ArchiveSpec(filename="wrong.zip", url=f"{url}/wrong.zip", md5=_md5(path), target="DIV2K_train_HR")
    with pytest.raises(ArchiveError, match=r"wrong\.zip: archive holds no files under DIV2K_train_HR"):
        install_archive(spec, tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "DIV2K_train_HR").exists()
    missing = ArchiveSpec(filename="gone.zip", url=f"{url}/gone.zip", md5=None, target="x")
    with pytest.raises(DatasetError, match=r"gone\.zip: download failed.*404"):
        install_archive(missing, tmp_path / "data", progress=False)
