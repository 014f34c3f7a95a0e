"""`esrgan serve`: the HTTP API and web page (see `esrgan.serving`)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from esrgan.cli._common import fail, parse_tile
from esrgan.weights.zoo import DEFAULT_MODEL

Host = Annotated[str, typer.Option(help="Address to listen on; a non-loopback address needs --api-key-env.")]
Port = Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help=f"Weights file or registered name; repeat to serve several, the first is the default "
        f"(default: {DEFAULT_MODEL}).",
    ),
]
Workers = Annotated[int, typer.Option(min=1, help="Images upscaled at the same time.")]
Queue = Annotated[int, typer.Option(min=0, help="Requests that may wait; beyond them: 503.")]
ApiKeyEnv = Annotated[
    str | None, typer.Option(help="Name of an environment variable holding the API key clients must send.")
]
Timeout = Annotated[float, typer.Option(min=0.001, help="Per-request limit, seconds (then 504).")]
MaxUploadMB = Annotated[float, typer.Option(min=0.001, help="Largest upload in MiB (then 413).")]
MaxPixels = Annotated[int, typer.Option(min=1, help="Largest input in pixels (then 413).")]
MaxOutscale = Annotated[float, typer.Option(min=0.001, help="Largest outscale a request may ask.")]
Device = Annotated[str, typer.Option(help="auto, cpu, cuda[:N] or mps.")]
Precision = Annotated[
    str,
    typer.Option(
        help="Default precision: auto, fp32, bf16, fp16 or int8 (CPU, OpenVINO; quantised at start-up "
        "on first use, then cached)."
    ),
]
Tile = Annotated[str, typer.Option(help="Tile side in input pixels, 'auto' or 0 (whole image).")]
Runtime = Annotated[
    str,
    typer.Option(
        help="auto (ONNX Runtime for fp32 on the CPU, as `esrgan upscale`: same output, faster; exported "
        "once at start-up and cached), torch or onnxruntime."
    ),
]
LogLevel = Annotated[str, typer.Option(help="debug, info, warning or error.")]


def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    model: Models = None,
    workers: Workers = 1,
    queue: Queue = 4,
    api_key_env: ApiKeyEnv = None,
    timeout: Timeout = 300.0,
    max_upload_mb: MaxUploadMB = 20.0,
    max_pixels: MaxPixels = 4_000_000,
    max_outscale: MaxOutscale = 8.0,
    device: Device = "auto",
    precision: Precision = "auto",
    tile: Tile = "auto",
    runtime: Runtime = "auto",
    log_level: LogLevel = "info",
) -> None:
    """Serve upscaling over HTTP: /v1/upscale, /v1/models, /healthz, /metrics, /docs and a web page at /.

    Models are loaded once at start-up. Exit status 2 for bad options, a bad model or a port in use.
    """
    tile_value = parse_tile(tile)
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise fail(f"--api-key-env {api_key_env}: that environment variable is not set or empty")

    from esrgan.inference import DeviceError
    from esrgan.serving import ServeSettings
    from esrgan.serving import serve as run
    from esrgan.weights import WeightsError

    try:
        settings = ServeSettings(
            host=host,
            port=port,
            models=tuple(model or (DEFAULT_MODEL,)),
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
            runtime=runtime,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"loading {', '.join(settings.models)} ...", err=True)
    try:
        run(settings, log_level=log_level)
    except (WeightsError, DeviceError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
