"""A bounded inference pool: a fixed number of worker threads and a fixed number of waiting places.

A request takes a `Ticket` before its upload is read; when every worker is busy and every waiting
place is taken there is no ticket, and the request is answered 503 at once instead of piling up, so
memory is bounded by (workers + queue) uploads. A ticket is given back when its job ends, not when
its request gives up, so a timed-out job still counts until its thread is free again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a job (at its next progress check) after its request gave up."""


class Ticket:
    """One admitted request: a place in the pool until `InferencePool.release`."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self.released = False

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Stop the job here if its request gave up (called between tiles)."""
        if self._cancel.is_set():
            raise Cancelled


class InferencePool:
    """`workers` threads plus `queue_size` waiting places; `try_admit` never blocks."""

    def __init__(self, *, workers: int, queue_size: int) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError(f"need workers >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="esrgan-infer")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._peak = 0
        self._mean_job_s = 1.0

    @property
    def admitted(self) -> int:
        """Requests holding a ticket: running, queued, or still uploading."""
        return self._admitted

    @property
    def running(self) -> int:
        return self._running

    @property
    def queue_depth(self) -> int:
        """Admitted requests not running yet."""
        with self._lock:
            return self._admitted - self._running

    @property
    def peak_admitted(self) -> int:
        """Most tickets ever held at once (never above `capacity`)."""
        return self._peak

    def try_admit(self) -> Ticket | None:
        with self._lock:
            if self._admitted >= self.capacity:
                return None
            self._admitted += 1
            self._peak = max(self._peak, self._admitted)
        return Ticket()

    def release(self, ticket: Ticket) -> None:
        with self._lock:
            if not ticket.released:
                ticket.released = True
                self._admitted -= 1

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: the queue ahead of it at the recent pace."""
        with self._lock:
            ahead = self._admitted
            pace = self._mean_job_s
        return max(1, math.ceil(ahead * pace / self.workers))

    def submit(self, ticket: Ticket, fn: Callable[[], T]) -> Future[T]:
        """Run `fn` on a worker; the ticket is released when it ends (or is cancelled before it starts)."""

        def job() -> T:
            with self._lock:
                self._running += 1
            start = time.perf_counter()
            try:
                ticket.check()
                return fn()
            finally:
                seconds = time.perf_counter() - start
                with self._lock:
                    self._running -= 1
                    self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * seconds
                self.release(ticket)

        future = self._executor.submit(job)
        future.add_done_callback(lambda f: self.release(ticket) if f.cancelled() else None)
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
