"""Reading a request body into memory under a byte limit: nothing is written to disk.

Starlette's form parser spools file parts over 1 MiB to temporary files; this streams the body
through python-multipart's low-level parser instead and stops with 413 as soon as the limit is passed.
A body that is not multipart is taken as the image itself (`curl --data-binary @in.png`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from esrgan.serving.errors import ApiError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks  # defined for type checkers only

FILE_FIELD = "file"
MAX_FIELDS = 32
MAX_FIELD_BYTES = 1024
FORM_OVERHEAD = 64 * 1024
"""Bytes allowed besides the file part: boundaries, part headers and option fields."""


@dataclass
class Upload:
    """A parsed request body: the image bytes, its client-side name and the text fields."""

    data: bytes = b""
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


class _Collector:
    """python-multipart callbacks that keep one file part and small text fields in memory."""

    def __init__(self, max_file_bytes: int) -> None:
        self.max_file_bytes = max_file_bytes
        self.upload = Upload()
        self.files = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, str] = {}
        self._name: str | None = None
        self._is_file = False
        self._buf = bytearray()
        self.complete = False

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._header_name.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._header_value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _end(self) -> None:
        self.complete = True

    def _part_begin(self) -> None:
        self._headers = {}
        self._buf = bytearray()
        self._name = None
        self._is_file = False

    def _header_end(self) -> None:
        self._headers[self._header_name.decode("latin-1").lower()] = self._header_value.decode("latin-1")
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        name = params.get(b"name")
        if name is None:
            raise ApiError(400, "a multipart part has no name")
        self._name = name.decode("utf-8", "replace")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            self.files += 1
            if self.files > 1:
                raise ApiError(400, f"send one image per request (got several {FILE_FIELD!r} parts)")
            filename = params.get(b"filename")
            self.upload.filename = filename.decode("utf-8", "replace") if filename else None
        elif len(self.upload.fields) >= MAX_FIELDS:
            raise ApiError(400, f"too many form fields (at most {MAX_FIELDS})")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._buf.extend(data[start:end])
        if self._is_file and len(self._buf) > self.max_file_bytes:
            raise ApiError(413, f"upload is larger than the limit of {_size(self.max_file_bytes)}")
        if not self._is_file and len(self._buf) > MAX_FIELD_BYTES:
            raise ApiError(400, f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if self._is_file:
            self.upload.data = bytes(self._buf)
        elif self._name is not None:
            self.upload.fields[self._name] = self._buf.decode("utf-8", "replace")
        self._buf = bytearray()


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


async def read_upload(
    chunks: AsyncIterator[bytes], *, content_type: str | None, content_length: str | None, max_bytes: int
) -> Upload:
    """Read the body into an `Upload`; 413 past `max_bytes` of image, 400 for a malformed form."""
    media, params = parse_options_header(content_type or "")
    multipart = media == b"multipart/form-data"
    limit = max_bytes + (FORM_OVERHEAD if multipart else 0)
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(400, "bad Content-Length header") from None
        if declared > limit:
            raise ApiError(413, f"upload is larger than the limit of {_size(max_bytes)}")
    if multipart:
        boundary = params.get(b"boundary")
        if not boundary:
            raise ApiError(400, "multipart body without a boundary")
        collector = _Collector(max_bytes)
        try:
            parser = MultipartParser(boundary, collector.callbacks())
        except ValueError as e:
            raise ApiError(400, f"bad multipart boundary ({e})") from None
    received = 0
    raw = bytearray()
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise ApiError(413, f"upload is larger than the limit of {_size(max_bytes)}")
            if multipart:
                parser.write(chunk)
            else:
                raw.extend(chunk)
        if multipart:
            parser.finalize()
    except MultipartParseError as e:
        raise ApiError(400, f"malformed multipart body ({e})") from None
    if not multipart:
        return Upload(data=bytes(raw))
    if not collector.complete:
        raise ApiError(400, "incomplete multipart body (no closing boundary)")
    if collector.files == 0:
        raise ApiError(
            400, f"no {FILE_FIELD!r} part in the form: send the image as -F {FILE_FIELD}=@image.png"
        )
    return collector.upload
