"""`esrgan test` end to end through the real typer app, and benchmark discovery."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import platformdirs
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.data.benchmarks import BenchmarkError, find_benchmark
from esrgan.evaluation import (
    EvaluationOptions,
    OptionError,
    default_lpips_search_dirs,
    run_test,
)
from esrgan.models import RRDBNet
from esrgan.weights import save_generator

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "datasets"
WEIGHTS = SHARED / "weights"
needs_data = pytest.mark.skipif(not (DATA / "Set5").is_dir(), reason="shared datasets not present")
runner = CliRunner()


@needs_data
def test_find_benchmark_shared_layout():
    set5 = find_benchmark(DATA, "set5", 4)
    assert [p.name for p in set5] == [f"img_00{i}" for i in range(1, 6)]
    assert all(p.lr_path is not None and p.lr_path.name == f"{p.name}_SRF_4_LR.png" for p in set5)
    assert len(find_benchmark(DATA, "Set14", 3)) == 14
    for alias in ("bsds100", "bsds500-val"):
        bsd = find_benchmark(DATA, alias, 4)
        assert len(bsd) == 100 and all(p.lr_path is None for p in bsd)


def test_find_benchmark_folders_and_errors(tmp_path):
    (tmp_path / "mine").mkdir()
    for name in ("b.png", "a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / "mine" / name)
    (tmp_path / "mine" / "notes.txt").write_text("x")
    assert [p.name for p in find_benchmark(tmp_path, "mine", 2)] == ["a", "b"]
    assert [p.name for p in find_benchmark(Path("/nonexistent"), str(tmp_path / "mine"), 2)] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchmarkError, match=r"empty: no images found"):
        find_benchmark(tmp_path, "empty", 4)
    with pytest.raises(BenchmarkError, match=r"Set5: dataset folder not found"):
        find_benchmark(tmp_path, "set5", 4)
    (tmp_path / "Set5" / "x4").mkdir(parents=True)
    with pytest.raises(BenchmarkError, match=r"x2: no x2 folder \(available: x4\)"):
        find_benchmark(tmp_path, "set5", 2)
    with pytest.raises(BenchmarkError, match="nope: dataset folder not found"):
        find_benchmark(tmp_path, "nope", 4)


@needs_data
def test_bicubic_baselines_end_to_end(tmp_path):
    out = tmp_path / "out"
    args = ["test", "--model", "bicubic", "--datasets", "set5,set14", "--data-root", str(DATA)]
    res = runner.invoke(
        app, [*args, "--out-dir", str(out), "--show-best", "1", "--no-lpips", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["scale"] == 4 and doc["meta"]["lr_source"] == "degrade"
    set5, set14 = doc["datasets"]["set5"], doc["datasets"]["set14"]
    assert set5["num_images"] == 5 and set14["num_images"] == 14
    assert set5["mean"]["psnr_y"] == pytest.approx(28.43, abs=0.05)
    assert set5["mean"]["ssim_y"] == pytest.approx(0.811, abs=0.002)
    assert set14["mean"]["psnr_y"] == pytest.approx(26.09, abs=0.05)
    assert set14["mean"]["ssim_y"] == pytest.approx(0.705, abs=0.002)
    # Set14 img_001 is baboon at 500x480: the shared mod-4 crop gives these (BasicSR's mod-12 crop differs).
    baboon = set14["images"][0]
    assert (baboon["width"], baboon["height"]) == (500, 480)
    assert baboon["psnr_y"] == pytest.approx(22.4381, abs=1e-3)
    assert baboon["psnr_rgb"] == pytest.approx(20.4259, abs=1e-3)
    assert set5["mean"]["lpips"] is None
    mean_y = np.mean([im["psnr_y"] for im in set14["images"]])
    assert mean_y == pytest.approx(set14["mean"]["psnr_y"])

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 5 + 1 + 14 + 1
    assert float(rows[5]["psnr_y"]) == pytest.approx(set5["mean"]["psnr_y"]) and rows[5]["image"] == "MEAN"

    figs = sorted(p.relative_to(out).as_posix() for p in (out / "figures").rglob("*.png"))
    best5 = max(set5["images"], key=lambda r: r["psnr_y"])["name"]
    worst5 = min(set5["images"], key=lambda r: r["psnr_y"])["name"]
    assert f"figures/set5/{best5}.png" in figs and f"figures/set5/{worst5}.png" in figs
    assert len(figs) == 4
    report = (out / "report.html").read_text()
    for fig in figs:
        assert f"src='{fig}'" in report
    assert "28.43" in report and "set14" in res.output


@needs_data
def test_given_lr_is_selectable_and_close(tmp_path):
    args = ["test", "-m", "bicubic", "-d", "set5", "--data-root", str(DATA), "--out-dir", str(tmp_path)]
    res = runner.invoke(
        app, [*args, "--lr-source", "given", "--no-lpips", "--figures", "none", "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    mean = json.loads((tmp_path / "results.json").read_text())["datasets"]["set5"]["mean"]
    assert mean["psnr_y"] == pytest.approx(28.43, abs=0.05)
    assert not (tmp_path / "figures").exists()


def _write_folder(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (10, 8, 3), dtype=np.uint8)
    # Smooth-ish content at an odd size (37x29: cropped to 36x28 for x4) and a grayscale image.
    rgb = Image.fromarray(base).resize((29, 37), Image.Resampling.BICUBIC)
    rgb.save(folder / "odd.png")
    rgb.convert("L").resize((40, 44)).save(folder / "grey.png")


def test_model_file_on_a_folder_with_lpips_images_and_all_figures(tmp_path):
    if not (WEIGHTS / "lpips_vgg_v0.1_heads.safetensors").is_file():
        pytest.skip("shared weights not present")
    _write_folder(tmp_path / "mine")
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    save_generator(net, tmp_path / "tiny.safetensors")
    out = tmp_path / "out"
    res = runner.invoke(
        app,
        [
            "test",
            "--model",
            str(tmp_path / "tiny.safetensors"),
            "--datasets",
            str(tmp_path / "mine"),
            "--out-dir",
            str(out),
            "--lpips-vgg",
            str(WEIGHTS / "vgg16_imagenet_features.safetensors"),
            "--lpips-heads",
            str(WEIGHTS / "lpips_vgg_v0.1_heads.safetensors"),
            "--save-images",
            "--figures",
            "all",
            "--device",
            "cpu",
            "--tile",
            "0",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["scale"] == 4 and doc["meta"]["precision"] == "fp32"
    images = {im["name"]: im for im in doc["datasets"]["mine"]["images"]}
    assert (images["odd"]["width"], images["odd"]["height"]) == (28, 36)
    assert (images["grey"]["width"], images["grey"]["height"]) == (40, 44)
    for im in images.values():
        assert im["lpips"] is not None and 0 < im["lpips"] < 2
        assert 0 < im["psnr_y"] < 60
    assert Image.open(out / "images" / "mine" / "odd.png").size == (28, 36)
    assert sorted(p.name for p in (out / "figures" / "mine").iterdir()) == ["grey.png", "odd.png"]


def test_missing_dataset_and_missing_lpips_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ESRGAN_WEIGHTS", str(tmp_path / "no-weights"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "no-data-home"))
    res = runner.invoke(
        app, ["test", "-m", "bicubic", "-d", "set5", "--data-root", str(tmp_path / "nowhere")]
    )
    assert res.exit_code != 0
    assert res.stderr.strip().count("\n") == 0 and "nowhere/Set5: dataset folder not found" in res.stderr
    assert "Traceback" not in res.output

    _write_folder(tmp_path / "mine")
    res = runner.invoke(
        app, ["test", "-m", "bicubic", "-d", "mine", "--data-root", ".", "--lr-source", "given"]
    )
    assert res.exit_code != 0 and "no provided LR image" in res.stderr

    res = runner.invoke(app, ["test", "-m", "bicubic", "-d", "mine", "--data-root", ".", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "LPIPS skipped" in res.stderr
    doc = json.loads((tmp_path / "outputs" / "test" / "results.json").read_text())
    assert doc["datasets"]["mine"]["mean"]["lpips"] is None and "LPIPS skipped" in doc["meta"]["notes"][0]

    res = runner.invoke(app, ["test", "-m", str(tmp_path / "missing.pth"), "-d", "mine", "--data-root", "."])
    assert res.exit_code != 0 and "missing.pth" in res.stderr and "Traceback" not in res.output


def _contextual_model(path: Path) -> Path:
    # Full-gain init (see test_inference_tiling): its output depends on context beyond the tile overlap,
    # so tiling changes it a little, where the paper's 0.1-scaled init would hide any tiling at all.
    torch.manual_seed(0)
    net = RRDBNet(num_feat=8, num_block=2, num_grow_ch=4, scale=4)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, a=0.2)
            torch.nn.init.normal_(m.bias, std=0.01)
    save_generator(net, path)
    return path


def test_small_tile_is_accepted_and_close_to_untiled(tmp_path):
    # A 32-pixel tile used to be refused (fixed 48-pixel overlap); it now gets the same overlap
    # default as `esrgan upscale --tile 32`.
    folder = tmp_path / "mine"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        base = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        Image.fromarray(base).resize((160, 192), Image.Resampling.BICUBIC).save(folder / f"im{i}.png")
    model = _contextual_model(tmp_path / "tiny.safetensors")
    args = ["test", "-m", str(model), "-d", str(folder), "--device", "cpu", "--no-lpips", "--figures", "none"]
    scores = {}
    for tile in ("0", "32"):
        out = tmp_path / f"tile{tile}"
        res = runner.invoke(app, [*args, "--tile", tile, "--out-dir", str(out), "--no-progress"])
        assert res.exit_code == 0, res.output
        doc = json.loads((out / "results.json").read_text())
        scores[tile] = [im["psnr_y"] for im in doc["datasets"]["mine"]["images"]]
    # LR is 40x48, so 32-pixel tiles split every image: the result moves, but by far less than 0.01 dB.
    diffs = [abs(a - b) for a, b in zip(scores["0"], scores["32"], strict=True)]
    assert len(diffs) == 2 and max(diffs) < 0.01
    assert any(d > 0 for d in diffs)


def test_run_test_from_python(tmp_path, monkeypatch):
    _write_folder(tmp_path / "mine")
    monkeypatch.setenv("ESRGAN_WEIGHTS", str(WEIGHTS))
    options = EvaluationOptions(
        model="bicubic",
        datasets=[str(tmp_path / "mine")],
        out_dir=tmp_path / "out",
        figures="none",
        lpips=(WEIGHTS / "lpips_vgg_v0.1_heads.safetensors").is_file(),
        progress=False,
    )
    run = run_test(options)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r.name for r in run.results] == list(doc["datasets"]) == ["mine"]
    assert run.results[0].mean()["psnr_y"] == pytest.approx(doc["datasets"]["mine"]["mean"]["psnr_y"])
    assert run.meta["scale"] == 4 and run.title == "bicubic x4, LR degrade"
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "results.csv").is_file()
    if options.lpips:  # found through $ESRGAN_WEIGHTS, the path the test passes explicitly
        assert all(im.lpips is not None for im in run.results[0].images)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("lr_source", "Given!", "--lr-source"),
        ("figures", "some", "--figures"),
        ("datasets", " , ", "--datasets"),
    ],
)
def test_bad_options_are_named_by_field_and_by_flag(tmp_path, field, value, flag):
    given = {"datasets": value.split(",")} if field == "datasets" else {field: value}
    with pytest.raises(OptionError) as caught:
        EvaluationOptions(model="bicubic", **given)
    assert caught.value.option == field
    res = runner.invoke(app, ["test", "-m", "bicubic", flag, value, "--out-dir", str(tmp_path)])
    assert res.exit_code == 2 and res.stderr.startswith(f"error: {flag}: ")
    assert res.stderr.count("\n") == 1 and not any(tmp_path.iterdir())


def test_lpips_weights_default_to_environment_and_user_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("ESRGAN_WEIGHTS", str(tmp_path / "w"))
    user = Path(platformdirs.user_data_dir("esrgan")) / "weights"
    assert default_lpips_search_dirs() == [tmp_path / "w", Path("weights"), user]
    monkeypatch.delenv("ESRGAN_WEIGHTS")
    assert default_lpips_search_dirs() == [Path("weights"), user]


def test_onnxruntime_scores_equal_eager_and_a_bad_runtime_is_one_line(tmp_path):
    _write_folder(tmp_path / "mine")
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=4)
    save_generator(net, tmp_path / "tiny.safetensors")
    scores = {}
    for runtime in ("torch", "onnxruntime"):
        run = run_test(
            EvaluationOptions(
                model=str(tmp_path / "tiny.safetensors"),
                datasets=(str(tmp_path / "mine"),),
                out_dir=tmp_path / runtime,
                device="cpu",
                tile=0,
                lpips=False,
                figures="none",
                progress=False,
                runtime=runtime,
            )
        )
        assert run.meta["runtime"] == runtime
        scores[runtime] = [im.psnr_y for im in run.results[0].images]
    assert scores["onnxruntime"] == pytest.approx(scores["torch"], abs=0.01)
    res = runner.invoke(
        app,
        [
            "test",
            "-m",
            str(tmp_path / "tiny.safetensors"),
            "-d",
            str(tmp_path / "mine"),
            "--runtime",
            "tensorrt",
        ],
    )
    assert res.exit_code == 2 and "unknown runtime 'tensorrt'" in res.output
    assert "Traceback" not in res.output
