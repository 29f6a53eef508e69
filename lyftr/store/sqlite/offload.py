"""Heavy SQLite reads on threads off the gevent hub, so they do not freeze a worker.

SQLite's C code never yields to gevent: a search that runs for a second on the hub's thread stops
every other connection of that worker (webhook deliveries included) for that second. The sqlite3
module releases the GIL while SQLite works, so the same read on a native thread lets the hub go on
serving. Under the Flask test client or a CLI command (no gevent patching) reads run where they
are called. Measurements: docs/performance.md ("Heavy reads beside deliveries").
"""

import os
import sys


def gevent_patched():
    """True in a Gunicorn gevent worker (threading patched): a blocking C call blocks the hub."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class ReadThreads:
    """Up to ``size`` native threads of one process (0: none, every read on the caller's thread).

    A sqlite3 connection is used by one thread at a time: each read takes its own connection from
    the ``ConnectionCache`` (a list pop, atomic) on the thread that runs it and gives it back.
    """

    def __init__(self, size, *, enabled=gevent_patched):
        self.size = size
        self._enabled = enabled
        self._pool = None
        self._pid = None

    def run(self, function, *args, **kwargs):
        """``function(*args, **kwargs)``, on a pool thread when under gevent; its result or its
        exception, in the calling greenlet (which waits without blocking the hub)."""
        if self.size <= 0 or not self._enabled():
            return function(*args, **kwargs)
        return self._threads().apply(function, args, kwargs)

    def _threads(self):
        if self._pid != os.getpid():  # a fork (a Gunicorn worker): the parent's threads are gone
            from gevent.threadpool import ThreadPool

            self._pool, self._pid = ThreadPool(self.size), os.getpid()
        return self._pool
