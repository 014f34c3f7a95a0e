"""Progress of running requests, for the page to poll while it waits (`GET /v1/progress/{id}`)."""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass

REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
"""Client-chosen request ids: long enough not to collide, short and plain enough to be a URL segment."""


@dataclass
class Progress:
    stage: str = "queued"
    """queued, decoding, upscaling, encoding, done or failed."""
    tiles_done: int = 0
    tiles_total: int = 0
    expected_s: float | None = None
    """Estimated seconds of the upscaling stage (from the model's recent speed), when known."""
    started: float = 0.0
    stage_started: float = 0.0
    finished: float | None = None

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        end = self.finished if self.finished is not None else time.monotonic()
        out["elapsed_s"] = round(end - self.started, 3)
        out["stage_elapsed_s"] = round(end - self.stage_started, 3)
        if self.expected_s is not None:
            out["expected_s"] = round(self.expected_s, 3)
        del out["started"], out["stage_started"], out["finished"]
        return out


class ProgressBoard:
    """A bounded, thread-safe map of request id -> `Progress`; finished entries expire after `keep_s`."""

    def __init__(self, *, max_entries: int = 1024, keep_s: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, Progress] = OrderedDict()
        self._max = max_entries
        self._keep_s = keep_s

    def start(self, request_id: str) -> None:
        with self._lock:
            self._expire()
            now = time.monotonic()
            self._entries[request_id] = Progress(started=now, stage_started=now)
            self._entries.move_to_end(request_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def update(self, request_id: str | None, **changes: object) -> None:
        if request_id is None:
            return
        with self._lock:
            entry = self._entries.get(request_id)
            if entry is None:
                return
            if "stage" in changes and changes["stage"] != entry.stage:
                entry.stage_started = time.monotonic()
            for key, value in changes.items():
                setattr(entry, key, value)
            if changes.get("stage") in ("done", "failed"):
                entry.finished = time.monotonic()

    def get(self, request_id: str) -> dict[str, object] | None:
        with self._lock:
            self._expire()
            entry = self._entries.get(request_id)
            return None if entry is None else entry.to_dict()

    def _expire(self) -> None:
        now = time.monotonic()
        old = [
            k for k, v in self._entries.items() if v.finished is not None and now - v.finished > self._keep_s
        ]
        for key in old:
            del self._entries[key]
