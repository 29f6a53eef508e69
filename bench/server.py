"""The real server: ``gunicorn -c gunicorn.conf.py wsgi:app`` on a free loopback port.

Started with an environment of the bench's own (secrets, DATABASE_URL, BIND, its own
PROMETHEUS_MULTIPROC_DIR), stopped with SIGTERM; its processes' CPU time and memory are read from
/proc, and its worker class and count from its boot log lines.
"""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.common import BIN, HOST, ROOT
from bench.load import http_get

# Settings a developer's shell could carry into the server; the bench sets its own.
_SCRUBBED_ENV = (
    "WEBHOOK_SECRET",
    "WEBHOOK_SECRET_PREVIOUS",
    "API_TOKEN",
    "SECRET_KEY",
    "DATABASE_URL",
    "BIND",
    "PROMETHEUS_MULTIPROC_DIR",
    "prometheus_multiproc_dir",
    "STANDARD_WEBHOOKS_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_APP_SECRET_PREVIOUS",
    "TWILIO_AUTH_TOKEN",
    "PUBLIC_BASE_URL",
)


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, workdir, database_url, secret, whatsapp_secret):
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        metrics_dir = workdir / "metrics"
        metrics_dir.mkdir()
        self.env.update(
            {
                "WEBHOOK_SECRET": secret,
                "WHATSAPP_APP_SECRET": whatsapp_secret,
                "DATABASE_URL": database_url,
                "BIND": f"{HOST}:{self.port}",
                "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            }
        )
        self.process = None

    def start(self, timeout=30):
        # Open for the server's whole life: closed in stop().
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if http_get(self.base, "/health/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise SystemExit(f"the server did not become ready; its log ends with:\n{tail}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log_file.close()

    def pids(self):
        """The master and every process below it."""
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(parents.get(pid, []))
        return found

    def cpu_seconds(self):
        """User + system CPU time of the master and its workers so far."""
        ticks = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def memory(self):
        """RSS summed over the processes (shared pages counted in each), and PSS (shared pages
        divided among them)."""
        rss = pss = 0
        pids = self.pids()
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
            except OSError:
                continue
        return {
            "processes": len(pids),
            "rss_mb": round(rss / 1024, 1),
            "pss_mb": round(pss / 1024, 1),
        }


def server_config(server):
    """Worker class and count, as the server's own boot lines say."""
    time.sleep(0.5)
    config = {"worker_class": None, "workers": None}
    for line in server.log_path.read_text(errors="replace").splitlines():
        try:
            msg = json.loads(line).get("msg", "")
        except ValueError:
            continue
        if msg.startswith("Using worker:"):
            config["worker_class"] = msg.split(":", 1)[1].strip()
    config["workers"] = len(server.pids()) - 1
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_CMD_ARGS"):
        if os.environ.get(name):
            config[name] = os.environ[name]
    return config
