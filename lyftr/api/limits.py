"""Limits on what one connection can hold in a worker, so that slow or hostile clients cannot
take a worker's capacity from everyone else (docs/operations.md, "Limits under hostile traffic").

- ``BoundedBodies`` (WSGI middleware): a request body is read within BODY_TIMEOUT_S of its first
  byte being asked for, or the request is answered 408; at most BODY_READERS bodies are being read
  at once, and of them at most LARGE_BODY_READERS larger than MAX_BODY_BYTES (or of unknown
  length); a request that finds no free turn within BODY_SLOT_WAIT_S is answered 503 with
  Retry-After. A body that is already in the socket buffer is read at once and holds its turn for
  microseconds; only trickling bodies keep theirs, and not for long.
- ``Waiters``: a count of the requests allowed to wait at once (``/feed?wait=``); the others are
  answered at once.

Under gevent a read that blocks is cut off at the deadline (``gevent.Timeout``); without it (the
Flask test client, whose body is in memory) the deadline is checked after each read.
"""

import threading
import time
from contextlib import contextmanager

from werkzeug.exceptions import RequestTimeout, ServiceUnavailable

from lyftr.store.sqlite.offload import gevent_patched

RETRY_AFTER_S = 1


def _declared_length(environ):
    """The body's length: an int, None when unknown (chunked), 0 when there is none."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return None
    return max(length, 0)


class BoundedBodies:
    """Wraps a WSGI app: every request body is read under the limits above."""

    def __init__(self, app, *, timeout_s, readers, large_readers, large_over, slot_wait_s):
        self.app = app
        self.timeout_s = timeout_s
        self.large_over = large_over
        self.slot_wait_s = slot_wait_s
        # Semaphores, cooperative once gevent has patched threading (the app is built in the
        # worker, after the patching).
        self.readers = threading.BoundedSemaphore(readers)
        self.large_readers = threading.BoundedSemaphore(large_readers)
        self.cooperative = gevent_patched()

    def __call__(self, environ, start_response):
        length = _declared_length(environ)
        if length == 0:
            return self.app(environ, start_response)
        body = DeadlineInput(environ["wsgi.input"], self, length)
        environ["wsgi.input"] = body
        try:
            return self.app(environ, start_response)
        finally:
            body.release()


class DeadlineInput:
    """``wsgi.input`` read under a turn and a deadline (see the module's docstring)."""

    def __init__(self, stream, limits, length):
        self._stream = stream
        self._limits = limits
        self._remaining = length  # None: unknown (chunked)
        self._held = []
        self._deadline = None
        self._done = False  # the whole body has been read: later reads go straight through
        self._refused = False  # answered 408 or 503: nothing more is read from this client

    # The WSGI input interface werkzeug uses.
    def read(self, size=-1):
        return self._guarded(self._stream.read, size)

    def readline(self, size=-1):
        return self._guarded(self._stream.readline, size)

    def __iter__(self):
        while line := self.readline():
            yield line

    def _guarded(self, read, size):
        if self._refused:
            return b""
        if self._done:
            return read(size)
        if self._deadline is None:
            self._take_turn()
        with self._cut_off():
            data = read(size)
        if time.monotonic() > self._deadline:
            raise self._too_slow()
        if self._remaining is not None:
            self._remaining -= len(data)
        if not data or self._remaining == 0:  # the whole body is in: the turn goes to another
            self.release()
            self._done = True
        return data

    def _take_turn(self):
        limits = self._limits
        large = self._remaining is None or self._remaining > limits.large_over
        wanted = [limits.large_readers, limits.readers] if large else [limits.readers]
        started = time.monotonic()
        for semaphore in wanted:
            left = max(limits.slot_wait_s - (time.monotonic() - started), 0)
            if not semaphore.acquire(timeout=left):
                self.release()
                self._refused = True
                raise ServiceUnavailable(
                    "too many request bodies being read at once; retry shortly",
                    retry_after=RETRY_AFTER_S,
                )
            self._held.append(semaphore)
        self._deadline = time.monotonic() + limits.timeout_s

    @contextmanager
    def _cut_off(self):
        if not self._limits.cooperative:
            yield
            return
        import gevent

        timeout = gevent.Timeout(max(self._deadline - time.monotonic(), 0))
        timeout.start()
        try:
            yield
        except gevent.Timeout as exc:
            if exc is not timeout:
                raise
            raise self._too_slow() from None
        finally:
            timeout.close()

    def _too_slow(self):
        self.release()
        self._refused = True
        return RequestTimeout(
            f"request body not received within {self._limits.timeout_s:g} s",
        )

    def release(self):
        while self._held:
            self._held.pop().release()


class Waiters:
    """At most ``size`` holders at once; ``slot()`` yields False when all are taken."""

    def __init__(self, size):
        self._free = threading.BoundedSemaphore(size)

    @contextmanager
    def slot(self):
        got = self._free.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                self._free.release()
