"""Upscaling as a service: an HTTP API and a web page (FastAPI on uvicorn).

from esrgan.serving import ServeSettings, serve
serve(ServeSettings(port=8000, models=("realesrgan-x4plus",)))

`create_app(settings)` gives the ASGI app for any ASGI server; `running_server` runs it in a background
thread. Importing this package does no I/O: models load when the app starts.
"""

from esrgan.serving.app import create_app
from esrgan.serving.errors import ApiError
from esrgan.serving.pool import InferencePool
from esrgan.serving.registry import ModelRegistry
from esrgan.serving.server import RunningServer, bind_socket, running_server, serve
from esrgan.serving.settings import BICUBIC, ServeSettings, is_loopback

__all__ = [
    "BICUBIC",
    "ApiError",
    "InferencePool",
    "ModelRegistry",
    "RunningServer",
    "ServeSettings",
    "bind_socket",
    "create_app",
    "is_loopback",
    "running_server",
    "serve",
]
