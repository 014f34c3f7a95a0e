"""The warm start of `esrgan upscale` (`esrgan.inference.warm`, `esrgan.cli.upscale_warm`): a second
run of a request whose path was measured runs without torch, writes the same bytes and prints the same
lines as the full command, and trusts nothing that changed since.

The end-to-end runs are real `esrgan` processes on a 2-block RRDBNet with `--runtime openvino`, so the
measured choice is an OpenVINO path on every CPU (the default `auto` may pick torch on some)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from esrgan.cli.upscale_warm import WARM_START_ENV, parse_warm, run_warm
from esrgan.inference import warm
from esrgan.inference.upscaler import Upscaler
from esrgan.models import RRDBNet
from esrgan.weights import load_generator, save_generator

pytest.importorskip("openvino")

# Runs `esrgan` as the console script does, then says on stderr whether torch was ever imported and
# whether the full command (the Typer app) ran: a warm run never builds the app, not even for the
# files it hands to the full path.
PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('FULL-APP', 'esrgan.cli.commands' in sys.modules, file=sys.stderr))\n"
    "atexit.register(lambda: print('TORCH-IMPORTED', 'torch' in sys.modules, file=sys.stderr))\n"
    "from esrgan.cli import main\n"
    "main()\n"
)
RUNTIME = ("--runtime", "openvino")


def _esrgan(cache: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != WARM_START_ENV}
    environ.update({"ESRGAN_CACHE": str(cache), **(env or {})})
    cmd = [sys.executable, "-c", PROBE, "upscale", *args]
    return subprocess.run(cmd, env=environ, capture_output=True, text=True, timeout=600)


def _probe(res: subprocess.CompletedProcess[str], what: str) -> bool:
    line = [x for x in res.stderr.splitlines() if x.startswith(what)]
    assert line, res.stderr
    return line[-1].endswith("True")


def _torch_imported(res: subprocess.CompletedProcess[str]) -> bool:
    return _probe(res, "TORCH-IMPORTED")


def _full_app(res: subprocess.CompletedProcess[str]) -> bool:
    return _probe(res, "FULL-APP")


def _lines(res: subprocess.CompletedProcess[str], out_dir: Path) -> list[str]:
    """stdout without the summary's timing and with the output folder's name left out."""
    lines = []
    for line in res.stdout.splitlines():
        line = line.replace(str(out_dir), "OUT")
        lines.append(
            line.split(" in ")[0] + " ... " + line.rsplit("(", 1)[-1] if line.startswith("done:") else line
        )
    return lines


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model file, test images (RGB with an ICC profile, JPEG, grey, RGBA, broken) and a first,
    full run that measures the path and remembers it."""
    root = tmp_path_factory.mktemp("warm")
    torch.manual_seed(0)
    model = RRDBNet(num_feat=32, num_block=2, num_grow_ch=16)
    save_generator(model, root / "model.safetensors")
    rng = np.random.default_rng(0)
    base = (rng.random((40, 36, 3)) * 255).astype(np.uint8)
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    images = root / "in"
    images.mkdir()
    Image.fromarray(base).save(images / "rgb.png", icc_profile=icc)
    Image.fromarray(base[:30, :33]).save(images / "photo.jpg", quality=90)
    Image.fromarray(base[..., 1]).save(images / "grey.png")
    Image.fromarray(np.dstack([base, base[..., :1]])).save(images / "rgba.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    cache = root / "cache"
    full = _esrgan(
        cache, str(images), "-m", str(root / "model.safetensors"), *RUNTIME, "-o", str(root / "full")
    )
    assert full.returncode == 1, full.stderr  # the broken file
    assert _torch_imported(full) and _full_app(full)
    assert len(list((cache / "warm").glob("warm-*.json"))) == 1
    return {
        "root": root,
        "images": images,
        "cache": cache,
        "model": root / "model.safetensors",
        "full": root / "full",
    }


def _same_outputs(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and len(names) == 4
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_a_warm_run_imports_no_torch_and_writes_the_full_commands_bytes(setup: dict[str, Path]):
    images, out = setup["images"], setup["root"] / "warm"
    args = [str(images / "rgb.png"), str(images / "photo.jpg"), "-m", str(setup["model"]), *RUNTIME]
    res = _esrgan(setup["cache"], *args, "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert not _torch_imported(res) and not _full_app(res)
    for name in ("rgb_sr.png", "photo_sr.jpg"):
        assert (out / name).read_bytes() == (setup["full"] / name).read_bytes(), name
    with Image.open(out / "rgb_sr.png") as img:
        assert img.size == (36 * 4, 40 * 4) and img.info.get("icc_profile")
    assert res.stdout.splitlines()[-1].startswith(
        "done: 2 ok, 0 failed, 0 skipped; 0.00 MP in -> 0.04 MP out"
    )
    assert "(cpu, openvino " in res.stdout


def test_a_warm_run_on_onnx_runtime_writes_the_full_commands_bytes(setup: dict[str, Path]):
    images, root = setup["images"], setup["root"]
    args = [
        str(images / "rgb.png"),
        str(images / "photo.jpg"),
        "-m",
        str(setup["model"]),
        "--runtime",
        "onnxruntime",
    ]
    full = _esrgan(setup["cache"], *args, "-o", str(root / "ort-full"))
    assert full.returncode == 0 and _full_app(full), full.stderr
    assert "(cpu, onnxruntime fp32, x4)" in full.stdout
    res = _esrgan(setup["cache"], *args, "-o", str(root / "ort-warm"))
    assert res.returncode == 0 and not _torch_imported(res), res.stderr
    assert "(cpu, onnxruntime fp32, x4)" in res.stdout
    for name in ("rgb_sr.png", "photo_sr.jpg"):
        assert (root / "ort-warm" / name).read_bytes() == (root / "ort-full" / name).read_bytes(), name


def test_odd_images_in_a_warm_run_take_the_full_path_with_the_same_outputs_and_lines(setup: dict[str, Path]):
    out = setup["root"] / "mixed"
    args = [str(setup["images"]), "-m", str(setup["model"]), *RUNTIME, "-o", str(out)]
    first = _esrgan(setup["cache"], *args)
    assert first.returncode == 1
    _same_outputs(setup["full"], out)
    again = _esrgan(setup["cache"], *args, "--overwrite")
    _same_outputs(setup["full"], out)
    # A warm run that handed the grey and RGBA images to the full path (torch loaded for them); the
    # broken one is reported as the full command does.
    assert _torch_imported(again) and not _full_app(again)
    reference = _esrgan(setup["cache"], *args, "--overwrite", env={WARM_START_ENV: "0"})
    assert _full_app(reference)
    assert _lines(again, out) == _lines(reference, out)
    errors = [x for x in again.stderr.splitlines() if x.startswith("error:")]
    assert errors == [x for x in reference.stderr.splitlines() if x.startswith("error:")] and len(errors) == 1
    assert "broken.png" in errors[0] and again.returncode == reference.returncode == 1


def test_kept_outputs_and_missing_inputs_are_reported_warm_as_the_full_command_does(setup: dict[str, Path]):
    inputs = [str(setup["images"] / "rgb.png"), str(setup["images"] / "missing.png")]

    def run(out: Path, warm_start: bool) -> subprocess.CompletedProcess[str]:
        env = {} if warm_start else {WARM_START_ENV: "0"}
        res = _esrgan(setup["cache"], *inputs, "-m", str(setup["model"]), *RUNTIME, "-o", str(out), env=env)
        assert _full_app(res) != warm_start and (_torch_imported(res) != warm_start)
        return res

    def same(
        a: subprocess.CompletedProcess[str], a_out: Path, b: subprocess.CompletedProcess[str], b_out: Path
    ):
        assert a.returncode == b.returncode == 1
        assert _lines(a, a_out) == _lines(b, b_out)

        def noted(res: subprocess.CompletedProcess[str], out: Path) -> list[str]:
            lines = res.stderr.replace(str(out), "OUT").splitlines()
            return [x for x in lines if not x.startswith(("TORCH", "FULL"))]

        assert noted(a, a_out) == noted(b, b_out)

    warm_out, full_out = setup["root"] / "plan-warm", setup["root"] / "plan-full"
    # One job and one input that cannot run; then the output is kept: nothing to do, no model needed.
    same(run(warm_out, True), warm_out, run(full_out, False), full_out)
    kept = run(warm_out, True)
    same(kept, warm_out, run(full_out, False), full_out)
    assert "nothing to do: 1 failed, 1 skipped" in kept.stderr and "skip: " in kept.stderr
    assert (warm_out / "rgb_sr.png").read_bytes() == (setup["full"] / "rgb_sr.png").read_bytes()


def _entry(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> warm.WarmEntry | None:
    monkeypatch.setenv("ESRGAN_CACHE", str(setup["cache"]))
    return warm.recall(str(setup["model"]), precision="auto", runtime="openvino")


def test_an_entry_is_trusted_only_while_everything_it_rests_on_holds(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    entry = _entry(setup, monkeypatch)
    assert entry is not None and entry.choice.startswith("openvino")
    assert warm.recall(str(setup["model"]), precision="auto", runtime="auto") is None  # another request
    monkeypatch.chdir(tmp_path)
    assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is not None

    def changed(**patches: object) -> bool:
        with monkeypatch.context() as m:
            for name, value in patches.items():
                m.setattr(warm, name, value)
            return warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is None

    real_cpu = warm.cpu_info()
    other_flags = type(real_cpu)(
        model=real_cpu.model, flags=real_cpu.flags | {"amx_bf16"}, cores=real_cpu.cores
    )
    assert changed(cpu_info=lambda: other_flags)
    versions = {**warm.library_versions(), "openvino": "0.0"}
    assert changed(library_versions=lambda: versions)
    with monkeypatch.context() as m:
        m.setenv("OMP_NUM_THREADS", "1")
        assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is None
    assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is not None


def test_a_changed_file_or_a_damaged_entry_is_not_trusted(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    entry = _entry(setup, monkeypatch)
    assert entry is not None
    path = warm.entry_path(str(setup["model"]), "auto", "openvino")
    good = path.read_text()
    for name in ("weights", "networks"):
        stamp = getattr(entry, name)[0]
        st = os.stat(stamp.path)
        os.utime(stamp.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        try:
            assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is None, name
        finally:
            os.utime(stamp.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    decision = Path(entry.decision)
    kept = decision.read_text()
    try:
        data = json.loads(kept)
        data["payload"]["seconds"] += 1.0  # the checksum no longer matches
        decision.write_text(json.dumps(data))
        assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is None
    finally:
        decision.write_text(kept)
    try:
        data = json.loads(good)
        data["payload"]["threads"] += 1  # no longer what the checksum covers
        path.write_text(json.dumps(data))
        assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is None
        path.write_text(good[: len(good) // 2])
        assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is None
    finally:
        path.write_text(good)
    assert warm.recall(str(setup["model"]), precision="auto", runtime="openvino") is not None


def test_one_tile_is_decided_as_the_upscaler_decides(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    entry = _entry(setup, monkeypatch)
    assert entry is not None
    precision = "bf16" if entry.hint == "bf16" else "fp32"
    monkeypatch.setattr(Upscaler, "prepare", lambda self, **_: None)  # the plan needs no network
    up = Upscaler(load_generator(setup["model"]), device="cpu", precision=precision, runtime="openvino")
    from esrgan.inference import memory

    for free in (2**20, 30 * 2**20, 200 * 2**20, 2**34):
        monkeypatch.setattr(memory, "available_cpu_memory", lambda free=free: free)
        for h, w in ((8, 8), (37, 41), (120, 90), (400, 300), (1024, 1024), (3000, 2000)):
            up._last_plan = None
            assert warm.fits_one_tile(entry, h, w, free=free) == (up.num_tiles(h, w) == 1), (free, h, w)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["upscale", "a.png"], {"inputs": ["a.png"]}),
        (
            ["upscale", "a.png", "-m", "x.pth", "--quality=80", "-o", "out", "-q", "b", "--", "-c.png"],
            {"inputs": ["a.png", "b", "-c.png"], "model": "x.pth", "quality": 80, "out_dir": Path("out")},
        ),
        (
            ["upscale", "a.png", "--precision", "fp32", "--device", "cpu", "--tile", "auto"],
            {"precision": "fp32"},
        ),
        (["upscale", "a.png", "--ext", "JPG", "--overwrite", "-r"], {"ext": ".jpg", "overwrite": True}),
        (["upscale"], None),
        (["weights", "a.png"], None),
        (["upscale", "a.png", "--help"], None),
        (["upscale", "a.png", "--tile", "256"], None),
        (["upscale", "a.png", "--precision", "bf16"], None),
        (["upscale", "a.png", "--runtime", "torch"], None),
        (["upscale", "a.png", "--device", "cuda"], None),
        (["upscale", "a.png", "--outscale", "2"], None),
        (["upscale", "a.png", "--max-memory", "1GiB"], None),
        (["upscale", "a.png", "--quality", "0"], None),
        (["upscale", "a.png", "--quality", "²"], None),
        (["upscale", "a.png", "-m", "a", "-m", "b"], None),
        (["upscale", "a.png", "-m"], None),
        (["upscale", "a.png", "--suffix", "-x"], None),
        (["upscale", "a.png", "-qr"], None),
        (["upscale", "a.png", "--ext", "xyz"], None),
    ],
)
def test_only_plain_command_lines_are_taken_warm(argv: list[str], expected: dict[str, object] | None):
    args = parse_warm(argv)
    if expected is None:
        assert args is None
        return
    assert args is not None
    for name, value in expected.items():
        assert getattr(args, name) == value, name


def test_the_warm_start_can_be_switched_off_and_stays_out_of_shared_runs(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
):
    argv = ["upscale", str(setup["images"] / "rgb.png"), "-m", str(setup["model"]), *RUNTIME, "-o", "x"]
    monkeypatch.setenv("ESRGAN_CACHE", str(setup["cache"]))
    monkeypatch.setenv(WARM_START_ENV, "0")
    assert run_warm(argv) is None
    monkeypatch.delenv(WARM_START_ENV)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_warm(argv) is None


def test_the_warm_path_modules_do_not_import_torch():
    code = "import sys, esrgan.cli, esrgan.cli.upscale_warm; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_decoded_arrays_encode_as_the_tensor_writer_does():
    from esrgan.io import ImageData, decode_array, encode_array, encode_image, read_image

    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((9, 7, 3)) * 255).astype(np.uint8)).save(buffer, format="PNG")
    decoded = decode_array(buffer.getvalue())
    image = read_image(buffer.getvalue())
    assert np.array_equal(decoded.array, (image.pixels * 255).round().permute(1, 2, 0).byte().numpy())
    for fmt in ("PNG", "JPEG", "WEBP"):
        as_tensor = encode_image(ImageData(pixels=image.pixels), fmt)
        assert encode_array(decoded.array, fmt) == as_tensor, fmt
