"""Running the app under uvicorn: in the foreground (`esrgan serve`) or in a background thread."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import FastAPI

from esrgan.serving.app import ACCESS_LOGGER, create_app
from esrgan.serving.registry import ModelRegistry
from esrgan.serving.settings import ServeSettings

if TYPE_CHECKING:
    import uvicorn


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; binding here turns 'address in use' into an OSError the caller can report."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def configure_logging(level: str = "info") -> None:
    """Access lines (one JSON object each) to stdout; other service messages to stderr."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.propagate = False
    access.setLevel(logging.INFO)
    service = logging.getLogger("esrgan.serving")
    if not service.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(name)s: %(message)s"))
        service.addHandler(handler)
    service.setLevel(level.upper())


def _uvicorn_server(app: FastAPI, log_level: str) -> uvicorn.Server:
    import uvicorn

    config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5
    )
    return uvicorn.Server(config)


def serve(settings: ServeSettings, *, registry: ModelRegistry | None = None, log_level: str = "info") -> None:
    """Load the models, bind, and serve until interrupted.

    Models load before the port is bound, so a bad model or a taken port is an exception here (WeightsError,
    OSError) rather than a log line from a half-started server.
    """
    registry = registry or ModelRegistry.load(settings)
    sock = bind_socket(settings.host, settings.port)
    configure_logging(log_level)
    server = _uvicorn_server(create_app(settings, registry=registry), log_level)
    server.run(sockets=[sock])


@dataclass(frozen=True)
class RunningServer:
    url: str
    """Base URL, e.g. http://127.0.0.1:41234 (no trailing slash)."""
    app: FastAPI


@contextmanager
def running_server(
    settings: ServeSettings,
    *,
    registry: ModelRegistry | None = None,
    log_level: str = "warning",
    start_timeout_s: float = 60.0,
) -> Iterator[RunningServer]:
    """Serve in a background thread (notebooks, tests) on `settings.host:port` (port 0: a free one)."""
    sock = bind_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    app = create_app(settings, registry=registry)
    server = _uvicorn_server(app, log_level)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name="esrgan-serve",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the server on port {port} did not start (see the log above)")
        time.sleep(0.02)
    host = settings.host if ":" not in settings.host else f"[{settings.host.strip('[]')}]"
    try:
        yield RunningServer(url=f"http://{host}:{port}", app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
