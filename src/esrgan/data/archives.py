"""Dataset archives: official DIV2K/BSDS500 locations, verified download, safe all-or-nothing extraction.

An archive is installed in four steps: download with `esrgan.utils.download` (progress, HTTP Range
resume of a `.part` file, MD5 check); an integrity check when no MD5 is known (`zipfile.testzip`, or a
full read of a tarball); extraction of only the wanted folder into a temporary directory beside the
destination, refusing members that would escape it (absolute paths, `..`, links, devices); and one
`os.replace` of the finished folder into place. A corrupt archive therefore raises `ArchiveError` naming
the file and leaves no half-extracted dataset behind. `esrgan.data.downloads` installs whole datasets.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

from esrgan.utils import DownloadError, download

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K"
BSDS500_URL = "https://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
# MD5 from a single public source (the seed project's BSDS500 loader), not cross-checked against a second
# one; if the served file differs, `download_bsds500(md5=...)` overrides it.
BSDS500_MD5 = "0b17383ff0b21fe43d2f28e624203169"
BSDS500_IMAGES = "BSR/BSDS500/data/images"
"""The folder of BSR_bsds500.tgz that is installed: one sub-folder per split."""

# MD5s of the official DIV2K archives (the values used by torchSR, EDSR-derived loaders and others).
DIV2K_MD5: dict[str, str] = {
    "DIV2K_train_HR.zip": "bdc2d9338d4e574fe81bf7d158758658",
    "DIV2K_valid_HR.zip": "9fcdda83005c5e5997799b69f955ff88",
    "DIV2K_train_LR_bicubic_X2.zip": "9a637d2ef4db0d0a81182be37fb00692",
    "DIV2K_train_LR_bicubic_X3.zip": "ad80b9fe40c049a07a8a6c51bfab3b6d",
    "DIV2K_train_LR_bicubic_X4.zip": "76c43ec4155851901ebbe8339846d93d",
    "DIV2K_train_LR_unknown_X2.zip": "1396d023072c9aaeb999c28b81315233",
    "DIV2K_train_LR_unknown_X3.zip": "4e651308aaa54d917fb1264395b7f6fa",
    "DIV2K_train_LR_unknown_X4.zip": "e3c7febb1b3f78bd30f9ba15fe8e3956",
    "DIV2K_valid_LR_bicubic_X2.zip": "1512c9a3f7bde2a1a21a73044e46b9cb",
    "DIV2K_valid_LR_bicubic_X3.zip": "18b1d310f9f88c13618c287927b29898",
    "DIV2K_valid_LR_bicubic_X4.zip": "21962de700c8d368c6ff83314480eff0",
    "DIV2K_valid_LR_unknown_X2.zip": "d319bd9033573d21de5395e6454f34f8",
    "DIV2K_valid_LR_unknown_X3.zip": "05184168e3608b5c539fbfb46bcade4f",
    "DIV2K_valid_LR_unknown_X4.zip": "8ac3413102bb3d0adc67012efb8a6c94",
}


class DatasetError(ValueError):
    """A dataset is missing, empty, or cannot be installed; the message names the file or folder."""


class ArchiveError(DatasetError):
    """A downloaded archive is corrupt, unsafe or does not hold the expected folder."""


@dataclass(frozen=True, kw_only=True)
class ArchiveSpec:
    """One downloadable archive and the folder it provides."""

    filename: str
    """Local file name of the archive."""
    url: str
    """Where to fetch it."""
    md5: str | None
    """Expected MD5 (None: unknown, the archive's own integrity check is used instead)."""
    target: str
    """Folder inside the archive (POSIX, relative) that is installed; the rest is not extracted."""


def div2k_archive(
    *, split: str, kind: str, scale: int | None = None, base_url: str = DIV2K_URL
) -> ArchiveSpec:
    """The DIV2K archive for `split` ("train"/"valid") and `kind` ("HR", "bicubic" or "unknown")."""
    if split not in ("train", "valid"):
        raise ValueError(f"DIV2K split must be 'train' or 'valid', got {split!r}")
    if kind == "HR":
        filename, target = f"DIV2K_{split}_HR.zip", f"DIV2K_{split}_HR"
    elif kind in ("bicubic", "unknown"):
        if scale not in (2, 3, 4):
            raise ValueError(f"DIV2K {kind} LR exists for scales 2, 3 and 4, not {scale!r}")
        filename = f"DIV2K_{split}_LR_{kind}_X{scale}.zip"
        target = f"DIV2K_{split}_LR_{kind}/X{scale}"
    else:
        raise ValueError(f"DIV2K kind must be 'HR', 'bicubic' or 'unknown', got {kind!r}")
    return ArchiveSpec(
        filename=filename,
        url=f"{base_url.rstrip('/')}/{filename}",
        md5=DIV2K_MD5.get(filename),
        target=target,
    )


def div2k_archives(
    *,
    split: str,
    scale: int,
    track: str | None,
    base_url: str = DIV2K_URL,
    md5: Mapping[str, str | None] | None = None,
) -> list[ArchiveSpec]:
    """The archives of a DIV2K split: HR, then the official `track` LR for `scale` (none if `track` is None).

    `md5` overrides the known MD5s by file name (for mirrors; None: use the archive's own integrity check).
    """
    if track not in ("bicubic", "unknown", None):
        raise ValueError(f"DIV2K track must be 'bicubic', 'unknown' or None, got {track!r}")
    specs = [div2k_archive(split=split, kind="HR", base_url=base_url)]
    if track is not None:
        specs.append(div2k_archive(split=split, kind=track, scale=scale, base_url=base_url))
    overrides = md5 or {}
    return [replace(s, md5=overrides[s.filename]) if s.filename in overrides else s for s in specs]


def bsds500_archive(*, url: str = BSDS500_URL, md5: str | None = BSDS500_MD5) -> ArchiveSpec:
    """The official BSR_bsds500.tgz; only its images folder is installed."""
    return ArchiveSpec(filename="BSR_bsds500.tgz", url=url, md5=md5, target=BSDS500_IMAGES)


def install_archive(
    spec: ArchiveSpec,
    dest: str | os.PathLike[str],
    *,
    downloads_dir: str | os.PathLike[str] | None = None,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Make `dest/spec.target` exist: download, verify and extract `spec` unless it is already there.

    The archive goes to `downloads_dir` (default `dest/downloads`), where an interrupted download is
    resumed on the next call. Returns the installed folder.
    """
    dest = Path(dest)
    final = dest.joinpath(*spec.target.split("/"))
    if final.is_dir() and any(final.iterdir()):
        return final
    archive_dir = Path(downloads_dir) if downloads_dir is not None else dest / "downloads"
    try:
        archive = download(spec.url, archive_dir / spec.filename, md5=spec.md5, progress=progress)
    except DownloadError as exc:
        raise DatasetError(f"{spec.filename}: download failed: {exc}") from exc
    extract_archive(archive, dest, target=spec.target, check_integrity=spec.md5 is None, progress=progress)
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return final


def extract_archive(
    archive: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    target: str,
    check_integrity: bool = True,
    progress: bool = True,
) -> Path:
    """Extract the `target` folder of a .zip/.tar(.gz) `archive` to `dest/target`, all or nothing.

    A corrupt archive is deleted (so the next attempt downloads it again) and reported as `ArchiveError`.
    """
    archive = Path(archive)
    dest = Path(dest)
    prefix = _clean_member(target, archive)
    if prefix is None:
        raise ValueError(f"bad archive target {target!r}")
    final = dest.joinpath(*prefix.split("/"))
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".extract-{archive.name}-", dir=dest))
    try:
        try:
            if check_integrity:
                _check_integrity(archive)
            count = _extract_members(archive, tmp, prefix, progress=progress)
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, EOFError) and _is_local_io_error(exc):
                raise
            archive.unlink(missing_ok=True)
            raise ArchiveError(
                f"{archive}: corrupt archive ({exc}); deleted it, run again to re-download"
            ) from exc
        if count == 0:
            raise ArchiveError(f"{archive}: archive holds no files under {prefix}/")
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.is_dir() and not any(final.iterdir()):
            final.rmdir()
        os.replace(tmp.joinpath(*prefix.split("/")), final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _is_local_io_error(exc: OSError) -> bool:
    # Disk full / permission problems on our side are not the archive's fault: do not delete it.
    import errno

    return exc.errno in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT)


def _clean_member(name: str, archive: Path) -> str | None:
    """Normalised relative POSIX path of a member; ArchiveError for paths that escape; None for '.'."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise ArchiveError(f"{archive}: unsafe member {name!r} (absolute path)")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive}: unsafe member {name!r} (parent-directory reference)")
    return "/".join(parts) if parts else None


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "/")


def _check_integrity(archive: Path) -> None:
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
        if bad is not None:
            raise zipfile.BadZipFile(f"CRC mismatch in member {bad}")
    else:
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                if member.isfile():
                    fh = tf.extractfile(member)
                    if fh is not None:
                        while fh.read(1 << 20):
                            pass


def _extract_members(archive: Path, out: Path, prefix: str, *, progress: bool) -> int:
    from tqdm.auto import tqdm

    count = 0
    with tqdm(desc=f"extract {archive.name}", unit=" files", disable=not progress, leave=False) as bar:
        for rel, opener in _members(archive):
            if not _under(rel, prefix):
                continue
            path = out.joinpath(*rel.split("/"))
            if opener is None:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with opener() as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            count += 1
            bar.update(1)
    return count


_Opener = Callable[[], IO[bytes]]
"""Opens one archive member for reading; called only while the archive is open."""


def _members(archive: Path) -> Iterator[tuple[str, _Opener | None]]:
    """(relative path, opener; None for a folder) for every member, refusing unsafe ones."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = _clean_member(info.filename, archive)
                if rel is None:
                    continue
                mode = (info.external_attr >> 16) & 0o170000
                if mode and mode not in (0o100000, 0o040000):
                    raise ArchiveError(f"{archive}: unsafe member {info.filename!r} (link or special file)")
                if info.is_dir():
                    yield rel, None
                else:
                    yield rel, _zip_opener(zf, info)
        return
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 (closed by the with-block below)
    except tarfile.ReadError as exc:
        raise ArchiveError(f"{archive}: not a zip or tar archive ({exc})") from exc
    with tf:
        for member in tf:
            rel = _clean_member(member.name, archive)
            if rel is None:
                continue
            if member.isdir():
                yield rel, None
            elif member.isfile():
                yield rel, _tar_opener(tf, member)
            else:
                raise ArchiveError(f"{archive}: unsafe member {member.name!r} (link or special file)")


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Opener:
    return lambda: zf.open(info)


def _tar_opener(tf: tarfile.TarFile, member: tarfile.TarInfo) -> _Opener:
    def open_member() -> IO[bytes]:
        fh = tf.extractfile(member)
        if fh is None:
            raise tarfile.ReadError(f"cannot read member {member.name}")
        return fh

    return open_member
