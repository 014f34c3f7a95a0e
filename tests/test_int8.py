"""int8 on the CPU (NNCF quantisation for OpenVINO, `esrgan.inference.int8`): the calibration crops ship
with their licences, a model is quantised once and then taken from the cache, its output stays close
to fp32's, `auto` picks int8 only for a measured small drop, and the CLI says what it is doing. The
real models' drops on Set5/Set14 are checked in tests/test_release_models.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from _weights_fixtures import psnr, read_rgb, textured_image
from esrgan.cli import app
from esrgan.inference import Upscaler
from esrgan.inference.autoselect import candidates_for
from esrgan.inference.export_check import export_and_check
from esrgan.inference.int8 import (
    KNOWN_DROPS,
    Int8Drop,
    cached_int8,
    cached_int8_path,
    calibration_crops,
    drops_help,
)
from esrgan.inference.memory import process_rss
from esrgan.inference.precision import AUTO_INT8_MAX_DROP_DB, DeviceError, resolve_precision_and_runtime
from esrgan.io import read_image
from esrgan.models import RRDBNet
from esrgan.weights import load_generator, save_generator

CPU = torch.device("cpu")
BABY = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "Set5" / "x4" / "img_001_SRF_4_LR.png"
CALIBRATION = Path(__file__).resolve().parents[1] / "src" / "esrgan" / "inference" / "calibration"


def _tiny(seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    model = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, a=0.2)
            m.weight.data.mul_(0.5)
    return model.eval()


@pytest.fixture(scope="module")
def quantised(tmp_path_factory: pytest.TempPathFactory):
    """The tiny model, its cache folder and its int8 report (quantised once for the module)."""
    cache = tmp_path_factory.mktemp("int8-cache")
    model = _tiny()
    return model, cache, cached_int8(model, cache_dir=cache)


def test_calibration_crops_ship_in_two_halves_with_their_licences():
    stats, check = calibration_crops()
    assert len(stats) == len(check) == 8
    assert all(x.shape == (3, 192, 192) and x.min() >= 0 and x.max() <= 1 for x in stats + check)
    assert not any(torch.equal(a, b) for a in stats for b in check)
    readme = (CALIBRATION / "README.md").read_text()
    stems = {p.stem.rsplit("_", 1)[0] for p in CALIBRATION.glob("*.png")}
    assert stems == {"astronaut", "chelsea", "coffee", "rocket"}
    for stem in stems:
        row = next(line for line in readme.splitlines() if f"`{stem}_*.png`" in line)
        assert "public domain" in row or "CC0" in row


def test_a_model_is_quantised_once_and_then_read_from_the_cache(quantised):
    model, cache, report = quantised
    path = cached_int8_path(model, cache_dir=cache)
    assert report.path == path and path.is_file() and path.with_suffix(".bin").is_file()
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert report.int8_convs + report.fp32_convs == convs
    assert report.fp32_convs >= 2 and report.int8_convs >= 1  # first and last stay fp32
    assert report.drop_db <= report.max_drop_db
    assert json.loads(path.with_suffix(".json").read_text())["int8_convs"] == report.int8_convs
    stamp = path.stat().st_mtime_ns
    assert cached_int8(model, cache_dir=cache) == report and path.stat().st_mtime_ns == stamp
    assert cached_int8_path(model, cache_dir=cache, max_drop=0.3) != path
    assert cached_int8_path(_tiny(seed=1), cache_dir=cache) != path  # keyed by the weights


@pytest.mark.skipif(not BABY.exists(), reason="Set5 not found beside the checkout (../shared/datasets)")
def test_int8_upscaler_stays_close_to_fp32_tiled_or_not():
    # Our bundled model: a random tiny network's output is mostly clamped to black, which says nothing.
    model = load_generator("esrgan-x4-psnr")
    int8 = Upscaler(model, device="cpu", precision="int8", tile=0)
    assert (int8.precision, int8.runtime, int8.prepared) == ("int8", "openvino", False)
    x = read_image(BABY).pixels[None, :, 20:60, 30:82]
    fp32 = Upscaler(load_generator("esrgan-x4-psnr"), device="cpu", precision="fp32", tile=0).upscale(x)
    got = int8.upscale(x)
    assert int8.prepared and int8.int8_report is not None
    assert int8.int8_report.drop_db <= int8.int8_report.max_drop_db
    assert got.shape == fp32.shape == (1, 3, 160, 208)
    assert 35 < psnr(got, fp32) < 70  # close to fp32, but int8 is not fp32
    tiled = Upscaler(
        load_generator("esrgan-x4-psnr"), device="cpu", precision="int8", tile=28, tile_overlap=8
    )
    assert psnr(tiled.upscale(x), got) > 40  # tiles blend as in fp32


def test_int8_upscale_frees_openvino_activations_before_returning(quantised):
    # The memory budget counts a tile's activations only while tiles run; OpenVINO would keep them
    # (here about 8 feat x 16 x 10 bytes per input pixel: 340 MB for 512 px) while the output is written.
    # Measured as what a second release frees: RSS differences in a long test process include heap the
    # allocator keeps, but OpenVINO's buffers are large enough to go straight back to the system.
    model, cache, _ = quantised
    up = Upscaler(model, device="cpu", precision="int8", tile=0, cache_dir=cache, int8_drop_db=0.0)
    y = up.upscale(torch.rand(1, 3, 512, 512))
    assert y.shape == (1, 3, 2048, 2048) and up._openvino is not None
    before = process_rss()
    up._openvino.release_memory()
    freed = before - process_rss()
    assert freed < 50 * 2**20, f"{freed / 2**20:.0f} MiB of activations were still held after upscale"


def test_int8_runs_on_openvino_and_auto_never_picks_it_unchecked():
    model = _tiny()
    assert resolve_precision_and_runtime("int8", "auto", model=model, device=CPU) == (
        torch.float32,
        "openvino",
    )
    assert resolve_precision_and_runtime("int8", "torch", model=model, device=CPU)[1] == "openvino"
    with pytest.raises(ValueError, match="OpenVINO, not ONNX Runtime"):
        resolve_precision_and_runtime("int8", "onnxruntime", model=model, device=CPU)
    with pytest.raises(DeviceError, match="CPU only"):
        resolve_precision_and_runtime("int8", "auto", model=model, device=torch.device("cuda"))
    assert resolve_precision_and_runtime("int8", "openvino", model=model, device=CPU)[1] == "openvino"
    # By rule (a network too small for the check) auto is eager's fp32; a small measured drop only makes
    # int8 a candidate of the measured choice (esrgan.inference.autoselect, tested there).
    for runtime in ("auto", "torch"):
        chosen = resolve_precision_and_runtime("auto", runtime, model=model, device=CPU)
        assert chosen == (torch.float32, "torch")
    every = dict(native_bf16=False, have_onnxruntime=True, have_openvino=True)
    allowed = candidates_for(precision="auto", runtime="auto", int8_allowed=True, **every)
    assert "openvino-int8" in [c.name for c in allowed] and AUTO_INT8_MAX_DROP_DB == 0.05
    refused = candidates_for(precision="auto", runtime="auto", int8_allowed=False, **every)
    assert all(c.precision != "int8" for c in refused)


def test_known_drops_are_what_help_prints():
    text = drops_help()
    assert all(name in text for name in KNOWN_DROPS)
    drop = Int8Drop(set5_db=0.04, set14_db=0.02, set5_lpips=0.003, set14_lpips=-0.001)
    assert drop.worst_db == 0.04
    assert drop.summary() == "-0.04 dB Set5, -0.02 dB Set14 (LPIPS +0.003 / -0.001)"
    gain = Int8Drop(set5_db=-0.03, set14_db=0.08, set5_lpips=0.005, set14_lpips=0.001)
    assert gain.summary().startswith("+0.03 dB Set5, -0.08 dB Set14")


def test_upscale_cli_quantises_once_and_warns_about_an_unmeasured_model(tmp_path):
    weights = tmp_path / "tiny.safetensors"
    save_generator(_tiny(seed=2), weights)
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray((textured_image(24, 32)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(image)
    args = ["upscale", str(image), "--model", str(weights), "--precision", "int8", "--out-dir", str(tmp_path)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("has not been measured") == 1
    assert "quantising" in first.output and "convolutions in int8" in first.output
    assert "(cpu, openvino int8, x4)" in first.output and (tmp_path / "in_sr.png").is_file()
    again = CliRunner().invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0 and "quantising" not in again.output, again.output
    wrong = CliRunner().invoke(app, [*args, "--overwrite", "--runtime", "onnxruntime"])
    assert wrong.exit_code == 2 and "OpenVINO, not ONNX Runtime" in wrong.output


def test_int8_export_is_checked_against_pytorch(tmp_path):
    model = _tiny(seed=3)
    report = export_and_check(
        model, tmp_path / "m.xml", format="openvino", image=textured_image(48, 48)[0], int8=True
    )
    assert report.int8 is not None and report.path.is_file() and report.path.with_suffix(".bin").is_file()
    assert 25 < report.psnr_db < 80 and 0 < report.max_abs_diff < 0.2
    assert "int8" in report.summary() and "PSNR" in report.summary()
    res = CliRunner().invoke(app, ["export", "x.safetensors", str(tmp_path / "m.onnx"), "--int8"])
    assert res.exit_code != 0 and "--format openvino" in res.output


# Here, not in test_compact.py: OpenVINO's threads in the pytest process before test_crash_safety's
# in-process DataLoader and killed children crash pytest (see conftest's SIGCHLD note); this file runs later.
@pytest.mark.slow
def test_int8_animevideov3_x4_stays_close_to_fp32(
    shared_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esrgan.inference.int8 import int8_available

    if not int8_available():
        pytest.skip("OpenVINO and NNCF are not installed")
    monkeypatch.setenv("ESRGAN_CACHE", str(tmp_path))
    lr = read_rgb(shared_dir / "datasets/Set5/x4/img_002_SRF_4_LR.png")[..., :48, :40]
    model = "realesr-animevideov3-x4"
    fp32 = Upscaler(load_generator(model), device="cpu", precision="fp32", runtime="torch", tile=0)
    int8 = Upscaler(load_generator(model), device="cpu", precision="int8", tile=0)
    ref, got = fp32.upscale(lr), int8.upscale(lr)
    assert int8.int8_report is not None
    # measured: 16 of 18 convolutions in int8, 0.036 dB below fp32 on the calibration check crops
    assert int8.int8_report.int8_convs >= 12 and int8.int8_report.drop_db <= int8.int8_report.max_drop_db
    mse = torch.mean((got - ref) ** 2).item()
    assert got.shape == ref.shape == (1, 3, 192, 160)
    assert 10 * torch.log10(torch.tensor(1.0 / mse)).item() > 35
