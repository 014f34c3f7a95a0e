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
        from esrgan.training import ConfigError, TrainingError, load_run_config, train

        try:
            cfg, run_dir = load_run_config(config, overrides or [], run_dir=run_dir, resume=resume)
            result = train(
                cfg, run_dir=run_dir, stage=stage, generator=generator, resume=resume, stop_after=stop_after,
                progress=progress,
            )  # fmt: skip
        except (ConfigError, TrainingError) as exc:  # CheckpointError is a TrainingError
            raise _fail(str(exc)) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None
        typer.echo(result.summary())

    @app.command(
        "plot",
        help="Render a run's training and validation curves (metrics.jsonl) to PNG. Several runs that "
        "continue one another (each resumed from a checkpoint of the one before) draw as one chain: from "
        "its first iteration of a stage, a later run replaces the earlier ones.",
    )
    def plot_cmd(
        runs: list[Path] = typer.Argument(..., help="Run folder(s) (or metrics.jsonl), oldest first."),
        out: Path = typer.Option(None, "--out", "-o", help="Output PNG (default: LAST_RUN/curves.png)."),
    ) -> None:
        from esrgan.training.plot import PlotError, plot_runs

        try:
            path = plot_runs(runs, out=out)
        except PlotError as exc:
            raise _fail(str(exc)) from None
        typer.echo(str(path))
