"""Video in `esrgan upscale`: tiny clips made here with PyAV (with an audio track), upscaled by a tiny
x4 model; frames, timestamps, audio, segments and resume, bad inputs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.inference import upscale_image
from esrgan.inference.batch import load_upscaler
from esrgan.inference.video import work_dir
from esrgan.io import ImageData
from esrgan.io.video import probe_video, read_video
from esrgan.models import RRDBNet
from esrgan.weights import save_generator

FAST = ("--device", "cpu", "--precision", "fp32", "--runtime", "torch", "--tile", "0")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny_x4.safetensors"
    save_generator(RRDBNet(num_feat=4, num_block=1, num_grow_ch=4, scale=4), path)
    return path


def make_clip(
    path: Path,
    *,
    frames: int = 10,
    size: tuple[int, int] = (64, 48),
    fps: int = 12,
    pix_fmt: str = "yuv444p",
    codec: str = "libx264",
    steps: list[int] | None = None,
    audio: bool = True,
) -> Path:
    """A moving colour pattern, lossless (x264 qp 0), with a sine audio track; `steps` gives the frame
    durations in ticks of 1/(10 fps) for a variable frame rate."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as c:
        v = c.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        v.codec_context.time_base = Fraction(1, fps * 10)
        v.options = {"qp": "0"} if codec == "libx264" else {"crf": "0"}
        a = c.add_stream("aac", rate=8000, layout="mono") if audio else None
        pts = 0
        for i in range(frames):
            img = np.stack([(xx * 4 + i * 8) % 256, (yy * 5) % 256, ((xx + yy) * 3 + i * 20) % 256], -1)
            f = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            f.pts = pts
            pts += steps[i % len(steps)] if steps else 10
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        if a is not None:
            n = 8000 * frames // fps
            sine = (np.sin(np.arange(n) * 2 * np.pi * 440 / 8000) * 0.3).astype(np.float32)[None]
            af = av.AudioFrame.from_ndarray(sine, format="fltp", layout="mono")
            af.sample_rate, af.pts = 8000, 0
            c.mux(a.encode(af))
            c.mux(a.encode(None))
    return path


def _run(*args: object):
    return CliRunner().invoke(app, ["upscale", *map(str, args)])


def _seconds(path: Path) -> list[float]:
    info = probe_video(path)
    return [float((p - info.pts[0]) * info.time_base) for p in info.pts]


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def test_clip_gives_clip_sr_with_the_same_frames_timestamps_and_audio(tmp_path, model_file):
    src = make_clip(tmp_path / "clip.mp4")
    res = _run(src, "-m", model_file, *FAST)
    assert res.exit_code == 0, res.output
    out = tmp_path / "clip_sr.mp4"
    info, source = probe_video(out), probe_video(src)
    assert (info.width, info.height, info.frames, info.fps) == (256, 192, 10, Fraction(12))
    assert _seconds(out) == _seconds(src)
    assert info.pix_fmt == source.pix_fmt == "yuv444p"
    # Copied, not re-encoded: the very same AAC packets.
    assert _audio_packets(out) == _audio_packets(src)
    assert not work_dir(out).exists()


def test_frames_equal_image_upscaling_of_the_decoded_frames(tmp_path, model_file):
    # Lossless x264 in 4:4:4 on both sides: the only loss left is RGB -> YCbCr -> RGB at 8 bits
    # (rounding twice, about a level), so 3/255 at most and well under a level on average.
    src = make_clip(tmp_path / "clip.mp4", frames=6)
    assert _run(src, "-m", model_file, *FAST, "--video-codec", "libx264", "--crf", "0").exit_code == 0
    upscaler, _ = load_upscaler(str(model_file), device="cpu", precision="fp32", runtime="torch", tile=0)
    got = list(read_video(tmp_path / "clip_sr.mp4"))
    for frame, out in zip(read_video(src), got, strict=True):
        want = upscale_image(upscaler, ImageData(pixels=frame.pixels)).pixels
        diff = (out.pixels - want).abs()
        assert diff.max().item() <= 3 / 255 and diff.mean().item() < 0.5 / 255


def test_outscale_2_with_an_x4_model_gives_x2(tmp_path, model_file):
    src = make_clip(tmp_path / "clip.mkv", frames=4)
    res = _run(src, "-m", model_file, *FAST, "--outscale", "2")
    assert res.exit_code == 0, res.output
    info = probe_video(tmp_path / "clip_sr.mkv")
    assert (info.width, info.height, info.frames) == (128, 96, 4)


def test_variable_frame_rate_and_segment_joins_keep_every_timestamp(tmp_path, model_file):
    src = make_clip(tmp_path / "vfr.mp4", frames=12, steps=[10, 20, 30])
    res = _run(src, "-m", model_file, *FAST, "--segment-seconds", "0.25", "--ext", "mkv")
    assert res.exit_code == 0, res.output
    # Matroska keeps milliseconds; the joins add no gap and no duplicate.
    got, want = _seconds(tmp_path / "vfr_sr.mkv"), _seconds(src)
    assert len(got) == len(want) == 12
    assert np.allclose(got, want, atol=0.0011)


def test_ten_bit_in_gives_ten_bit_out(tmp_path, model_file):
    src = make_clip(tmp_path / "deep.mp4", frames=3, pix_fmt="yuv420p10le", audio=False)
    res = _run(src, "-m", model_file, *FAST, "--video-codec", "libx265")
    assert res.exit_code == 0, res.output
    info = probe_video(tmp_path / "deep_sr.mp4")
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("hevc", "yuv420p10le", 10)


def test_bad_inputs_give_one_line_and_the_others_run(tmp_path, model_file):
    good = make_clip(tmp_path / "good.mp4", frames=3)
    (tmp_path / "text.mp4").write_text("not a video at all\n" * 50)
    data = good.read_bytes()
    (tmp_path / "corrupt.mkv").write_bytes(data[:200] + bytes(len(data) - 200))
    res = _run(tmp_path / "text.mp4", tmp_path / "corrupt.mkv", good, "-m", model_file, *FAST)
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "text.mp4" in errors[0] and "corrupt.mkv" in errors[1]
    assert probe_video(tmp_path / "good_sr.mp4").frames == 3
    assert not (tmp_path / "text_sr.mp4").exists() and not (tmp_path / "corrupt_sr.mkv").exists()


def test_truncated_video_gives_the_frames_before_the_damage_and_a_warning(tmp_path, model_file):
    full = make_clip(tmp_path / "full.mkv", frames=12, audio=False)
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 6 // 10])
    res = _run(cut, "-m", model_file, *FAST, "--segment-seconds", "0.25")
    assert res.exit_code == 0, res.output
    frames = probe_video(tmp_path / "cut_sr.mkv").frames
    assert 0 < frames < 12
    assert "warning:" in res.stderr and "truncated or damaged" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--video-codec", "mpeg2"), "unknown video codec"),
        (("--ext", "webm", "--video-codec", "libx264"), "webm holds"),
        (("--crf", "99"), "crf"),
    ],
)
def test_bad_video_options_give_one_line(tmp_path, model_file, args, message):
    src = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    res = _run(src, "-m", model_file, *FAST, *args)
    assert res.exit_code in (1, 2) and message in res.output
    assert not (tmp_path / "clip_sr.mp4").exists() and not (tmp_path / "clip_sr.webm").exists()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_after_a_kill_keeps_finished_segments_and_gives_the_same_file(
    tmp_path, model_file, monkeypatch
):
    src = make_clip(tmp_path / "clip.mp4", frames=24)
    args = [src, "-m", model_file, *FAST, "--segment-seconds", "0.25", "-q"]
    out = tmp_path / "clip_sr.mp4"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"),
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "esrgan", "upscale", *map(str, args)], env=env)
    parts = work_dir(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(parts.glob("seg-*.mp4"))) < 2 and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not parts.is_dir() or out.exists():
        pytest.skip("the run finished before the kill (machine too fast for this clip)")
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in parts.glob("seg-*.mp4")}
    assert kept and not out.exists()
    import esrgan.inference.video as video

    ran: list[int] = []
    run_segment = video.run_segment
    monkeypatch.setattr(video, "run_segment", lambda *a, **k: ran.append(a[2].index) or run_segment(*a, **k))
    res = _run(*args, "--resume")
    assert res.exit_code == 0, res.output
    resumed = _sha(out)
    # 24 frames at 12 fps in quarter seconds: 8 segments, of which the killed run's are not redone.
    assert len(ran) == 8 - len(kept) and not {f"seg-{i:05d}.mp4" for i in ran} & set(kept)
    assert not parts.exists()
    monkeypatch.undo()
    out.unlink()
    assert _run(*args).exit_code == 0
    assert _sha(out) == resumed
    assert probe_video(out).frames == 24


def test_without_resume_an_earlier_work_folder_is_started_over(tmp_path, model_file):
    src = make_clip(tmp_path / "clip.mp4", frames=4, audio=False)
    parts = work_dir(tmp_path / "clip_sr.mp4")
    parts.mkdir()
    (parts / "seg-00000.mp4").write_bytes(b"stale")
    res = _run(src, "-m", model_file, *FAST, "--resume")
    assert res.exit_code == 0, res.output
    assert probe_video(tmp_path / "clip_sr.mp4").frames == 4


def test_a_full_disk_gives_one_line_and_no_partial_output(tmp_path, model_file):
    import shutil

    src = make_clip(tmp_path / "clip.mp4", frames=12)
    full = tmp_path / "full"
    full.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) for a real full file system")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(full)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        res = _run(src, "-m", model_file, *FAST, "-o", full, "--crf", "0")
        assert res.exit_code == 1
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "No space left on device" in errors[0], res.output
        assert not (full / "clip_sr.mp4").exists()
        assert not [p for p in full.iterdir() if p.name.startswith(".clip_sr.mp4.tmp")]
    finally:
        subprocess.run(["umount", "-l", str(full)], check=False)
