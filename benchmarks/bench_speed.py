"""Speed and memory of CPU upscaling per runtime/precision, against plain eager fp32 in the same run.

Every measurement runs in its own process (so its peak RSS is its own): for each input size, each
backend upscales the same real image (`--image`, resized bicubic) untiled `--repeats` times; the
median seconds of the forward passes (model loaded and runtime prepared beforehand), the process's
peak RSS, the ratio to eager fp32 at that size and the PSNR of the output against eager fp32's are
printed. The tiled size runs with `--tile auto --max-memory`; its baseline is eager fp32 over the
same tiles. `--whole-process` also times `esrgan upscale` (warm start, and the full path with
`ESRGAN_WARM_START=0`) against `benchmarks/eager_baseline.py` as whole commands (imports, weights,
runtime, image I/O), each run once untimed first so its caches are warm. Backends:

- eager: `model(x)` under no_grad, contiguous fp32: what a typical ESRGAN script runs.
- torch-fp32: `Upscaler(runtime="torch", precision="fp32")` (channels_last).
- auto: `Upscaler(precision="auto", runtime="auto")`, the default: the fastest path that passes this
  machine's check against eager fp32 (`esrgan.inference.autoselect`; measured once before the timing).
- onnxruntime-fp32: `Upscaler(runtime="onnxruntime", precision="fp32")`.
- openvino-fp32 / openvino-bf16: `Upscaler(runtime="openvino", precision=...)` (OpenVINO's
  INFERENCE_PRECISION_HINT f32 / bf16).
- torch-bf16: `Upscaler(runtime="torch", precision="bf16")` (autocast; emulated without native bf16).
- openvino-int8: `Upscaler(precision="int8")` (NNCF accuracy-controlled int8 on OpenVINO; quantised
  once before the timing, cached).

    .venv/bin/python benchmarks/bench_speed.py                      # 128, 256, 512 and 2048 tiled
    .venv/bin/python benchmarks/bench_speed.py --sizes 128,256 --tiled 0 --whole-process 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARM_START_ENV = "ESRGAN_WARM_START"  # esrgan.cli.upscale_warm: 0 turns the warm start off
BACKENDS = (
    "eager",
    "auto",
    "torch-fp32",
    "onnxruntime-fp32",
    "openvino-fp32",
    "torch-bf16",
    "openvino-bf16",
    "openvino-int8",
)


def _load_input(image: Path, size: int):  # -> torch.Tensor
    import numpy as np
    import torch
    from PIL import Image

    rgb = Image.open(image).convert("RGB").resize((size, size), Image.BICUBIC)
    arr = np.asarray(rgb, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()


def child(args: argparse.Namespace) -> None:
    """One backend, one size, in this process: print a JSON line with the timings."""
    import numpy as np
    import torch

    from esrgan.inference import Upscaler
    from esrgan.inference.memory import parse_memory
    from esrgan.inference.tiling import TilePlan, tiled_apply
    from esrgan.weights import load_generator

    model = load_generator(args.model, progress=False).eval()
    x = _load_input(args.image, args.size)
    tiled = args.tiled
    max_memory = parse_memory(args.max_memory) if tiled else None
    plan = None
    if args.backend == "eager":
        if args.plan:
            # Eager fp32 over the tiles the default path planned for this budget (given by the parent).
            rows, cols = json.loads(args.plan)
            plan = TilePlan(rows=tuple(map(tuple, rows)), cols=tuple(map(tuple, cols)))

        def run() -> torch.Tensor:
            with torch.no_grad():
                if plan is None:
                    return model(x).clamp(0, 1)
                return tiled_apply(
                    lambda t: model(t).clamp(0, 1), x, scale=model.scale, out_channels=3, plan=plan
                )

    else:
        runtime, precision = ("auto", "auto") if args.backend == "auto" else args.backend.split("-")
        runtime = "auto" if precision == "int8" else runtime
        up = Upscaler(
            model,
            device="cpu",
            precision=precision,
            runtime=runtime,
            tile="auto" if tiled else 0,
            max_memory=max_memory,
        )
        up.prepare()
        plan = up.plan_for(args.size, args.size)

        def run() -> torch.Tensor:
            return up.upscale(x)

    times = []
    out = None
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    if args.save and out is not None:
        np.save(args.save, (out[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    info = {"times": times}
    if plan is not None:
        info |= {"tiles": [len(plan.rows), len(plan.cols)], "tile_hw": list(plan.tile_hw)}
        info |= {"compute_ratio": plan.compute_ratio, "plan": json.dumps([plan.rows, plan.cols])}
    print(json.dumps(info))


def macs_per_input_pixel(model) -> float:  # model: torch.nn.Module
    """Multiply-adds of one forward pass per input pixel, counted from the convolutions' shapes."""
    import torch

    total = 0

    def hook(module, _inputs, output) -> None:
        nonlocal total
        k = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total += output.numel() * k

    side = 32
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, side, side))
    finally:
        for h in handles:
            h.remove()
    return total / side**2


def gemm_gflops(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    """Best GFLOP/s of an n x n matrix product in this dtype: the practical roof of this CPU's units, to
    set a network's achieved GFLOP/s against (a VM's nominal clock does not say the boost clock)."""
    import torch

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _run_child(cmd: list[str]) -> tuple[dict, float]:
    """Run a child process; its JSON line and its peak RSS in MiB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024


def _psnr(a_path: Path, b_path: Path) -> float:
    import numpy as np

    a, b = np.load(a_path, mmap_mode="r"), np.load(b_path, mmap_mode="r")
    sq = 0.0
    for i in range(0, a.shape[1], 256):  # in row blocks: tiled outputs are hundreds of MB
        sq += float(((a[:, i : i + 256].astype(np.float64) - b[:, i : i + 256]) ** 2).sum())
    mse = sq / a.size
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _whole_process(args: argparse.Namespace, size: int, tmp: Path) -> None:
    from PIL import Image

    src = tmp / f"in{size}.png"
    Image.open(args.image).convert("RGB").resize((size, size), Image.BICUBIC).save(src)
    esrgan = str(Path(sys.executable).with_name("esrgan"))

    def upscale(out: str, *extra: str) -> list[str]:
        return [
            esrgan,
            "upscale",
            str(src),
            "--model",
            args.model,
            "-o",
            str(tmp / out),
            "--overwrite",
            "-q",
            *extra,
        ]

    commands = {
        "eager_baseline.py": [
            sys.executable,
            str(REPO / "benchmarks" / "eager_baseline.py"),
            str(src),
            str(tmp / "eager.png"),
            "--model",
            args.model,
        ],
        "esrgan upscale": upscale("cli"),
        # The same command with the warm start off: what every run cost before it (imports torch).
        f"esrgan upscale, {WARM_START_ENV}=0": upscale("cold"),
        # The measured choice among the fp32 paths only: what the default runs on a CPU without native
        # bf16 (where the bf16 candidates are not tried), here at fp32's stricter 50 dB.
        "esrgan upscale --precision fp32": upscale("cli32", "--precision", "fp32"),
    }
    if "openvino-int8" in args.backends.split(","):
        commands["esrgan upscale --precision int8"] = upscale("cli8", "--precision", "int8")
    env = {name: dict(os.environ) for name in commands}
    env[f"esrgan upscale, {WARM_START_ENV}=0"][WARM_START_ENV] = "0"
    # Timed with the caches warm: a first, untimed run of each command measures its path (once per
    # model and machine), quantises for int8 and leaves the warm start's entry.
    for name, cmd in commands.items():
        if name != "eager_baseline.py":
            subprocess.run(cmd, check=True, capture_output=True, env=env[name])
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, cmd in commands.items():  # interleaved, so load changes hit both alike
            start = time.perf_counter()
            proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env[name]
            )
            _, status, usage = os.wait4(proc.pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            results[name].append((time.perf_counter() - start, usage.ru_maxrss / 1024))
    import numpy as np

    a = np.asarray(Image.open(tmp / "eager.png"), dtype=np.float64)
    psnrs = {}
    folders = {"esrgan upscale": "cli", "esrgan upscale --precision fp32": "cli32"}
    folders[f"esrgan upscale, {WARM_START_ENV}=0"] = "cold"
    folders["esrgan upscale --precision int8"] = "cli8"
    for name, folder in folders.items():
        if name in commands:
            b = np.asarray(Image.open(tmp / folder / src.name.replace(".png", "_sr.png")), dtype=np.float64)
            mse = float(((a - b) ** 2).mean())
            psnrs[name] = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    base = statistics.median(t for t, _ in results["eager_baseline.py"])
    print(f"\nwhole process, {size}x{size} input, median of {args.repeats} (interleaved):")
    print(
        "| command | seconds | peak RSS MiB | vs eager_baseline.py | PSNR vs eager (dB) |\n"
        "|---|---|---|---|---|"
    )
    for name, runs in results.items():
        med = statistics.median(t for t, _ in runs)
        rss = max(r for _, r in runs)
        p = f"{psnrs[name]:.1f}" if name in psnrs else "-"
        print(
            f"| {name} | {med:.1f} ({', '.join(f'{t:.1f}' for t, _ in runs)}) | {rss:.0f} | "
            f"{base / med:.2f}x | {p} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="realesrgan-x4plus")
    parser.add_argument("--image", type=Path, default=REPO / "assets" / "sample_baby_lr.png")
    parser.add_argument("--sizes", default="128,256,512", help="untiled input sizes (comma-separated)")
    parser.add_argument("--tiled", type=int, default=2048, help="input size of the tiled run (0: none)")
    # 2 GiB cannot hold a 2048 px input at x4 (the 8192x8192 float output alone is 0.8 GiB).
    parser.add_argument("--max-memory", default="4GiB", help="memory budget of the tiled run")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiled-repeats", type=int, default=1)
    parser.add_argument(
        "--whole-process", default="256", help="sizes for the whole-command timing ('' : none)"
    )
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--child-tiled", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.backend, args.size, args.tiled = args.child[0], int(args.child[1]), args.child_tiled
        child(args)
        return

    import platform

    import torch

    backends = [b for b in args.backends.split(",") if b]
    if "eager" not in backends:
        backends.insert(0, "eager")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    from esrgan.device import cpu_has_native_bf16, cpu_info

    this_cpu = cpu_info()
    print(f"CPU class {this_cpu.cpu_class}: {this_cpu.describe()}")
    from esrgan.weights import load_generator

    macs = macs_per_input_pixel(load_generator(args.model, progress=False).eval())
    print(f"{args.model}: {macs / 1e6:.2f} M multiply-adds per input pixel")
    roofs = {"fp32": gemm_gflops("fp32")}
    if cpu_has_native_bf16():
        roofs["bf16"] = gemm_gflops("bf16")
    roof = ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in roofs.items())
    print(f"matrix product roof (2048^2, torch.mm): {roof}")
    print(
        f"{args.model}, {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    runs = [(int(s), False, args.repeats) for s in args.sizes.split(",") if s]
    if args.tiled:
        runs.append((args.tiled, True, args.tiled_repeats))
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp_name:
        tmp = Path(tmp_name)
        print(
            "| input | backend | seconds (median) | GFLOP/s | peak RSS MiB | vs eager fp32 "
            "| PSNR vs eager (dB) | tiles |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for size, tiled, repeats in runs:
            # The tiled eager baseline runs over the default path's tiles, so that path goes first.
            order = sorted(backends, key=lambda b: b != "onnxruntime-fp32") if tiled else backends
            results: dict[str, tuple[dict, float]] = {}
            for backend in order:
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    backend,
                    str(size),
                    "--model",
                    args.model,
                    "--image",
                    str(args.image),
                    "--repeats",
                    str(repeats),
                    "--max-memory",
                    args.max_memory,
                    "--save",
                    str(tmp / f"{backend}-{size}.npy"),
                ]
                if tiled:
                    cmd.append("--child-tiled")
                    if backend == "eager" and "onnxruntime-fp32" in results:
                        cmd += ["--plan", results["onnxruntime-fp32"][0]["plan"]]
                results[backend] = _run_child(cmd)
            eager_s = statistics.median(results["eager"][0]["times"])
            for backend in backends:
                info, rss = results[backend]
                med = statistics.median(info["times"])
                psnr = "-"
                if backend != "eager":
                    psnr = f"{_psnr(tmp / f'eager-{size}.npy', tmp / f'{backend}-{size}.npy'):.1f}"
                tiles = "-"
                if info.get("tiles") and info["tiles"] != [1, 1]:
                    (r, c), (th, tw) = info["tiles"], info["tile_hw"]
                    tiles = f"{r}x{c} of {tw}x{th} px ({info['compute_ratio']:.2f}x compute)"
                label = f"{size}x{size}" + (f" tiled, {args.max_memory}" if tiled else "")
                work = 2 * macs * size * size * info.get("compute_ratio", 1.0)
                print(
                    f"| {label} | {backend} | {med:.2f} | {work / med / 1e9:.0f} | {rss:.0f} "
                    f"| {eager_s / med:.2f}x | {psnr} "
                    f"| {tiles} |",
                    flush=True,
                )
            for f in tmp.glob(f"*-{size}.npy"):
                f.unlink()
        for size in (int(s) for s in args.whole_process.split(",") if s):
            _whole_process(args, size, tmp)


if __name__ == "__main__":
    main()
