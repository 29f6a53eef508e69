#!/usr/bin/env python3
"""Where a worker's CPU goes while it ingests: py-spy samples the real server under wrk.

    .venv/bin/python bench/profile_ingest.py [--duration 15] [--label after]

Starts the server as ``make bench`` does (Gunicorn with the shipped config, a temporary SQLite
database), drives ``POST /webhook`` with new pre-signed messages from wrk (16 connections), and
meanwhile runs ``py-spy record --subprocesses --nonblocking`` on it. Prints, per part of a
delivery, the share of the workers' busy samples whose stack passes through it, and the
functions with the most samples of their own; writes the collapsed stacks (flame graph input)
and the summary to bench/results/<time>-profile-<label>.{txt,json}. Needs py-spy
(``.venv/bin/pip install py-spy``) and permission to trace the server (root, or ptrace_scope 0).
"""

import argparse
import json
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import BIN, ROOT, log  # noqa: E402
from bench.load import measure, write_bodies, wrk  # noqa: E402
from bench.server import Server  # noqa: E402

# A frame belongs to a part when its "function (file)" text contains one of the part's markers;
# a sample counts once per part it passes through.
PARTS = {
    "signature (HMAC)": ("hmac.py", "signing.py", "compare_digest"),
    "JSON parsing": ("json/decoder.py", "strict_json.py"),
    "validation (schema)": ("marshmallow/",),
    "storage (SQLite write + commit)": ("lyftr/store/",),
    "commit (fsync)": ("commit (",),
    "request log": ("request_log.py", "logging/__init__.py", "pythonjsonlogger/"),
    "metrics": ("prometheus_client/", "prometheus_flask_exporter/", "lyftr/metrics.py"),
    "Flask routing and request": ("flask/", "werkzeug/"),
    "Gunicorn and gevent": ("gunicorn/", "gevent/"),
}


def summarize(collapsed):
    total = 0
    parts = Counter()
    own = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # Idle samples: the hub waiting for sockets, not work.
        if (
            frames[-1].startswith(("select", "poll", "epoll", "wait ("))
            or "run (gevent" in (frames[-1])
        ):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for name, markers in PARTS.items():
            if any(marker in frame for frame in frames for marker in markers):
                parts[name] += n
    return {
        "busy_samples": total,
        "parts_percent": {k: round(100 * v / max(total, 1), 1) for k, v in parts.most_common()},
        "top_own": [
            {"function": f, "percent": round(100 * n / max(total, 1), 1)}
            for f, n in own.most_common(25)
        ],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds sampled (default 15)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--label", default="profile")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")

    workdir = Path(tempfile.mkdtemp(prefix="lyftr-profile-"))
    secret = secrets.token_hex(16)
    server = Server(workdir, f"sqlite:///{workdir / 'app.db'}", secret, secrets.token_hex(16))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"{stamp}-profile-{args.label}"
    try:
        bodies = workdir / "new.tsv"
        write_bodies(bodies, secret, f"p{stamp}", 3000 * (args.duration + 8), random.Random(1))
        server.start()
        log("warm-up")
        wrk(server.base + "/health/live", duration=2, connections=args.connections, threads=2)
        sampler = subprocess.Popen(
            [py_spy, "record", "--pid", str(server.process.pid), "--subprocesses",
             "--nonblocking", "--rate", str(args.rate), "--format", "raw",
             "--duration", str(args.duration + 2), "--output", str(out) + ".txt"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1)
        load = {"duration": args.duration, "connections": args.connections, "threads": 2}
        result = measure(server, server.base + "/webhook", bodies=bodies, **load)
        sampler.wait(timeout=args.duration + 60)
        if sampler.returncode != 0:
            raise SystemExit(f"py-spy failed: {sampler.stderr.read()}")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    summary = summarize(Path(str(out) + ".txt").read_text())
    summary["ingest"] = {k: result[k] for k in ("rps", "p50_ms", "p99_ms", "non_2xx")}
    summary["server_cpu_ms_per_request"] = result["server_cpu_ms_per_request"]
    Path(str(out) + ".json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    log(f"wrote {out}.txt (collapsed stacks) and {out}.json")


if __name__ == "__main__":
    sys.exit(main())
