"""`esrgan train` (two-stage ESRGAN training) and `esrgan plot` (training/validation curves)."""

from __future__ import annotations

from pathlib import Path

import typer

from esrgan.cli._common import fail as _fail


def register(app: typer.Typer) -> None:
    @app.command(
        "train",
        context_settings={"allow_extra_args": False},
        help=(
            "Train an ESRGAN generator: PSNR-oriented pretraining, then the GAN stage, then network "
            "interpolation. CONFIG is a JSON/YAML file (the seed's JSON keys work); extra arguments "
            "override keys, e.g. `training.g_lr=5e-5 batch_size=8`. For several processes/GPUs launch "
            "with `torchrun --nproc_per_node N -m esrgan train ...`."
        ),
    )
    def train_cmd(
        config: str = typer.Argument(
            None, help="Config file (.yaml/.json); optional with --resume (the run's config.yaml is used)."
        ),
        overrides: list[str] = typer.Argument(None, help="key.sub=value overrides.", show_default=False),
        run_dir: Path = typer.Option(None, "--run-dir", help="Run folder (default: runs/<config name>)."),
        resume: bool = typer.Option(
            None,
            "--resume/--no-resume",
            help="Continue the run folder's latest checkpoint / refuse to reuse a folder with checkpoints. "
            "Default: checkpoint.auto_resume.",
            show_default=False,
        ),
        stage: str = typer.Option("both", "--stage", help="pretrain, gan or both."),
        generator: str = typer.Option(
            None, "--generator", help="Starting generator for --stage gan (weights file or zoo name)."
        ),
        stop_after: int = typer.Option(
            None, "--stop-after", help="Stop with a checkpoint after N iterations (resume later)."
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        from esrgan.training import ConfigError, TrainingError, load_config, train
        from esrgan.training.checkpoint import CheckpointError

        extra = list(overrides or [])
        if config is not None and "=" in config and not Path(config).exists():
            extra.insert(0, config)  # `esrgan train --resume --run-dir R key=value`
            config = None
        if config is None:
            if run_dir is None or not resume:
                raise _fail("CONFIG is required (it may be omitted only with --resume --run-dir RUN)")
            config_path = run_dir / "config.yaml"
        else:
            config_path = Path(config)
        if run_dir is None:
            run_dir = Path("runs") / config_path.stem
        if stage not in ("pretrain", "gan", "both"):
            raise _fail(f"--stage: must be pretrain, gan or both, got {stage!r}")
        try:
            cfg = load_config(config_path, extra)
            result = train(
                cfg,
                run_dir=run_dir,
                stage=stage,
                generator=generator,
                resume=resume,
                stop_after=stop_after,
                progress=progress,
            )
        except (ConfigError, TrainingError, CheckpointError) as exc:
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        if not result.completed:
            typer.echo(
                f"stopped at {result.stage} iteration {result.iteration}; continue with "
                f"`esrgan train --run-dir {run_dir} --resume`"
            )
            return
        typer.echo(f"finished: {run_dir}")
        for name, path in sorted(result.weights.items()):
            typer.echo(f"  {name}: {path}")

    @app.command("plot", help="Render a run's training and validation curves (metrics.jsonl) to PNG.")
    def plot_cmd(
        run: Path = typer.Argument(..., help="Run folder (or its metrics.jsonl)."),
        out: Path = typer.Option(None, "--out", "-o", help="Output PNG (default: RUN/curves.png)."),
    ) -> None:
        from esrgan.training.plot import PlotError, plot_run

        try:
            path = plot_run(run, out=out)
        except PlotError as exc:
            raise _fail(str(exc)) from None
        typer.echo(str(path))
