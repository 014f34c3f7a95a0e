"""Errors the API answers with: a status, a short code and a one-line message, always as JSON."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "busy",
    504: "timeout",
}


class ErrorBody(BaseModel):
    """JSON body of every error answer."""

    status: int
    error: str
    message: str


class ApiError(Exception):
    """An answer other than success; raised anywhere in request handling and rendered as `ErrorBody`."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = " ".join(message.split())
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.code}: {self.message}")

    def body(self) -> dict[str, object]:
        return {"status": self.status, "error": self.code, "message": self.message}
