"""Limits on what one connection can hold in a worker, so that slow or hostile clients cannot
take a worker's capacity from everyone else (docs/operations.md, "Limits under hostile traffic").

- ``BoundedBodies`` (WSGI middleware): a request with a body first takes a turn: at most
  BODY_READERS requests per worker are reading their bodies at once, and of them at most
  LARGE_BODY_READERS bodies larger than MAX_BODY_BYTES (or of unknown length). A request that
  finds no free turn within BODY_SLOT_WAIT_S is answered 503 with Retry-After by the middleware
  itself, before Flask: thousands of such refusals in a burst must cost little, or the requests
  queued behind them (a health probe) wait. With its turn, the body must be read whole within
  BODY_TIMEOUT_S, or the request is answered 408. A body already in the socket buffer is read at
  once and gives its turn back within microseconds; only trickling bodies keep theirs, not long.
- The health-probe listener (PROBE_BIND, a port of its own) answers /health/* only: it is there so
  that probes are never queued behind other clients, and it must not become a way around that.
- ``Waiters``: a count of the requests allowed to wait at once (``/feed?wait=``); the others are
  answered at once.

Under gevent a read that blocks is cut off at the deadline (``gevent.Timeout``); without it (the
Flask test client, whose body is in memory) the deadline is checked after each read.
"""

import json
import logging
import threading
import time
import uuid
from contextlib import contextmanager

from werkzeug.exceptions import HTTPException, RequestTimeout

from lyftr import metrics
from lyftr.store.sqlite.offload import gevent_patched

RETRY_AFTER_S = 1
BUSY = "too many request bodies being read at once; retry shortly"
_BUSY_BODY = json.dumps({"detail": BUSY}).encode()
_PROBES_ONLY = json.dumps({"detail": "this port serves /health/* only"}).encode()
logger = logging.getLogger("lyftr.request")


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

    def __init__(
        self,
        app,
        *,
        timeout_s,
        readers,
        large_readers,
        large_over,
        slot_wait_s,
        url_map,
        probe_port=None,
    ):
        self.app = app
        self.timeout_s = timeout_s
        self.large_over = large_over
        self.slot_wait_s = slot_wait_s
        self.url_map = url_map  # a refused request's route, for its metrics
        self.probe_port = probe_port  # PROBE_PORT: that listener answers /health/* only
        # Semaphores, cooperative once gevent has patched threading (the app is built in the
        # worker, after the patching).
        self.readers = threading.BoundedSemaphore(readers)
        self.large_readers = threading.BoundedSemaphore(large_readers)
        self.cooperative = gevent_patched()

    def __call__(self, environ, start_response):
        probe = self.probe_port is not None and environ.get("SERVER_PORT") == self.probe_port
        if probe and not environ.get("PATH_INFO", "").startswith("/health/"):
            _close_after(start_response)
            return _answer(start_response, "404 NOT FOUND", _PROBES_ONLY, [])
        length = _declared_length(environ)
        if length == 0:
            return self.app(environ, start_response)
        started = time.perf_counter()
        body = DeadlineInput(environ["wsgi.input"], self, length)
        if not body.take_turn():
            _close_after(start_response)
            return self._refuse(environ, start_response, started)
        environ["wsgi.input"] = body
        try:
            return self.app(environ, start_response)
        finally:
            body.release()
            if body.refused:  # too slow: 408
                _close_after(start_response)

    def _refuse(self, environ, start_response, started):
        """503 without the app: its own log line (as request_log writes one) and metrics."""
        request_id = uuid.uuid4().hex
        headers = [("Retry-After", str(RETRY_AFTER_S)), ("X-Request-ID", request_id)]
        _answer(start_response, "503 SERVICE UNAVAILABLE", _BUSY_BODY, headers)
        latency_ms = (time.perf_counter() - started) * 1000
        method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
        metrics.observe(method, self._route(environ), 503, latency_ms)
        extra = {"request_id": request_id, "method": method, "path": path, "status": 503}
        extra.update(latency_ms=round(latency_ms, 3), result="body_busy")
        logger.error("request", extra=extra)
        return [_BUSY_BODY]

    def _route(self, environ):
        try:
            rule, _ = self.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:
            return None
        return rule.rule


def _answer(start_response, status, body, headers):
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            ("Cache-Control", "no-store"),
            *headers,
        ],
    )
    return [body]


def _close_after(start_response):
    """Close the connection once this response is sent. A refused body would otherwise be read
    and discarded by Gunicorn before the connection's next request, for as long as the client goes
    on sending: the very cost the limit refused. (A body the app leaves unread for its own reasons,
    a 413, is still drained, so that an honest client reads its answer.) Gunicorn's
    ``start_response`` is a method of its response, which can be told to close; other servers'
    are left as they are."""
    response = getattr(start_response, "__self__", None)
    force_close = getattr(response, "force_close", None)
    if callable(force_close):
        force_close()


class DeadlineInput:
    """``wsgi.input`` read under a turn and a deadline (see the module's docstring)."""

    def __init__(self, stream, limits, length):
        self._stream = stream
        self._limits = limits
        self._remaining = length  # None: unknown (chunked)
        self._held = []
        self._deadline = None
        self.done = False  # the whole body has been read: later reads go straight through
        self.refused = False  # answered 408: nothing more is read from this client

    # The WSGI input interface werkzeug uses.
    def read(self, size=-1):
        return self._guarded(self._stream.read, size)

    def readline(self, size=-1):
        return self._guarded(self._stream.readline, size)

    def __iter__(self):
        while line := self.readline():
            yield line

    def _guarded(self, read, size):
        if self.refused:
            return b""
        if self.done:
            return read(size)
        with self._cut_off():
            data = read(size)
        if time.monotonic() > self._deadline:
            raise self._too_slow()
        if self._remaining is not None:
            self._remaining -= len(data)
        if not data or self._remaining == 0:  # the whole body is in: the turn goes to another
            self.release()
            self.done = True
        elif self._limits.cooperative:
            # A body arriving as fast as it is read never blocks, so its greenlet would read all
            # of it (4 MiB: tens of ms) before any other connection of the worker had a turn.
            import gevent

            gevent.sleep(0)
        return data

    def take_turn(self):
        """Wait up to BODY_SLOT_WAIT_S for a turn to read this body; False if none came."""
        limits = self._limits
        large = self._remaining is None or self._remaining > limits.large_over
        wanted = [limits.large_readers, limits.readers] if large else [limits.readers]
        started = time.monotonic()
        for semaphore in wanted:
            left = max(limits.slot_wait_s - (time.monotonic() - started), 0)
            if not semaphore.acquire(timeout=left):
                self.release()
                return False
            self._held.append(semaphore)
        self._deadline = time.monotonic() + limits.timeout_s
        return True

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
        self.refused = True
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
