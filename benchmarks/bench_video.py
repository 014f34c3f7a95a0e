"""Video upscaling speed and memory: frames per second of `esrgan upscale` on a 360p clip at x4.

    .venv/bin/python benchmarks/bench_video.py                                   # both models, 4 frames
    .venv/bin/python benchmarks/bench_video.py --models realesrgan-x4plus --frames 8
    .venv/bin/python benchmarks/bench_video.py --still docs/images/video_still.png

The clip is made here: a 640x360 window panning across Set14's "comic"-sized image 768x512
(img_011), 4 px a frame, H.264 at 24 fps with an AAC track. Each model runs the whole video job
(decode, upscale at the default precision and tiling, encode with libx264 crf 18, join, audio copy);
frames/s counts the job after the model is prepared (int8 quantising or ONNX export happen once and are
cached), and the memory peak is the process's resident peak (VmHWM) during the job. Models missing
from this checkout's zoo are reported and skipped. Not a test: timings depend on the machine and on
whatever else runs on it.
"""

from __future__ import annotations

import argparse
import platform
import re
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from esrgan.inference.batch import load_upscaler
from esrgan.inference.jobs import SetupError
from esrgan.inference.video import VideoOptions, upscale_video
from esrgan.io.video import read_video

SOURCE = Path(__file__).resolve().parents[2] / "shared/datasets/Set14/x4/img_011_SRF_4_HR.png"
MODELS = "realesr-animevideov3-x4,realesrgan-x4plus"


def _vm_kib(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    return int(m.group(1)) if m else 0


def make_clip(path: Path, frames: int, size: tuple[int, int] = (640, 360), fps: int = 24) -> Path:
    import av

    w, h = size
    if SOURCE.exists():
        base = np.asarray(Image.open(SOURCE).convert("RGB").resize((w + 4 * frames, h), Image.BICUBIC))
    else:  # a smooth random texture where the shared data is missing
        rng = np.random.default_rng(0)
        small = Image.fromarray(rng.integers(0, 256, (h // 16, (w + 4 * frames) // 16, 3), dtype=np.uint8))
        base = np.asarray(small.resize((w + 4 * frames, h), Image.BICUBIC))
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.codec_context.time_base = Fraction(1, fps)
        v.options = {"crf": "18"}
        a = c.add_stream("aac", rate=48000, layout="stereo")
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 4 * i : 4 * i + w]), format="rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        n = 48000 * frames // fps
        tone = (0.2 * np.sin(np.arange(n) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        af.sample_rate, af.pts = 48000, 0
        c.mux(a.encode(af))
        c.mux(a.encode(None))
    return path


CROP = (200, 100, 160, 120)
"""x, y, width, height of the still, in input pixels."""


def save_still(src: Path, out: Path, dst: Path, crop: tuple[int, int, int, int] = CROP) -> None:
    """A crop of the first frame: the input enlarged x4 by nearest neighbour (what was there) beside
    the upscaled frame."""
    x, y, w, h = crop
    first_in = next(read_video(src)).pixels
    first_out = next(read_video(out)).pixels
    s = first_out.shape[-1] // first_in.shape[-1]
    a = first_in[:, y : y + h, x : x + w].repeat_interleave(s, 1).repeat_interleave(s, 2)
    b = first_out[:, y * s : (y + h) * s, x * s : (x + w) * s]
    gap = torch.ones(3, a.shape[1], 8)
    row = torch.cat([a, gap, b], dim=2).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(row).save(dst)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=MODELS)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--still", type=Path, default=None, help="Save a still of the last model's output here.")
    args = p.parse_args()
    cpu = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    print(f"machine: {cpu.group(1) if cpu else platform.processor()}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        src = make_clip(Path(tmp) / "clip360.mp4", args.frames)
        print(f"clip: 640x360, {args.frames} frames, x4 -> 2560x1440, libx264 crf 18")
        head = ("model", "precision", "runtime", "tile", "frames/s", "peak RSS")
        print(f"{head[0]:28s} {head[1]:>9s} {head[2]:>12s} {head[3]:>5s} {head[4]:>9s} {head[5]:>9s}")
        for name in args.models.split(","):
            try:
                up, _ = load_upscaler(name, device=args.device, precision=args.precision, progress=False)
            except SetupError as exc:
                print(f"{name:28s} skipped: {exc}")
                continue
            up.prepare()
            out = Path(tmp) / f"{name}_sr.mp4"
            Path("/proc/self/clear_refs").write_text("5")
            start = time.perf_counter()
            result = upscale_video(up, src, out, options=VideoOptions(model=name))
            seconds = time.perf_counter() - start
            tile = up.tile_for(360, 640, 4)
            peak = _vm_kib("VmHWM") / 2**20
            fps = result.frames / seconds
            print(f"{name:28s} {up.precision:>9s} {up.runtime:>12s} {tile:>5d} {fps:>9.3f} {peak:>7.2f} GiB")
            if args.still is not None:
                save_still(src, out, args.still)


if __name__ == "__main__":
    main()
