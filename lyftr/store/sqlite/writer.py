"""Writers to one SQLite database take turns here; deliveries that wait together commit together.

SQLite allows one writer per database. Left to itself, a writer that loses the race sleeps in
SQLite's busy handler (steps of 1, 2, 5, 10 ... 100 ms; under gevent blocking the whole worker)
while the lock is free most of that time. So writers queue before ``BEGIN IMMEDIATE``: in their
process on a lock, and between processes (Gunicorn workers, the CLI) on an flock(2) of a file
beside the database, polled every few hundred microseconds. Each starts the moment the previous
one commits. (A writer that does not take the file lock, such as an outside tool, is waited for by
SQLite's busy timeout as before.)

Deliveries of one process that queue while another is being written go together: one caller leads,
takes the turn and writes every pending delivery in one transaction (a group commit: one BEGIN, one
commit and its fsync for all), then wakes the others. They wait on a condition, not on the lock, so
a delivery written by someone else is answered as soon as its commit is done.
"""

import fcntl
import os
import threading
import time
from contextlib import contextmanager

from lyftr.store.sqlite.connections import busy_error

LOCK_SUFFIX = "-writer.lock"
_POLL_MIN_S, _POLL_MAX_S = 0.0001, 0.001


class Delivery:
    """One message waiting for, or done by, a group commit."""

    __slots__ = ("row", "folded", "done", "created", "error")

    def __init__(self, row, folded):
        self.row, self.folded = row, folded
        self.done, self.created, self.error = False, None, None


class WriterQueue:
    """The write turn of one SQLite database file, for this process (kept in ``app.extensions``)."""

    def __init__(self, database_path, busy_timeout_ms):
        self.database_path = database_path
        self.busy_timeout_s = busy_timeout_ms / 1000
        self.lock = threading.Lock()
        self._lock_fd, self._lock_fd_pid = None, None
        self._queue = threading.Condition()
        self.pending = []
        self._leading = False

    def deadline(self):
        return time.monotonic() + self.busy_timeout_s

    @contextmanager
    def turn(self, deadline=None):
        """Hold the write turn, in this process and among processes, or raise a busy error."""
        deadline = deadline or self.deadline()
        if not self.lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
            raise busy_error("writer queue")
        try:
            with self._file_lock(deadline):
                yield
        finally:
            self.lock.release()

    def _lock_file(self):
        """This process's descriptor of the lock file (an flock is per open file: not across a
        fork); None for an in-memory database or a directory that cannot hold the file."""
        if self.database_path is None:
            return None
        # Called with self.lock held: nobody in this process is using the descriptor replaced.
        if self._lock_fd_pid != os.getpid():
            try:
                self._lock_fd = os.open(
                    self.database_path + LOCK_SUFFIX, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
            except OSError:  # a read-only directory: SQLite's busy handler alone queues writers
                self._lock_fd = None
            self._lock_fd_pid = os.getpid()
        return self._lock_fd

    @contextmanager
    def _file_lock(self, deadline):
        fd = self._lock_file()
        if fd is None:
            yield
            return
        delay = _POLL_MIN_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy_error("writer queue") from None
                time.sleep(delay)
                delay = min(delay * 2, _POLL_MAX_S)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def submit(self, delivery, write_batch):
        """Have ``delivery`` written, by this call or by the one leading; return when it is done.

        ``write_batch(deliveries)`` writes deliveries in one transaction and sets each one's
        ``created`` or ``error``; it is called holding the write turn.
        """
        deadline = self.deadline()
        with self._queue:
            self.pending.append(delivery)
            while not delivery.done and self._leading:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and delivery in self.pending:
                    self.pending.remove(delivery)
                    raise busy_error("writer queue")
                # Past the deadline but taken by the leader: its commit decides (bounded too).
                self._queue.wait(remaining if remaining > 0 else None)
            leading = not delivery.done
            if leading:
                self._leading = True
        if leading:
            try:
                self._lead(delivery, deadline, write_batch)
            finally:
                with self._queue:
                    self._leading = False
                    self._queue.notify_all()

    def _lead(self, delivery, deadline, write_batch):
        try:
            with self.turn(deadline):
                # Taken only now: what queued while this waited for the turn goes along.
                with self._queue:
                    batch = self.pending[:]
                    self.pending.clear()
                write_batch(batch)
        except Exception:
            with self._queue:  # the turn was not had: this delivery fails, the others stay queued
                if delivery in self.pending:
                    self.pending.remove(delivery)
            raise
