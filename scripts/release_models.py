"""Release this project's trained generators into the package (`esrgan-x4-psnr`, `-gan`, `-interp`, and
the real-photo model `esrgan-x4-real` with `--real`).

    .venv/bin/python scripts/release_models.py --run runs/cpu_esrgan_x4 \
        --data-root ../shared/datasets --weights-root ../shared/weights

or, for a GAN stage continued in new run folders after the PSNR model was released,

    .venv/bin/python scripts/release_models.py --run runs/gan_a --run runs/gan_b \
        --psnr-model src/esrgan/weights/release/esrgan-x4-psnr.safetensors --sweep ...

For each release: pick the final raw, final EMA or best-on-validation weights of the run by BSDS500 val
(BSD100) alone (PSNR-Y for the PSNR model, LPIPS for the GAN model; Set5/Set14 never choose anything),
build the alpha-0.8 interpolation, store fp16 tensors when the fp16 model's output stays >= 50 dB PSNR
from the fp32 output (else fp32), measure Set5/Set14 with `esrgan test` and write everything into the
safetensors metadata. Prints the tensor sha256 values to pin in `esrgan.weights.zoo.REGISTRY`. `--sweep`
also measures alpha 0, 0.2, ..., 1 on Set5/Set14 and draws the PSNR-vs-LPIPS curve.

`--real` releases only `esrgan-x4-real` from a run of `configs/cpu_esrgan_x4_real.yaml`: the final raw,
final EMA or best-on-validation generator of its GAN stage (`--real-stage pretrain`: of its L1 stage), by
LPIPS on the whole `bsds100-real` set (the runs validated on 20 crops of it), measured on bsds100-real,
Set5 and Set14.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from esrgan.weights import load_weights, save_state_dict
from esrgan.weights.canonical import state_dict_sha256
from esrgan.weights.generator import interpolate_state_dicts

ESRGAN = [sys.executable, "-m", "esrgan"]
ALPHA = 0.8


def esrgan_test(
    model: Path, datasets: str, args: argparse.Namespace, out: Path, *, lpips: bool = True
) -> dict[str, dict]:
    """Mean metrics per dataset from `esrgan test` (the same command the README shows)."""
    cmd = [
        *ESRGAN, "test", "--model", str(model), "--datasets", datasets,
        "--data-root", str(args.data_root), "--out-dir", str(out), "--figures", "none",
        "--lpips-vgg", str(args.weights_root / "vgg16_imagenet_features.safetensors"),
        "--lpips-heads", str(args.weights_root / "lpips_vgg_v0.1_heads.safetensors"),
        "--no-progress",
    ]  # fmt: skip
    if not lpips:
        cmd.append("--no-lpips")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    results = json.loads((out / "results.json").read_text())
    return {name: d["mean"] for name, d in results["datasets"].items()}


KINDS = {"final": "{stem}", "ema": "{stem}_ema", "best": "{best}"}


def choose(
    runs: list[Path],
    stem: str,
    key: str,
    args: argparse.Namespace,
    work: Path,
    *,
    dataset: str = "bsds100",
    kinds: tuple[str, ...] = tuple(KINDS),
) -> Path:
    """The stage's final raw or EMA weights or its best-on-validation ones (``kinds``), of any of ``runs``,
    whichever scores best on the whole ``dataset`` (BSDS500 val; the runs validated on 20 crops of it).
    A single candidate is taken without measuring (the release measures it)."""
    names = [KINDS[k].format(stem=stem, best=stem.replace("_g", "_best")) for k in kinds]
    found = [run / "weights" / f"{n}.safetensors" for run in runs for n in names]
    found = [p for p in found if p.is_file()]
    if not found:
        raise SystemExit(
            f"{', '.join(map(str, runs))}: no weights/{stem}*.safetensors (has the stage finished?)"
        )
    if len(found) == 1:
        print(f"  {found[0]}: the only candidate")
        return found[0]
    scores = {}
    for path in found:
        run = path.parent.parent
        val = esrgan_test(path, dataset, args, work / f"val_{run.name}_{path.stem}", lpips=key == "lpips")
        scores[path] = val[dataset][key]
        print(f"  {run.name}/{path.name}: {dataset} {key} {scores[path]:.4f}")
    best = max(scores, key=scores.get) if key != "lpips" else min(scores, key=scores.get)  # type: ignore[arg-type]
    return best


def fp16_ok(sd: dict[str, torch.Tensor], arch: torch.nn.Module) -> tuple[bool, float]:
    """Whether fp16 storage keeps the output within 50 dB of fp32 (on a smooth + noisy test pattern)."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.linspace(0, 1, 64)[None, None, :, None] * torch.ones(1, 3, 64, 64)).clamp(0, 1)
    x = (x + 0.1 * torch.rand(1, 3, 64, 64, generator=gen)).clamp(0, 1)
    arch.load_state_dict(sd)
    with torch.no_grad():
        ref = arch(x).clamp(0, 1)
        arch.load_state_dict({k: v.half().float() for k, v in sd.items()})
        out = arch(x).clamp(0, 1)
    mse = float(((ref - out) ** 2).mean())
    db = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-20))).item()
    return db >= 50.0, db


def release(
    name: str,
    sd: dict[str, torch.Tensor],
    config,
    meta: dict[str, str],
    args: argparse.Namespace,
    work: Path,
    *,
    datasets: str = "set5,set14",
) -> dict:
    ok, db = fp16_ok(sd, config.build().eval())
    stored = {k: (v.half() if ok else v.float()) for k, v in sd.items()}
    target = args.out / f"{name}.safetensors"
    meta = {**meta, "esrgan.name": name, "storage": "fp16" if ok else "fp32", "fp16_vs_fp32_db": f"{db:.1f}"}
    save_state_dict(stored, config, target, metadata=meta)
    scores = esrgan_test(target, datasets, args, work / f"test_{name}")
    for ds, m in scores.items():
        for key in ("psnr_y", "ssim_y", "lpips"):
            meta[f"{ds}_{key}"] = f"{m[key]:.4f}"
    save_state_dict(stored, config, target, metadata=meta)  # same tensors, measured numbers added
    digest = state_dict_sha256(load_weights(target).state_dict)
    print(f"{name}: {target} ({target.stat().st_size / 1e6:.1f} MB, {meta['storage']}, {db:.1f} dB) "
          f"tensors_sha256 {digest}")  # fmt: skip
    for ds, m in scores.items():
        print(f"  {ds}: PSNR {m['psnr_y']:.2f} SSIM {m['ssim_y']:.4f} LPIPS {m['lpips']:.3f}")
    return {"path": str(target), "tensors_sha256": digest, "scores": scores}


def sweep(psnr_sd: dict, gan_sd: dict, config, args: argparse.Namespace, work: Path) -> None:
    rows = []
    for i in range(6):
        alpha = round(0.2 * i, 1)
        path = work / f"sweep_{alpha}.safetensors"
        save_state_dict(interpolate_state_dicts(psnr_sd, gan_sd, alpha), config, path)
        scores = esrgan_test(path, "set5,set14", args, work / f"sweep_{alpha}")
        rows.append({"alpha": alpha, **{ds: m for ds, m in scores.items()}})
        print(
            f"alpha {alpha}: "
            + ", ".join(f"{ds} {m['psnr_y']:.2f} dB / {m['lpips']:.3f}" for ds, m in scores.items())
        )
    (args.figures / "interp_sweep.json").write_text(json.dumps(rows, indent=1))
    draw_sweep(rows, args.figures / "interp_sweep.png")


def draw_sweep(rows: list[dict], target: Path) -> None:
    """PSNR-Y against LPIPS per data set, each point labelled with its alpha."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for ds, marker in (("set5", "o"), ("set14", "s")):
        xs = [r[ds]["lpips"] for r in rows]
        ys = [r[ds]["psnr_y"] for r in rows]
        ax.plot(xs, ys, marker=marker, label=ds.capitalize())
        for i, (r, x, y) in enumerate(zip(rows, xs, ys, strict=True)):
            # Neighbouring alphas can sit close together: their labels alternate above and below the line.
            ax.annotate(
                f"{r['alpha']:.1f}",
                (x, y),
                textcoords="offset points",
                xytext=(3, 6 if i % 2 else -12),
                fontsize=8,
            )
    ax.set_xlabel("LPIPS (lower is better)")
    ax.set_ylabel("PSNR-Y, dB (higher is better)")
    ax.set_title("Network interpolation: alpha from 0 (PSNR) to 1 (GAN)")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)
    print(f"sweep: {target}")


def training_data(config_file: Path) -> str:
    """What the run trained and validated on, read from its saved config (not assumed)."""
    import yaml

    cfg = yaml.safe_load(config_file.read_text())
    parts = []
    for stage in ("pretraining", "training"):
        sc = cfg.get(stage, {})
        train, val = "+".join(sc.get("train_datasets", [])), "+".join(sc.get("val_datasets", []))
        parts.append(f"{stage}: train {train}, val {val}")
    real = cfg.get("data", {}).get("degradation") == "realesrgan"
    lr = "Real-ESRGAN second-order degradations" if real else "MATLAB bicubic LR"
    return f"{'; '.join(parts)}; x{cfg.get('scale_factor')} {lr} made on the fly"


def base_metadata(run: Path) -> dict[str, str]:
    config_file = run / "config.yaml"
    return {
        "source": "esrgan train",
        "training_config_sha256": hashlib.sha256(config_file.read_bytes()).hexdigest(),
        "training_data": training_data(config_file),
        "evaluation": "esrgan test, x4, Y channel BT.601, border 4, LR regenerated from HR",
    }


def release_real(args: argparse.Namespace, work: Path) -> dict:
    stem = "gan_g" if args.real_stage == "gan" else "pretrain_g"
    print(f"choosing the real-photo model ({stem}) on bsds100-real")
    kinds = tuple(k.strip() for k in args.real_candidates.split(",") if k.strip())
    if not kinds or not set(kinds) <= set(KINDS):
        raise SystemExit(f"--real-candidates: a comma-separated subset of {', '.join(KINDS)}")
    path = choose(args.run, stem, "lpips", args, work, dataset="bsds100-real", kinds=kinds)
    model = load_weights(path)
    meta = {
        **base_metadata(path.parent.parent),
        "evaluation": "esrgan test, x4; bsds100-real: its degraded LR; Set5/Set14: LR regenerated from HR",
        "train_run": f"{path.parent.parent.name}/{path.name}",
        **{f"train_{k}": v for k, v in model.metadata.items() if k in ("stage", "iteration")},
    }
    return release(
        "esrgan-x4-real", model.state_dict, model.config, meta, args, work, datasets="bsds100-real,set5,set14"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--run", type=Path, action="append",
        help="run folder of `esrgan train` (both stages done); repeat it for runs that continue one another "
        "(a GAN stage resumed in new folders): the GAN model is chosen among all of them",
    )  # fmt: skip
    p.add_argument(
        "--psnr-model", type=Path,
        help="an already released esrgan-x4-psnr file to interpolate with, left as it is (its stage 1 ran "
        "in an earlier run); default: choose and release it from --run",
    )  # fmt: skip
    p.add_argument("--data-root", type=Path, help="folder with BSDS500/, Set5/, Set14/")
    p.add_argument("--weights-root", type=Path, help="folder with the VGG16 and LPIPS files")
    p.add_argument("--out", type=Path, default=Path("src/esrgan/weights/release"))
    p.add_argument("--figures", type=Path, default=Path("docs/images"))
    p.add_argument("--psnr-only", action="store_true", help="release only esrgan-x4-psnr (stage 1 done)")
    p.add_argument("--real", action="store_true", help="release only esrgan-x4-real (see above)")
    p.add_argument("--real-stage", choices=("gan", "pretrain"), default="gan", help="stage --real takes")
    p.add_argument(
        "--real-candidates", default="final,ema,best",
        help="which of the stage's generators --real chooses among (final raw, EMA, best on validation); "
        "each costs a bsds100-real evaluation with LPIPS, one alone is taken as it is",
    )  # fmt: skip
    p.add_argument("--sweep", action="store_true", help="also measure the alpha sweep and draw it")
    p.add_argument(
        "--redraw-sweep", action="store_true",
        help="only draw FIGURES/interp_sweep.png again from the interp_sweep.json a --sweep wrote",
    )  # fmt: skip
    args = p.parse_args()
    if args.redraw_sweep:
        draw_sweep(
            json.loads((args.figures / "interp_sweep.json").read_text()), args.figures / "interp_sweep.png"
        )
        return
    missing = [
        f"--{k.replace('_', '-')}" for k in ("run", "data_root", "weights_root") if not getattr(args, k)
    ]
    if missing:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    if args.psnr_model and args.psnr_only:
        p.error("--psnr-model and --psnr-only exclude each other")
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.real:
            summary["esrgan-x4-real"] = release_real(args, work)
            print(json.dumps(summary, indent=1))
            return
        if args.psnr_model:
            psnr_path = args.psnr_model
            psnr = load_weights(psnr_path)
            print(f"PSNR model: {psnr_path} (kept as it is)")
        else:
            print("choosing the PSNR model on BSDS500 val")
            psnr_path = choose(args.run, "pretrain_g", "psnr_y", args, work)
            psnr = load_weights(psnr_path)
            meta = {
                **base_metadata(psnr_path.parent.parent),
                **{f"train_{k}": v for k, v in psnr.metadata.items() if k in ("stage", "iteration")},
            }
            summary["esrgan-x4-psnr"] = release(
                "esrgan-x4-psnr", psnr.state_dict, psnr.config, meta, args, work
            )
        if not args.psnr_only:
            print("choosing the GAN model on BSDS500 val")
            gan_path = choose(args.run, "gan_g", "lpips", args, work)
            gan = load_weights(gan_path)
            base = base_metadata(gan_path.parent.parent)
            meta = {
                **base,
                "train_run": f"{gan_path.parent.parent.name}/{gan_path.name}",
                **{f"train_{k}": v for k, v in gan.metadata.items() if k in ("stage", "iteration")},
            }
            summary["esrgan-x4-gan"] = release("esrgan-x4-gan", gan.state_dict, gan.config, meta, args, work)
            mixed = interpolate_state_dicts(psnr.state_dict, gan.state_dict, ALPHA)
            meta = {
                **base,
                "interpolation_alpha": str(ALPHA),
                "psnr_from": "esrgan-x4-psnr",
                "gan_from": "esrgan-x4-gan",
            }
            summary["esrgan-x4-interp"] = release("esrgan-x4-interp", mixed, gan.config, meta, args, work)
            if args.sweep:
                sweep(psnr.state_dict, gan.state_dict, gan.config, args, work)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
