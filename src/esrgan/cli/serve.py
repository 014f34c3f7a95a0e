"""`esrgan serve`: the HTTP API and web page (see `esrgan.serving`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from esrgan.cli._common import parse_tile

DEFAULT_MODEL_NAME = "realesrgan-x4plus"  # esrgan.weights.DEFAULT_MODEL, without importing torch for --help


def _fatal(message: str) -> typer.Exit:
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(2)


def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; a non-loopback address needs --api-key-env.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8000,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help=f"Weights file or registered name; repeat to serve several, the first is the default "
            f"(default: {DEFAULT_MODEL_NAME}).",
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Images upscaled at the same time.")] = 1,
    queue: Annotated[int, typer.Option(min=0, help="Requests that may wait; beyond them: 503.")] = 4,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Name of an environment variable holding the API key clients must send."),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.001, help="Per-request limit, seconds (then 504).")] = 300.0,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload in MiB (then 413).")] = 20.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest input in pixels (then 413).")] = 4_000_000,
    max_outscale: Annotated[float, typer.Option(min=0.001, help="Largest outscale a request may ask.")] = 8.0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda[:N] or mps.")] = "auto",
    precision: Annotated[str, typer.Option(help="Default precision: auto, fp32, bf16 or fp16.")] = "auto",
    tile: Annotated[str, typer.Option(help="Tile side in input pixels, 'auto' or 0 (whole image).")] = "auto",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve upscaling over HTTP: /v1/upscale, /v1/models, /healthz, /metrics, /docs and a web page at /.

    Models are loaded once at start-up. Exit status 2 for bad options, a bad model or a port in use.
    """
    tile_value = parse_tile(tile)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise _fatal(f"--api-key-env {api_key_env}: that environment variable is not set or empty")

    from esrgan.inference import DeviceError
    from esrgan.serving import ServeSettings
    from esrgan.serving import serve as run
    from esrgan.weights import WeightsError

    try:
        settings = ServeSettings(
            host=host,
            port=port,
            models=tuple(model or (DEFAULT_MODEL_NAME,)),
            workers=workers,
            queue_size=queue,
            request_timeout_s=timeout,
            max_upload_bytes=max(1, round(max_upload_mb * 2**20)),
            max_input_pixels=max_pixels,
            max_outscale=max_outscale,
            api_key=api_key,
            device=device,
            precision=precision,
            tile=tile_value,
        )
    except ValueError as exc:
        raise _fatal(str(exc)) from None
    typer.echo(f"loading {', '.join(settings.models)} ...", err=True)
    try:
        run(settings, log_level=log_level)
    except (WeightsError, DeviceError) as exc:
        raise _fatal(str(exc)) from None
    except OSError as exc:
        raise _fatal(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
