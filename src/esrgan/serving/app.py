"""`create_app`: the FastAPI application (API, metrics, web page) around a `Service`."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import esrgan
from esrgan.inference.precision import INFERENCE_PRECISIONS
from esrgan.serving.errors import STATUS_CODES, ApiError, ErrorBody
from esrgan.serving.imaging import SUPPORTED_INPUTS
from esrgan.serving.pool import Cancelled, InferencePool
from esrgan.serving.registry import ModelRegistry
from esrgan.serving.service import OPTION_NAMES, Service, UpscaleResult, safe_filename
from esrgan.serving.settings import OUTPUT_FORMATS, ServeSettings
from esrgan.serving.uploads import read_upload

STATIC_DIR = Path(__file__).parent / "static"
ACCESS_LOGGER = "esrgan.serving.access"
log = logging.getLogger("esrgan.serving")

_ROUTES = ("/", "/healthz", "/metrics", "/docs", "/openapi.json", "/v1/upscale", "/v1/models")
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _route(path: str) -> str:
    """A low-cardinality label for metrics and logs."""
    if path in _ROUTES:
        return path
    if path.startswith("/v1/progress/"):
        return "/v1/progress/{id}"
    if path.startswith("/static/"):
        return "/static"
    return "other"


class AccessLog:
    """ASGI middleware: one JSON log line and one metrics sample per request, plus safety headers."""

    def __init__(self, app: ASGIApp, *, service: Service) -> None:
        self.app = app
        self.service = service
        self.logger = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        sizes = {"in": 0, "out": 0}

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                sizes["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"content-security-policy", _CSP.encode()))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                sizes["out"] += len(message.get("body", b""))
            await send(message)

        scope.setdefault("state", {})
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            seconds = time.perf_counter() - start
            route = _route(scope["path"])
            self.service.metrics.observe_request(method=scope["method"], route=route, status=status)
            client = scope.get("client")
            line: dict[str, Any] = {
                "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                "event": "request",
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "ms": round(seconds * 1e3, 1),
                "bytes_in": sizes["in"],
                "bytes_out": sizes["out"],
                "client": client[0] if client else None,
            }
            line.update(scope["state"].get("log", {}))
            self.logger.info(json.dumps(line, separators=(",", ":")))


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(ApiError(status, message).body(), status_code=status, headers=headers)


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": code.replace("_", " ")}
    for status, code in STATUS_CODES.items()
    if status in (400, 401, 413, 415, 503, 504)
}

_UPSCALE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": f"The image: {SUPPORTED_INPUTS}.",
                    },
                    "model": {
                        "type": "string",
                        "description": "A name from GET /v1/models (default: the first).",
                    },
                    "outscale": {
                        "type": "number",
                        "description": "Final size / input size, any value (default: the model's scale).",
                    },
                    "precision": {"type": "string", "enum": list(INFERENCE_PRECISIONS)},
                    "format": {"type": "string", "enum": list(OUTPUT_FORMATS), "default": "png"},
                    "quality": {"type": "integer", "minimum": 1, "maximum": 100, "default": 95},
                    "request_id": {
                        "type": "string",
                        "description": "8-64 of [A-Za-z0-9_-]: follow the request at GET /v1/progress/{id}.",
                    },
                },
            }
        },
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def create_app(settings: ServeSettings, *, registry: ModelRegistry | None = None) -> FastAPI:
    """The service as an ASGI app. Models load at start-up unless a loaded `registry` is passed in."""
    service = Service(settings=settings, registry=registry)
    pool = InferencePool(workers=settings.workers, queue_size=settings.queue_size)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service.registry is None:
            service.registry = await asyncio.to_thread(ModelRegistry.load, settings)
        try:
            yield
        finally:
            pool.shutdown()

    app = FastAPI(
        title="esrgan",
        version=esrgan.__version__,
        description="Image super-resolution with ESRGAN-family models.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.state.pool = pool
    app.add_middleware(AccessLog, service=service)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error_response(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error_response(500, "internal error (the server log has the details)")

    def require_key(request: Request) -> None:
        key = settings.api_key
        if key is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), key.encode()):
            raise ApiError(
                401, "a valid API key is required (X-API-Key header)", headers={"WWW-Authenticate": "Bearer"}
            )

    keyed = [Depends(require_key)]

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", summary="Liveness and readiness")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": esrgan.__version__,
            "models": list(service.models.names),
            "workers": pool.workers,
            "queue_capacity": pool.capacity - pool.workers,
            "queue_depth": pool.queue_depth,
            "running": pool.running,
            "api_key_required": settings.api_key is not None,
        }

    @app.get("/v1/models", summary="Served models", dependencies=keyed)
    async def models() -> dict[str, Any]:
        return {
            "default": service.models.default,
            "models": [info.to_dict() for info in service.models.describe()],
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "max_input_pixels": settings.max_input_pixels,
                "max_output_pixels": settings.max_output_pixels,
                "max_outscale": settings.max_outscale,
                "formats": list(OUTPUT_FORMATS),
            },
        }

    @app.get(
        "/v1/progress/{request_id}",
        summary="Progress of an upscale sent with request_id",
        dependencies=keyed,
        responses={404: {"model": ErrorBody}},
    )
    async def progress(request_id: str) -> dict[str, object]:
        entry = service.progress.get(request_id)
        if entry is None:
            raise ApiError(404, f"no request {request_id!r} in progress or recently finished")
        return entry

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse, dependencies=keyed)
    async def metrics() -> PlainTextResponse:
        text = service.metrics.render(
            {
                "esrgan_queue_depth": ("Admitted requests waiting for a worker.", lambda: pool.queue_depth),
                "esrgan_inference_running": ("Requests being upscaled now.", lambda: pool.running),
                "esrgan_queue_capacity": (
                    "Waiting places (beyond them: 503).",
                    lambda: pool.capacity - pool.workers,
                ),
                "esrgan_workers": ("Inference worker threads.", lambda: pool.workers),
            }
        )
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.post(
        "/v1/upscale",
        summary="Upscale one image",
        description=(
            "Multipart form with the image in `file` (or the raw image as the body, options in the query). "
            "Answers the image, with `Server-Timing` and `X-*` headers. Options: "
            + ", ".join(OPTION_NAMES)
            + "."
        ),
        dependencies=keyed,
        openapi_extra={"requestBody": _UPSCALE_BODY},
        responses={
            200: {
                "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
                "description": "The upscaled image.",
            },
            **_ERRORS,
        },
        response_class=Response,
    )
    async def upscale(request: Request) -> Response:
        start = time.perf_counter()
        ticket = pool.try_admit()
        if ticket is None:
            waiting = pool.capacity - pool.workers
            raise ApiError(
                503,
                f"all {pool.workers} workers and {waiting} queue places are taken; retry later",
                headers={"Retry-After": str(pool.retry_after_s())},
            )
        submitted = False
        request_id: str | None = None
        stamps: dict[str, float] = {}
        log_fields: dict[str, Any] = request.scope["state"].setdefault("log", {})

        async def handle() -> tuple[UpscaleResult, str]:
            nonlocal submitted, request_id
            upload = await read_upload(
                request.stream(),
                content_type=request.headers.get("content-type"),
                content_length=request.headers.get("content-length"),
                max_bytes=settings.max_upload_bytes,
            )
            stamps["upload"] = time.perf_counter()
            options = service.parse_options(upload.fields, request.query_params)
            log_fields.update(model=options.model, outscale=options.outscale)
            info = service.inspect(upload.data, options)
            log_fields["input"] = f"{info.width}x{info.height}"
            request_id = options.request_id
            if request_id is not None:
                service.progress.start(request_id)

            def job() -> tuple[UpscaleResult, float]:
                began = time.perf_counter()
                return service.process(upload.data, options, ticket), began

            future = pool.submit(ticket, job)
            submitted = True
            result, stamps["queue"] = await asyncio.wrap_future(future)
            name = safe_filename(upload.filename, suffix=f"_x{options.outscale:g}", ext=result.extension)
            return result, name

        try:
            remaining = settings.request_timeout_s - (time.perf_counter() - start)
            result, filename = await asyncio.wait_for(handle(), timeout=remaining)
        except (asyncio.TimeoutError, Cancelled):
            ticket.cancel()
            service.progress.update(request_id, stage="failed")
            raise ApiError(
                504, f"the request took longer than the limit of {settings.request_timeout_s:g} s"
            ) from None
        except ClientDisconnect:
            raise ApiError(400, "the client closed the connection during the upload") from None
        except ApiError:
            service.progress.update(request_id, stage="failed")
            raise
        except Exception:
            service.progress.update(request_id, stage="failed")
            log.exception("upscale failed")
            raise ApiError(500, "internal error while upscaling (the server log has the details)") from None
        finally:
            if not submitted:
                pool.release(ticket)
        total = time.perf_counter() - start
        upload_ms = (stamps["upload"] - start) * 1e3
        queue_ms = (stamps["queue"] - stamps["upload"]) * 1e3
        timings = {"upload": upload_ms, "queue": queue_ms, **result.timings_ms, "total": total * 1e3}
        log_fields.update(
            output="{}x{}".format(*result.output_size), **{f"{k}_ms": round(v, 1) for k, v in timings.items()}
        )
        return Response(
            content=result.data,
            media_type=result.content_type,
            headers={
                "Server-Timing": ", ".join(f"{k};dur={v:.1f}" for k, v in timings.items()),
                "X-Process-Time-Ms": f"{total * 1e3:.1f}",
                "X-Model": result.model,
                "X-Input-Size": "{}x{}".format(*result.input_size),
                "X-Output-Size": "{}x{}".format(*result.output_size),
                "Content-Disposition": f'inline; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    return app
