"""HTTP(S) downloads with progress, resume, hash verification and nothing left behind on failure."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm


class DownloadError(RuntimeError):
    """A download failed or its content did not match the expected hash."""


def file_hash(path: str | os.PathLike[str], algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, *, sha256: str | None, md5: str | None, sha256_prefix: str | None) -> None:
    checks = []
    if sha256:
        checks.append(("sha256", sha256.lower(), False))
    if sha256_prefix:
        checks.append(("sha256", sha256_prefix.lower(), True))
    if md5:
        checks.append(("md5", md5.lower(), False))
    for algo, expected, prefix in checks:
        got = file_hash(path, algo)
        ok = got.startswith(expected) if prefix else got == expected
        if not ok:
            raise DownloadError(
                f"{path.name}: {algo} mismatch (expected {expected}{'...' if prefix else ''}, got {got})"
            )


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    md5: str | None = None,
    sha256_prefix: str | None = None,
    resume: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to `dest` and verify it; return `dest`.

    Data goes to `dest + ".part"`; with `resume`, an existing part file is continued with an HTTP Range
    request (servers that ignore Range restart from zero) and a broken connection keeps the part file;
    without it, any failure removes it. Only a verified file is renamed to `dest`; a hash mismatch always
    deletes the part file so a retry starts clean. An existing verified `dest` is reused.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        try:
            _verify(dest, sha256=sha256, md5=md5, sha256_prefix=sha256_prefix)
            return dest
        except DownloadError:
            dest.unlink()
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if (resume and part.exists()) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "esrgan"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = getattr(response, "status", 200)
            if offset and status != 206:
                offset = 0  # server ignored the range: start over
            length = response.headers.get("Content-Length")
            total = int(length) + offset if length is not None else None
            mode = "ab" if offset else "wb"
            with (
                open(part, mode) as fh,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=dest.name,
                    disable=not progress,
                    leave=False,
                ) as bar,
            ):
                while block := response.read(1 << 16):
                    fh.write(block)
                    bar.update(len(block))
            if total is not None and part.stat().st_size != total:
                raise DownloadError(
                    f"{dest.name}: connection closed after {part.stat().st_size} of "
                    f"{total} bytes (run again to resume)"
                )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # part file already complete
            pass
        else:
            if not resume:
                part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except DownloadError:
        if not resume:
            part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError) as exc:
        if not resume:
            part.unlink(missing_ok=True)
        hint = " (partial data kept: run again to resume)" if resume else ""
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}{hint}") from exc
    try:
        _verify(part, sha256=sha256, md5=md5, sha256_prefix=sha256_prefix)
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest
