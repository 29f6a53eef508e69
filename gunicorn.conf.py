"""Gunicorn settings for lyftr: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Every value can be overridden on the command line; the environment variables are documented in the
README. Measurements behind the defaults are in docs/performance.md.
"""

import multiprocessing
import os
import resource
import shutil
import tempfile

from gunicorn import glogging

# Metrics: each worker writes its samples to files here and any worker's /metrics sums them. Set
# before any worker imports prometheus_client; a private directory per server unless configured.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
    prefix="lyftr-metrics-"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
os.makedirs(_metrics_dir, exist_ok=True)


def _int_env(name, default):
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


bind = [os.environ.get("BIND", "0.0.0.0:8000")]
# A listener of its own for health probes (e.g. PROBE_BIND=0.0.0.0:8001): each listener has its own
# accept queue and connection pool in every worker, so a probe there is accepted at once however
# many connections flood the main one (Gunicorn accepts one connection per event-loop turn on each
# listener). It answers /health/* only (lyftr.api.limits). Unset: no second listener.
if os.environ.get("PROBE_BIND"):
    bind.append(os.environ["PROBE_BIND"])
# One gevent worker per core: async workers need no more to keep the cores busy (docs/performance.md
# has the measurement against 2 per core: more throughput and half the memory).
workers = _int_env("WEB_CONCURRENCY", multiprocessing.cpu_count())
# gevent: a connection costs a greenlet, not a thread, so clients that trickle their headers
# byte by byte cannot exhaust a pool and starve everyone else (measured: 50 such clients stall a
# gthread server with 2 workers x 32 threads for 5 s; gevent answers others in ~3 ms with 200).
worker_class = "gevent"
# Connections a worker holds at once; when all are taken it stops accepting, and every client,
# a health probe too, waits in the kernel's queue. Each costs a greenlet (measured: 2,000 held
# connections, about 100 MB per worker in all), and each request's body and long poll is bounded
# in time and number (lyftr.api.limits), so slow clients cannot keep them: 5,000 leaves room
# beside 2,000 attackers (docs/performance.md, "Hostile traffic"). The file descriptor limit is
# raised to fit (below).
worker_connections = _int_env("GUNICORN_WORKER_CONNECTIONS", 5000)
# Connections waiting to be accepted (the kernel caps it at net.core.somaxconn). A burst of
# thousands overflows Gunicorn's default 2048, and a dropped SYN is retried only after 1 s.
backlog = _int_env("GUNICORN_BACKLOG", 4096)


def _raise_open_files(wanted):
    """Lift the soft limit on open files to ``wanted`` (within the hard limit): a socket each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# Every worker inherits the master's limit: its connections, the database files, the metrics files.
_raise_open_files(worker_connections + 1024)

# A worker silent for this long is killed and replaced; it must outlast the SQLite busy timeout.
timeout = 30
# SIGTERM: stop accepting, let in-flight requests finish for up to this long.
graceful_timeout = 20
keepalive = 5
# Request line and headers stay bounded (Gunicorn's defaults, stated); the body limit is Flask's.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190

# Nothing to manage at runtime through a socket; an open control socket is only attack surface.
control_socket_disable = True

# Every line is JSON: Gunicorn's own lines go through the app's formatter on the root logger. The
# app writes one line per request itself, so Gunicorn's access log is silenced (a logconfig_dict
# turns it on, and both Gunicorn loggers must be overridden or lines are duplicated).
_level = (os.environ.get("LOG_LEVEL") or "INFO").upper()
if _level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
    _level = "INFO"
loglevel = _level.lower()
accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "lyftr.logs.LineFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
        },
        "discard": {"class": "logging.NullHandler"},
    },
    "root": {"level": _level, "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": _level, "handlers": [], "propagate": True},
        "gunicorn.access": {"level": "CRITICAL", "handlers": ["discard"], "propagate": False},
        # Alembic narrates its setup at INFO as soon as it is imported, in every worker; the
        # migrations that really ran are logged by lyftr.storage ("schema migrated").
        "alembic": {"level": "DEBUG" if _level == "DEBUG" else "WARNING"},
    },
}


class _AppLogsRequests(glogging.Logger):
    """Gunicorn's logger without its access log: the app writes the request line. With a
    logconfig_dict Gunicorn would otherwise still build each access line's fields (about 3% of a
    worker's time under load, py-spy) only for the silenced gunicorn.access logger to drop them."""

    def access(self, resp, req, environ, request_time):
        pass


logger_class = _AppLogsRequests


def on_starting(server):
    """Refuse empty secrets and warn of weak ones, once per server (lyftr.config); start every
    server with empty metrics: files of a previous run would be summed in."""
    from lyftr import config

    if not config.check_at_start(server.cfg.bind):
        raise SystemExit(1)
    for entry in os.listdir(_metrics_dir):
        path = os.path.join(_metrics_dir, entry)
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def post_worker_init(worker):
    """Make the worker ready before it serves (lyftr.ops.warm_up): the schema checked and the
    console's templates compiled, not on its first request."""
    from lyftr.ops.warm_up import warm_up

    warm_up(worker.wsgi)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_request(worker, req, environ, resp):
    """After each response, let the worker's other connections have a turn.

    A gevent greenlet only yields when it would block. A keep-alive client that sends its next
    request at once is read without blocking, so its greenlet could serve it again and again while
    the others wait: a fast median and a slow tail. Yielding here serves connections in turn.
    """
    if worker.__class__.__name__.startswith("Gevent"):
        import gevent

        gevent.sleep(0)
