"""Where outputs go when folders misbehave: clear errors or correct results, never an overwritten input.

Read-only and full folders are real file systems (a small tmpfs mounted read-only or size-limited), since
these tests run as root, for whom permission bits change nothing; the permission-bit test runs for
other users.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from _weights_fixtures import torch_threads
from esrgan.cli import app
from esrgan.models import RRDBNet
from esrgan.weights import save_generator


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny_x2.safetensors"
    save_generator(RRDBNet(num_feat=4, num_block=1, num_grow_ch=4, scale=2), path)
    return path


def _png(path: Path, size: int = 6, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
    Image.fromarray(arr).save(path, format="PNG")
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _upscale(model: Path, *args: object) -> tuple[int, str]:
    # One intra-op thread: tiny convolutions on a shared, busy machine are many times faster that way.
    with torch_threads(1):
        res = CliRunner().invoke(app, ["upscale", *map(str, args), "--model", str(model), "--device", "cpu"])
    return res.exit_code, res.output


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


@contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs at `where` (skips the test where mounting is not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) for a real read-only or full file system")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.decode(errors='replace').strip()})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_out_dir_that_is_a_file_is_one_error_before_any_work(tmp_path: Path, model_file: Path) -> None:
    src = _png(tmp_path / "a.png")
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder")
    code, out = _upscale(model_file, src, "-o", blocker)
    assert code == 2 and _errors(out) == [f"error: --out-dir {blocker}: is a file, not a folder"], out
    code, out = _upscale(model_file, src, "-o", blocker / "sub")
    assert code == 2 and _errors(out) == [
        f"error: --out-dir {blocker}/sub: a file is in the way of this folder"
    ]
    assert blocker.read_text() == "a file, not a folder"


def test_a_file_in_the_way_of_a_mirrored_sub_folder(tmp_path: Path, model_file: Path) -> None:
    _png(tmp_path / "in" / "sub" / "b.png")
    _png(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "sub").write_text("in the way")
    code, out = _upscale(model_file, tmp_path / "in", "-r", "-o", tmp_path / "out")
    assert code == 1, out
    assert _errors(out) == [
        f"error: {tmp_path}/out/sub/b_sr.png: cannot write output (a file is in the way of its folder)"
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_sr.png", "sub"]


def test_read_only_folders(tmp_path: Path, model_file: Path) -> None:
    with _tmpfs(tmp_path / "ro", "size=1m") as ro:
        src = _png(ro / "a.png")
        before = _sha(src)
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        code, out = _upscale(model_file, src)  # output beside the input: a per-file error
        assert code == 1 and _errors(out) == [
            f"error: {ro}/a_sr.png: cannot write output (Read-only file system)"
        ], out
        code, out = _upscale(model_file, _png(tmp_path / "b.png"), "-o", ro / "out")
        assert code == 2 and _errors(out) == [
            f"error: --out-dir {ro}/out: cannot write there (Read-only file system)"
        ], out
        assert _sha(src) == before and sorted(os.listdir(ro)) == ["a.png"]


def test_full_disk_leaves_no_partial_output(tmp_path: Path, model_file: Path) -> None:
    big = _png(tmp_path / "big.png", size=64)  # 128 x 128 as BMP (uncompressed): 48 KiB
    small = _png(tmp_path / "small.png", size=4, seed=1)
    with _tmpfs(tmp_path / "full", "size=16k") as full:
        code, out = _upscale(model_file, big, small, "-o", full, "--ext", "bmp")
        assert code == 1, out
        assert _errors(out) == [f"error: {full}/big_sr.bmp: cannot write output (No space left on device)"]
        assert os.listdir(full) == ["small_sr.bmp"]  # no temporary or truncated file left
        Image.open(full / "small_sr.bmp").load()


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root ignores permission bits (test_read_only_folders covers it)"
)
def test_permission_denied(tmp_path: Path, model_file: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    src = _png(locked / "a.png")
    locked.chmod(0o555)
    try:
        code, out = _upscale(model_file, src)
        assert code == 1 and _errors(out) == [
            f"error: {locked}/a_sr.png: cannot write output (Permission denied)"
        ]
        code, out = _upscale(model_file, src, "-o", locked / "out")
        assert code == 2 and "cannot write there (Permission denied)" in out
    finally:
        locked.chmod(0o755)


def test_output_that_would_be_the_input_is_refused(tmp_path: Path, model_file: Path) -> None:
    src = _png(tmp_path / "in" / "a.png")
    before = _sha(src)
    (tmp_path / "alias").symlink_to(tmp_path / "in")
    for extra in (
        ["--suffix", ""],
        ["--suffix", "", "-o", tmp_path / "in"],
        ["--suffix", "", "-o", tmp_path / "alias"],
    ):
        code, out = _upscale(model_file, src, *extra, "--overwrite")
        assert code == 1, out
        assert _errors(out) == [
            f"error: {src}: output would overwrite the input itself; use --suffix or --out-dir"
        ]
    assert _sha(src) == before


def test_output_that_is_another_input_is_never_replaced(tmp_path: Path, model_file: Path) -> None:
    # `esrgan upscale *.png --overwrite` after an earlier run: a.png's output a_sr.png is also an input.
    a, a_sr = _png(tmp_path / "a.png"), _png(tmp_path / "a_sr.png", seed=2)
    before = _sha(a_sr)
    code, out = _upscale(model_file, a, a_sr, "--overwrite")
    assert code == 1
    assert _errors(out) == [f"error: {a}: output {a_sr} is another input of this run; it is not replaced"]
    assert _sha(a_sr) == before and (tmp_path / "a_sr_sr.png").exists()
    code, out = _upscale(model_file, a, a_sr)  # without --overwrite the existing output is just skipped
    assert code == 0 and f"skip: {a}: {a_sr} exists" in out
    assert _sha(a_sr) == before


NAMES = [
    "with space.png",
    "ünïcödé 日本語.png",
    "emoji 🙂.png",
    "-starts-with-dash.png",
    "semi;colon'quote\".png",
]


def test_names_with_spaces_unicode_and_odd_characters(tmp_path: Path, model_file: Path) -> None:
    for i, name in enumerate(NAMES):
        _png(tmp_path / "in" / name, seed=i)
    code, out = _upscale(model_file, tmp_path / "in", "-o", tmp_path / "out")
    assert code == 0, out
    expected = sorted(name.replace(".png", "_sr.png") for name in NAMES)
    assert sorted(os.listdir(tmp_path / "out")) == expected
    for name in expected:
        assert Image.open(tmp_path / "out" / name).size == (12, 12)


@pytest.mark.skipif(sys.platform != "linux", reason="file names that are not text exist on Linux")
def test_undecodable_names_on_an_ascii_terminal(tmp_path: Path, model_file: Path) -> None:
    # A name with a byte that is not UTF-8, and non-ASCII names printed to an ASCII-only stdout: the
    # outputs are written and the lines printed escaped, rather than a crash after the work.
    folder = tmp_path / "in"
    folder.mkdir()
    _png(Path(os.fsdecode(os.fsencode(folder) + b"/raw\xff.png")))
    _png(folder / "日本.png")
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "esrgan", "upscale", str(folder), "-m", str(model_file), "--device", "cpu"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "raw\\udcff.png -> " in res.stdout and "\\u65e5\\u672c_sr.png" in res.stdout
    assert sorted(os.listdir(os.fsencode(folder))) == sorted(
        [b"raw\xff.png", b"raw\xff_sr.png", "日本.png".encode(), "日本_sr.png".encode()]
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_thousand_files_in_one_folder(tmp_path: Path, model_file: Path) -> None:
    folder = tmp_path / "many"
    for i in range(2000):
        _png(folder / f"img {i:04d}.png", size=4, seed=i)
    code, out = _upscale(model_file, folder, "-q")
    assert code == 0, out[-2000:]
    assert out.strip().splitlines()[-1].startswith("done: 2000 ok, 0 failed, 0 skipped")
    names = os.listdir(folder)
    assert len(names) == 4000 and not [n for n in names if n.startswith(".")]
    assert Image.open(folder / "img 1999_sr.png").size == (8, 8)
    code, out = _upscale(model_file, folder, "-q")  # a rerun finds only outputs that exist
    assert code == 0 and "nothing to do: 0 failed, 2000 skipped" in out
