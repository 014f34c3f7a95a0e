"""`esrgan upscale` end to end with a tiny model file: inputs, outputs, failures, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.inference.batch import load_upscaler, upscale_jobs
from esrgan.inference.jobs import BatchTotals, Job, SetupError, check_ext, plan_jobs
from esrgan.models import RRDBNet
from esrgan.weights import save_generator

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny_x2.safetensors"
    save_generator(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, scale=2), path)
    return path


def _png(path: Path, size=(12, 10), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = RNG.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(arr[..., 0] if channels == 1 else arr).save(path)
    return path


def _run(*args: str):
    return CliRunner().invoke(app, ["upscale", *map(str, args)])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_single_file_beside_input(tmp_path, model_file):
    src = _png(tmp_path / "a.png")
    res = _run(src, "-m", model_file, "--device", "cpu", "--precision", "fp32")
    assert res.exit_code == 0, res.output
    out = Image.open(tmp_path / "a_sr.png")
    assert out.size == (24, 20) and out.mode == "RGB"
    assert "done: 1 ok, 0 failed, 0 skipped" in res.stdout
    assert "MP in" in res.stdout and " s (cpu, torch fp32, x2)" in res.stdout


def test_folder_glob_recursive_and_out_dir(tmp_path, model_file):
    root = tmp_path / "in"
    _png(root / "a.png")
    _png(root / "b.jpg")
    _png(root / "sub" / "c.png")
    (root / "notes.txt").write_text("not an image")

    res = _run(root, "-m", model_file, "-o", tmp_path / "flat")
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "flat") == ["a_sr.png", "b_sr.jpg"]

    res = _run(root, "-m", model_file, "-o", tmp_path / "tree", "--recursive", "--ext", "webp")
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "tree") == ["a_sr.webp", "b_sr.webp", "sub/c_sr.webp"]
    assert Image.open(tmp_path / "tree" / "sub" / "c_sr.webp").format == "WEBP"

    res = _run(str(root / "**" / "*.png"), "-m", model_file, "-o", tmp_path / "glob")
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "glob") == ["a_sr.png", "sub/c_sr.png"]


def test_ext_jpg_and_quality(tmp_path, model_file):
    src = _png(tmp_path / "a.png", size=(32, 32))
    assert _run(src, "-m", model_file, "--ext", ".jpg", "--quality", "30").exit_code == 0
    assert _run(src, "-m", model_file, "--ext", "jpg", "--quality", "98", "--suffix", "_hq").exit_code == 0
    lo, hi = tmp_path / "a_sr.jpg", tmp_path / "a_hq.jpg"
    assert Image.open(lo).format == "JPEG" and lo.stat().st_size < hi.stat().st_size


def test_colour_modes_survive(tmp_path, model_file):
    _png(tmp_path / "g.png", mode="L")
    _png(tmp_path / "t.png", mode="RGBA")
    g16 = RNG.integers(0, 65536, size=(10, 12), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "d.png")
    res = _run(tmp_path, "-m", model_file)
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "g_sr.png").mode == "L"
    assert Image.open(tmp_path / "t_sr.png").mode == "RGBA"
    out16 = Image.open(tmp_path / "d_sr.png")
    assert out16.mode.startswith("I;16") and out16.size == (24, 20)


def test_bad_files_reported_others_processed(tmp_path, model_file):
    _png(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    data = (_png(tmp_path / "c.png", size=(64, 64))).read_bytes()
    (tmp_path / "c.png").write_bytes(data[: len(data) // 2])  # truncated
    _png(tmp_path / "z.png")
    _png(tmp_path / "huge.png", size=(100, 100))
    res = _run(tmp_path, "-m", model_file, "--max-pixels", "5000", "missing.png")
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, res.stderr
    assert any("broken.png: " in e for e in errors)
    assert any("c.png: corrupt or truncated" in e for e in errors)
    assert any("huge.png: 100x100" in e and "above the limit" in e for e in errors)
    assert any("missing.png: no such file" in e for e in errors)
    assert "Traceback" not in res.output
    assert "done: 2 ok, 4 failed" in res.stdout
    # Only complete outputs, and no temporaries left behind.
    assert _files(tmp_path) == ["a.png", "a_sr.png", "broken.png", "c.png", "huge.png", "z.png", "z_sr.png"]


def test_existing_outputs_skipped_unless_overwrite(tmp_path, model_file):
    src = _png(tmp_path / "a.png")
    (tmp_path / "a_sr.png").write_bytes(b"old")
    res = _run(src, "-m", model_file)
    assert res.exit_code == 0
    assert "skip: " in res.stderr and "--overwrite" in res.stderr
    assert (tmp_path / "a_sr.png").read_bytes() == b"old"
    res = _run(src, "-m", model_file, "--overwrite")
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "a_sr.png").size == (24, 20)


def test_rerun_on_folder_does_not_upscale_outputs(tmp_path, model_file):
    _png(tmp_path / "a.png")
    assert _run(tmp_path, "-m", model_file).exit_code == 0
    res = _run(tmp_path, "-m", model_file)
    assert res.exit_code == 0
    assert "a_sr_sr" not in " ".join(_files(tmp_path))
    assert "1 skipped" in res.stdout + res.stderr


def test_never_overwrites_its_input(tmp_path, model_file):
    src = _png(tmp_path / "a.png")
    before = src.read_bytes()
    res = _run(src, "-m", model_file, "--suffix", "", "--overwrite")
    assert res.exit_code == 1
    assert "overwrite the input" in res.stderr
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "nope.safetensors", "nope.safetensors"),
        (lambda d: _write(d / "bad.safetensors", {"conv_first.weight": torch.zeros(8, 3, 3, 3)}), "bad"),
    ],
)
def test_model_errors_exit_2_with_one_line(tmp_path, make, message):
    _png(tmp_path / "a.png")
    model = make(tmp_path)
    res = _run(tmp_path / "a.png", "-m", model)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.stderr
    assert not (tmp_path / "a_sr.png").exists()


def _write(path: Path, sd: dict) -> Path:
    save_file(sd, str(path))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tile", "huge"], "not 'auto' or a whole number"),
        (["--tile", "-5"], "must be >= 0"),
        (["--ext", "xyz"], "--ext xyz"),
        (["--device", "warp9"], "unknown device"),
        (["--precision", "fp8"], "unknown precision"),
        (["--tile", "16", "--tile-overlap", "16"], "larger than tile_overlap"),
    ],
)
def test_bad_options_exit_2(tmp_path, model_file, args, message):
    src = _png(tmp_path / "a.png")
    res = _run(src, "-m", model_file, *args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output


def test_tiled_cli_matches_untiled(tmp_path, model_file):
    src = _png(tmp_path / "a.png", size=(50, 40))
    fixed = ["-m", model_file, "--device", "cpu", "--precision", "fp32"]
    assert _run(src, *fixed, "--tile", "0", "--suffix", "_full").exit_code == 0
    res = _run(src, *fixed, "--tile", "24", "--tile-overlap", "16", "--suffix", "_tiled")
    assert res.exit_code == 0, res.output
    # A small --tile without --tile-overlap gets half the tile as overlap instead of an error.
    res = _run(src, *fixed, "--tile", "32", "--suffix", "_small")
    assert res.exit_code == 0, res.output
    full = np.asarray(Image.open(tmp_path / "a_full.png"), np.int16)
    for name in ("a_tiled.png", "a_small.png"):
        tiled = np.asarray(Image.open(tmp_path / name), np.int16)
        assert np.abs(full - tiled).max() <= 1


# ----------------------------------------------------------------------------------------- planning


def test_plan_jobs_paths(tmp_path):
    _png(tmp_path / "x" / "a.png")
    _png(tmp_path / "x" / "deep" / "b.PNG")
    (tmp_path / "x" / "odd.dat").write_bytes(b"")
    plan = plan_jobs([str(tmp_path / "x"), str(tmp_path / "x" / "odd.dat")], recursive=True, suffix="_up")
    pairs = {(j.src.name, str(j.dst.relative_to(tmp_path))) for j in plan.jobs}
    assert pairs == {("a.png", "x/a_up.png"), ("b.PNG", "x/deep/b_up.PNG"), ("odd.dat", "x/odd_up.png")}
    plan = plan_jobs([str(tmp_path / "x" / "*.png")], out_dir=tmp_path / "o", ext="jpg")
    assert [str(j.dst.relative_to(tmp_path)) for j in plan.jobs] == ["o/a_sr.jpg"]
    plan = plan_jobs([str(tmp_path / "none*.png"), str(tmp_path / "gone.png")])
    assert [p.reason for p in plan.problems] == ["no files match this pattern", "no such file or directory"]


def test_plan_jobs_collisions(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "a.jpg")
    plan = plan_jobs([str(tmp_path)], ext="png")
    assert len(plan.jobs) == 1 and len(plan.problems) == 1
    assert "already the output of" in plan.problems[0].reason


# ------------------------------------------------------------------------------ the library beneath


def test_upscale_jobs_yields_a_result_per_file_and_keeps_going(tmp_path, model_file):
    _png(tmp_path / "a.png", size=(40, 30))
    _png(tmp_path / "big.png", size=(64, 64))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    jobs = plan_jobs([str(tmp_path)]).jobs
    upscaler, warnings = load_upscaler(str(model_file), device="cpu", precision="fp32", tile=16)
    assert warnings == [] and upscaler.tile_overlap == 8  # the small-tile default, as in the CLI
    seen: list[tuple[str, int, int]] = []

    @contextmanager
    def record(job: Job, n_tiles: int) -> Iterator[object]:
        seen.append((job.src.name, n_tiles, 0))
        yield lambda done, total: seen.append((job.src.name, total, done))

    results = {r.job.src.name: r for r in upscale_jobs(upscaler, jobs, max_pixels=3000, tile_progress=record)}
    assert list(results) == ["a.png", "bad.png", "big.png"]
    assert results["a.png"].error is None and results["a.png"].megapixels_out == pytest.approx(
        4 * 40 * 30 / 1e6
    )
    assert results["bad.png"].error is not None and "bad.png" in results["bad.png"].error
    assert "big.png: 64x64" in str(results["big.png"].error) and not (tmp_path / "big_sr.png").exists()
    assert Image.open(tmp_path / "a_sr.png").size == (80, 60)
    # a.png ran as 16-pixel tiles (overlap 8): a tile count first, then one call per tile.
    a_calls = [c for c in seen if c[0] == "a.png"]
    assert a_calls[0][1] > 1 and [c[2] for c in a_calls] == list(range(a_calls[0][1] + 1))
    totals = BatchTotals()
    for r in results.values():
        totals.add(r)
    assert (totals.ok, totals.failed) == (1, 2) and totals.megapixels_in == pytest.approx(40 * 30 / 1e6)


def test_setup_errors_are_one_line(tmp_path, model_file):
    with pytest.raises(SetupError, match=r"nope\.pth") as caught:
        load_upscaler(str(tmp_path / "nope.pth"), device="cpu")
    assert "\n" not in str(caught.value)
    with pytest.raises(SetupError, match="larger than tile_overlap"):
        load_upscaler(str(model_file), device="cpu", tile=16, tile_overlap=16)
    assert check_ext("JPG") == ".jpg" and check_ext(None) is None
    with pytest.raises(ValueError, match=r"^xyz: not an image or video format"):
        check_ext("xyz")


@pytest.mark.parametrize(("outscale", "size"), [("1", (12, 10)), ("3", (36, 30)), ("1.5", (18, 15))])
def test_outscale_resizes_the_models_output_to_the_asked_scale(tmp_path, model_file, outscale, size):
    src = _png(tmp_path / "a.png", mode="RGBA")
    res = _run(src, "-m", model_file, "--device", "cpu", "--precision", "fp32", "--outscale", outscale)
    assert res.exit_code == 0, res.output
    out = Image.open(tmp_path / "a_sr.png")
    assert out.size == size and out.mode == "RGBA"
    assert f"x2 then x{outscale} in all" in res.stdout


def test_outscale_equals_the_services_resize_of_the_models_output(tmp_path, model_file):
    from esrgan.inference import upscale_image
    from esrgan.inference.resize import resize_image
    from esrgan.io import read_image

    src = _png(tmp_path / "a.png")
    assert (
        _run(src, "-m", model_file, "--precision", "fp32", "--runtime", "torch", "--outscale", "1").exit_code
        == 0
    )
    upscaler, _ = load_upscaler(str(model_file), device="cpu", precision="fp32", runtime="torch")
    expected = resize_image(upscale_image(upscaler, read_image(src)), height=10, width=12)
    got = np.asarray(Image.open(tmp_path / "a_sr.png"), dtype=np.float32) / 255
    want = expected.pixels.permute(1, 2, 0).numpy()
    assert np.abs(got - want).max() <= 1 / 255 + 1e-6


def test_outscale_must_be_above_zero(tmp_path, model_file):
    res = _run(_png(tmp_path / "a.png"), "-m", model_file, "--outscale", "0")
    assert res.exit_code == 2 and not (tmp_path / "a_sr.png").exists()
