"""End-to-end helpers: the real Gunicorn server on a free port, and plain standard-library HTTP.

Kept out of ``conftest.py`` so test modules can import it (``from .server import ...``): tests/e2e
is a package, so nothing here or in its conftest shadows the unit tests' ``conftest`` module.
"""

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from lyftr.providers.signing import sign

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
LIVE_TIMEOUT = 15.0
STOP_TIMEOUT = 30.0

# Settings of the server that a developer's shell could carry into the tests: each test states its
# own.
_SCRUBBED_ENV = (
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_PREVIOUS",
    "API_TOKEN",
    "SECRET_KEY",
    "DATABASE_URL",
    "LOG_LEVEL",
    "WEB_CONCURRENCY",
    "GUNICORN_WORKER_CONNECTIONS",
    "GUNICORN_CMD_ARGS",
    "BIND",
    "DB_BUSY_TIMEOUT_MS",
    "PROMETHEUS_MULTIPROC_DIR",
    "prometheus_multiproc_dir",
)


def gunicorn_executable():
    """The gunicorn of the virtualenv running the tests, else the repository's ``.venv``."""
    beside_python = Path(sys.executable).parent / "gunicorn"
    if beside_python.exists():
        return str(beside_python)
    return str(REPO_ROOT / ".venv" / "bin" / "gunicorn")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# --- messages -----------------------------------------------------------------------------------


def new_id(prefix="e2e"):
    return f"{prefix}-{uuid.uuid4().hex}"


def message(message_id=None, **overrides):
    """A valid webhook body as a dict; ``from_`` stands for ``from``."""
    body = {
        "message_id": message_id or new_id(),
        "from": overrides.pop("from_", "+919876543210"),
        "to": "+14155550100",
        "ts": "2025-01-15T10:00:00Z",
        "text": "Hello",
    }
    body.update(overrides)
    return body


def encode(body):
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    def is_json(self):
        try:
            self.json()
        except ValueError:
            return False
        return (self.headers.get("Content-Type") or "").startswith("application/json")


def http_request(port, method, path, body=None, headers=None, timeout=30.0):
    """One request on a fresh connection, closed afterwards; the whole body is read.

    A response that starts but does not arrive whole raises ``http.client.IncompleteRead``.
    """
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        try:
            data = response.read()
        except OSError as exc:  # reset after the status line: a response cut short, not no response
            raise http.client.IncompleteRead(b"") from exc
        return Response(response.status, response.headers, data)
    finally:
        connection.close()


# --- metrics ------------------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> ``{(name, ((label, value), ...)): float}``; fails on a bad line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        pairs = tuple(sorted(_LABEL.findall(labels or "")))
        key = (name, pairs)
        assert key not in samples, f"duplicate series in one scrape: {line!r}"
        samples[key] = float(value)
    return samples


def series(samples, name, **labels):
    """Every sample of ``name`` whose labels include ``labels``.

    As ``{labels dict as tuple: value}``.
    """
    wanted = set(labels.items())
    return {
        pairs: value
        for (sample_name, pairs), value in samples.items()
        if sample_name == name and wanted <= set(pairs)
    }


def value(samples, name, **labels):
    """The value of the one series with exactly ``labels``, or None if absent."""
    return samples.get((name, tuple(sorted(labels.items()))))


# --- the server ---------------------------------------------------------------------------------

_SIGABRT_BIT = 1 << (signal.SIGABRT - 1)


def _stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ..."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        return stat.read().rsplit(b")", 1)[1].split()


def _children(parent):
    """Live (not zombie) processes whose parent is ``parent``."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = _stat_fields(entry)
            except OSError:
                continue
            if int(fields[1]) == parent and fields[0] not in (b"Z", b"X"):
                children.append(int(entry))
    return children


def _worker_signals_installed(pid):
    """True once a Gunicorn worker catches SIGABRT: its own handlers, set before the app loads,
    replaced the master's (which leave SIGABRT alone). Also True for a process that is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & _SIGABRT_BIT)
    except OSError:
        return True
    return True


class Server:
    """One Gunicorn process group: ``[gunicorn, -c, gunicorn.conf.py, -b, HOST:port, wsgi:app]``."""

    def __init__(self, workdir, *, name, secret, database_url, workers=4, env=None, bind_host=HOST):
        self.workdir = Path(workdir)
        # The address Gunicorn binds (requests still go to HOST): "0.0.0.0" for a public bind.
        self.bind_host = bind_host
        self.name = name
        self.secret = secret
        self.database_url = database_url
        self.workers = workers
        self.extra_env = dict(env or {})
        self.output_path = self.workdir / f"{name}.log"
        self.proc = None
        self.port = None
        self._lock = threading.Lock()
        # Responses received through this object, readiness polls included: each is one log line.
        self.responses = 0

    # lifecycle

    def environment(self):
        env = os.environ.copy()
        for key in _SCRUBBED_ENV:
            env.pop(key, None)
        if self.secret is not None:
            env["WEBHOOK_SECRET"] = self.secret
        env["DATABASE_URL"] = self.database_url
        env["WEB_CONCURRENCY"] = str(self.workers)
        env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix=f"{self.name}-metrics-", dir=self.workdir
        )
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def start(self, timeout=LIVE_TIMEOUT):
        """Start Gunicorn; return once /health/live answers and every worker has booted."""
        for _attempt in range(3):
            self.port = free_port()
            with open(self.output_path, "ab") as output:
                command = [
                    gunicorn_executable(),
                    "-c",
                    "gunicorn.conf.py",
                    "-b",
                    f"{self.bind_host}:{self.port}",
                    # The health-probe listener, when the test gives one (gunicorn.conf.py).
                    *(
                        ["-b", self.extra_env["PROBE_BIND"]]
                        if "PROBE_BIND" in self.extra_env
                        else []
                    ),
                    "wsgi:app",
                ]
                self.proc = subprocess.Popen(
                    command,
                    cwd=REPO_ROOT,
                    env=self.environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    # Its own process group: the whole server (master and workers) can be SIGKILLed.
                    start_new_session=True,
                )
            deadline = time.monotonic() + timeout
            if self._wait_live(deadline):
                if self._wait_workers_booted(deadline):
                    return self
                break
            # The free port was taken between our probe and Gunicorn's bind: try another one.
            if "Address already in use" not in self.output():
                break
        exited = self.proc.poll()
        self.kill()
        reason = (
            f"exited with status {exited}"
            if exited is not None
            else f"did not answer /health/live with {self.workers} workers booted "
            f"within {timeout} s"
        )
        pytest.fail(f"{self.name} {reason}. Output:\n{self.output()}")

    def _wait_live(self, deadline):
        while True:
            if self.proc.poll() is not None:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                # One long request rather than many short ones: the master accepts connections
                # before a worker serves them, and an abandoned request would still be logged.
                if self.get("/health/live", timeout=remaining).status == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)

    def _wait_workers_booted(self, deadline):
        """Until every worker has forked and installed its own signal handlers.

        Gunicorn's race: a SIGTERM reaching a worker between its fork and its own handlers goes to
        the master's handler copied into it and is lost; that worker then serves on and the master
        waits out graceful_timeout (20 s) before killing it. Tests that stop a server soon after
        starting it would be slow, and a worker still booting would not share the load anyway.
        """
        if not os.path.isdir("/proc"):
            return True
        while time.monotonic() < deadline:
            workers = _children(self.proc.pid)
            if len(workers) >= self.workers and all(
                _worker_signals_installed(pid) for pid in workers
            ):
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def terminate(self):
        """SIGTERM to the master (graceful shutdown); does not wait."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=STOP_TIMEOUT):
        """Wait for the master to exit; returns its exit code."""
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; SIGKILL the whole group if that takes longer than ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self):
        """SIGKILL the master and every worker at once.

        As an OOM kill or a crash of the whole group.
        """
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:  # a reaped master's pid (and group id) may belong to another
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.proc.wait()
        self._wait_group_gone(pgid)

    @staticmethod
    def _wait_group_gone(pgid, timeout=5.0):
        """Until no live process of the group remains (orphaned workers are reaped elsewhere)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = False
            try:
                entries = os.listdir("/proc")
            except OSError:
                time.sleep(0.5)
                return
            for entry in entries:
                if not entry.isdigit():
                    continue
                try:
                    fields = _stat_fields(entry)
                except OSError:
                    continue
                state, pgrp = fields[0], int(fields[2])
                if pgrp == pgid and state not in (b"Z", b"X"):
                    alive = True
                    break
            if not alive:
                return
            time.sleep(0.02)

    # output

    def output(self):
        try:
            return self.output_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def lines(self):
        return [line for line in self.output().splitlines() if line.strip()]

    def records(self):
        """Every output line as a JSON object; fails naming the first line that is not one."""
        records = []
        for number, line in enumerate(self.lines(), 1):
            try:
                record = json.loads(line)
            except ValueError:
                pytest.fail(f"{self.name} output line {number} is not JSON: {line!r}")
            if not isinstance(record, dict):
                pytest.fail(f"{self.name} output line {number} is not a JSON object: {line!r}")
            records.append(record)
        return records

    def request_records(self):
        return [r for r in self.records() if r.get("msg") == "request"]

    # HTTP

    def request(self, method, path, body=None, headers=None, timeout=30.0):
        response = http_request(
            self.port, method, path, body=body, headers=headers, timeout=timeout
        )
        with self._lock:
            self.responses += 1
        return response

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def get_json(self, path, status=200):
        response = self.get(path)
        assert response.status == status, (path, response.status, response.body)
        return response.json()

    def post_webhook(self, body, *, secret=None, signature=None, headers=None, timeout=30.0):
        """POST ``body`` (dict, str or bytes) signed with ``secret`` (default: the server's)."""
        raw = encode(body)
        if signature is None:
            signature = sign(self.secret if secret is None else secret, raw)
        all_headers = {"Content-Type": "application/json"}
        if signature is not False:
            all_headers["X-Signature"] = signature
        all_headers.update(headers or {})
        return self.request("POST", "/webhook", body=raw, headers=all_headers, timeout=timeout)

    def metrics(self):
        response = self.get("/metrics")
        assert response.status == 200, response.body
        return response.body.decode("utf-8")

    def all_messages(self, page_size=100):
        """Every stored message, paging with ``next_cursor``; checks ``total`` against the pages."""
        rows, cursor, total = [], None, None
        while True:
            path = f"/messages?limit={page_size}" + (f"&cursor={cursor}" if cursor else "")
            page = self.get_json(path)
            total = page["total"] if total is None else total
            assert page["total"] == total, "total changed while paging an idle server"
            rows.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
        ids = [row["message_id"] for row in rows]
        assert len(ids) == len(set(ids)), "a message appeared on two pages"
        assert len(rows) == total, f"pages held {len(rows)} rows, total says {total}"
        return rows
