#!/usr/bin/env python3
"""lyftr benchmark: the real server under wrk, then read latencies at a million messages.

    make bench          # or: .venv/bin/python bench/run.py [--messages N] [--duration S] ...

1. Starts ``gunicorn -c gunicorn.conf.py wsgi:app`` as configured (worker class and count as the
   config and environment say) on a free loopback port, with a temporary SQLite database (or the
   --database-url one) and its own PROMETHEUS_MULTIPROC_DIR. With a PostgreSQL --database-url
   (postgresql+psycopg://...) the bench works in a new schema of that database, ``lyftr_bench_<UTC
   time>``, first on the search_path of every connection the server and ``seed`` make; nothing else
   in that database is touched, and the schema is dropped at the end (kept with --keep).
2. wrk, 16 connections: POST /webhook with new messages (pre-signed bodies, each sent once), the
   same bodies again (duplicates), then GET /health/live (the HTTP stack's ceiling).
   Then WhatsApp batches: one client (http.client, in a thread, one keep-alive connection) POSTs
   signed WhatsApp notifications of 1, 100 and 1,000 new messages to /webhooks/whatsapp, one after
   the other, for --batch-duration seconds per size, while wrk ingests new messages on /webhook
   beside it at full speed (--connections, as in the ingest phase; --batch-ingest-connections 0
   for none): p50/p99 latency per batch size. --batches-only runs only this.
3. ``flask --app wsgi seed`` fills the same database up to --messages messages.
4. wrk, 1 connection per query: p50/p99 of /messages (first page, from=, since=, q= rare and common
   words, offset=N/2, a cursor page in the middle) and /stats; webhook ingest at that size too.
5. Resident memory of the server (master + workers, from /proc) and the database size: the SQLite
   files, or on PostgreSQL pg_total_relation_size summed over the bench schema's tables.

Prints a table and writes bench/results/latest.json plus a timestamped copy (latest-postgresql.json
and a ``-postgresql`` copy on PostgreSQL; latest-batches.json and a ``-batches`` copy for
--batches-only); new files there are ignored by git. A full run takes
about 4.25 minutes and about 0.5 GB of temporary space (the SQLite database, under $TMPDIR).
Standard library + wrk; on PostgreSQL also psycopg and SQLAlchemy, from the virtualenv. The data
``flask seed`` loads is bench/synthetic.py's. docs/performance.md has the latest results.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
LUA = ROOT / "bench" / "wrk.lua"
RESULTS = ROOT / "bench" / "results"
HOST = "127.0.0.1"

# Words of the seeded texts (bench/synthetic.py): a rare one (about 10 rows per million), a common
# one (about one message in ten) and the most common one (most messages).
RARE_WORD = "quixotic"
COMMON_WORD = "hello"
COMMONEST_WORD = "the"

# Bodies are made for this many requests per second of an ingest phase; past them wrk cycles
# through them again (duplicates, which the phase's outcome counts then show).
EXPECTED_MAX_RPS = 4000

# The targets on 2 cores; None: reported, not judged.
TARGET_INGEST_RATIO = 0.70
TARGET_INGEST_P99_MS = 25.0
# Meta expects a fast answer: a 1,000-message batch committed and answered well under a second.
TARGET_BATCH_P99_MS = {1000: 1000.0}
TARGET_RSS_MB = 300.0
QUERY_TARGET_P50_MS = {
    "stats": 10,
    "first_page": 10,
    "from": 10,
    "since": 10,
    "since_half": 10,
    "q_rare": 10,
    "cursor_deep": 10,
    "record": 10,
    "feed_page": 10,
    "q_common": 50,
    "q_commonest": None,
    "offset_half": 100,
}

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

# WhatsApp batches: the sizes measured, and how many pre-signed batches of each are made at most
# (a 1,000-message batch is about 200 KB; the phase stops early if they run out).
BATCH_SIZES = (1, 100, 1000)
BATCH_POOL = {1: 5000, 100: 1000, 1000: 150}


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def sqlite_file(database_url):
    """The file behind a ``sqlite:///`` URL (relative paths from the repository root)."""
    prefix = "sqlite:///"
    if not database_url.startswith(prefix):
        raise SystemExit(f"--database-url must be a SQLite URL ({prefix}...): {database_url}")
    path = database_url[len(prefix) :].split("?", 1)[0]
    return Path(path) if path.startswith("/") else ROOT / path


def open_database(database_url):
    """The bench's handle on the database of ``database_url``: SQLite or PostgreSQL."""
    scheme = database_url.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(database_url)
    if scheme == "sqlite":
        return SqliteDatabase(database_url)
    raise SystemExit(
        "--database-url must be a SQLite (sqlite:///...) or PostgreSQL "
        f"(postgresql+psycopg://...) URL: {database_url}"
    )


class SqliteDatabase:
    """A SQLite file: the server gets the URL as given; the bench reads the file directly."""

    backend = "sqlite"
    created = False  # nothing of the bench's own in a database server to drop or keep

    def __init__(self, database_url):
        self.url = database_url
        self.path = sqlite_file(database_url)

    def __str__(self):
        return str(self.path)

    def create(self):
        """Nothing to do: the server creates the file."""

    def drop(self):
        """Nothing to do: a temporary file goes with the bench's directory, a given one stays."""

    def versions(self):
        return {"sqlite": sqlite3.sqlite_version}

    def stored_ids(self, prefix):
        uri = f"file:{self.path}?mode=ro"
        with sqlite3.connect(uri, uri=True) as connection:
            rows = connection.execute(
                "SELECT message_id FROM messages WHERE message_id >= ? AND message_id < ?",
                (prefix + "-", prefix + "."),
            ).fetchall()
        connection.close()
        return {row[0] for row in rows}

    def size(self):
        sizes = {}
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{self.path}{suffix}")
            sizes[suffix or "db"] = path.stat().st_size if path.exists() else 0
        return {
            "total_mb": round(sum(sizes.values()) / 1e6, 1),
            "db_mb": round(sizes["db"] / 1e6, 1),
            "wal_mb": round(sizes["-wal"] / 1e6, 1),
            "shm_mb": round(sizes["-shm"] / 1e6, 1),
        }


class PostgresDatabase:
    """A new schema of the bench's own in the PostgreSQL database of ``database_url``.

    The server and ``flask seed`` get the URL with ``options=-csearch_path=<schema>,public`` (and
    ``application_name=<schema>``, so that any connection left open can be ended before the drop);
    the bench's own queries (psycopg, imported here only) name the schema explicitly.
    """

    backend = "postgresql"

    def __init__(self, database_url):
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        self.name = "lyftr_bench_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        options = url.query.get("options")
        if isinstance(options, tuple):
            options = " ".join(options)
        search_path = f"-csearch_path={self.name},public"
        self.url = url.update_query_dict(
            {
                "options": f"{options} {search_path}" if options else search_path,
                "application_name": self.name,
            }
        ).render_as_string(hide_password=False)
        self.shown = url.render_as_string(hide_password=True)
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.created = False

    def __str__(self):
        return f"{self.shown}, schema {self.name}"

    def connect(self):
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True)

    def _schema(self):
        from psycopg import sql

        return sql.Identifier(self.name)

    def create(self):
        from psycopg import sql

        with self.connect() as connection:
            # pg_trgm in public, before the migrations run: made inside the bench schema (the
            # first on the search_path) it would go when the schema is dropped.
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
            connection.execute(sql.SQL("CREATE SCHEMA {}").format(self._schema()))
        self.created = True

    def drop(self):
        """Drop the schema this bench made (only that one), ending its connections first."""
        if not self.created:
            return
        from psycopg import sql

        with self.connect() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (self.name,),
            )
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self._schema()))
        self.created = False

    def versions(self):
        import psycopg

        with self.connect() as connection:
            version = connection.execute("SELECT current_setting('server_version')").fetchone()[0]
        return {"postgresql": version, "psycopg": psycopg.__version__}

    def stored_ids(self, prefix):
        from psycopg import sql

        query = sql.SQL(
            "SELECT message_id FROM {}.messages WHERE message_id >= %s AND message_id < %s"
        )
        with self.connect() as connection:
            rows = connection.execute(
                query.format(self._schema()), (prefix + "-", prefix + ".")
            ).fetchall()
        return {row[0] for row in rows}

    def size(self):
        """pg_total_relation_size (heap, TOAST, indexes) summed over the schema's tables."""
        with self.connect() as connection:
            tables, total, heap, indexes = connection.execute(
                "SELECT count(*), coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint,"
                " coalesce(sum(pg_table_size(c.oid)), 0)::bigint,"
                " coalesce(sum(pg_indexes_size(c.oid)), 0)::bigint"
                " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
                (self.name,),
            ).fetchone()
        return {
            "total_mb": round(total / 1e6, 1),
            "tables_mb": round(heap / 1e6, 1),
            "indexes_mb": round(indexes / 1e6, 1),
            "tables": tables,
            "schema": self.name,
        }


# --- HTTP -----------------------------------------------------------------------------------------


def http_get(base, path, timeout=30):
    try:
        with urllib.request.urlopen(base + path, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(base, path):
    status, body = http_get(base, path)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
    return json.loads(body)


def webhook_counts(base):
    """webhook_requests_total by result, summed over the workers."""
    _, body = http_get(base, "/metrics")
    counts = {}
    for match in re.finditer(
        rb'^webhook_requests_total\{result="([a-z_]+)"\} ([0-9.e+]+)$', body, re.M
    ):
        counts[match[1].decode()] = float(match[2])
    return counts


def whatsapp_stored(base):
    """messages_stored_total{provider="whatsapp"}, summed over the workers."""
    _, body = http_get(base, "/metrics")
    match = re.search(rb'^messages_stored_total\{provider="whatsapp"\} ([0-9.e+]+)$', body, re.M)
    return float(match[1]) if match else 0.0


# --- the server -----------------------------------------------------------------------------------


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


# --- load -----------------------------------------------------------------------------------------

_WORDS = (
    "hello",
    "order",
    "delivery",
    "thanks",
    "please",
    "status",
    "payment",
    "refund",
    "today",
    "the",
    "you",
    "my",
    "is",
    "café",
    "straße",
    "when",
    "ok",
    "update",
    "ticket",
    "address",
)


def write_bodies(path, secret, prefix, count, rng):
    """``count`` signed webhook bodies with new message_ids, one per line: ``signature\\tbody``."""
    key = secret.encode()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    senders = [f"+9198{rng.randrange(10**8):08d}" for _ in range(500)]
    with open(path, "w", encoding="utf-8") as out:
        for i in range(count):
            moment = start + timedelta(seconds=rng.randrange(365 * 86400))
            ts = moment.strftime("%Y-%m-%dT%H:%M:%S")
            if i % 4 == 0:
                ts += f".{rng.randrange(1000):03d}"
            body = json.dumps(
                {
                    "message_id": f"{prefix}-{i:08d}",
                    "from": senders[min(int(rng.paretovariate(1.2)) - 1, len(senders) - 1)],
                    "to": "+14155550100",
                    "ts": ts + "Z",
                    "text": " ".join(rng.choices(_WORDS, k=rng.randint(1, 12))),
                },
                ensure_ascii=False,
                separators=(",", ":"),
            )
            signature = hmac.new(key, body.encode(), hashlib.sha256).hexdigest()
            out.write(f"{signature}\t{body}\n")


def wrk(url, *, duration, connections, threads, bodies=None):
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        url,
        "--",
        str(threads),
        str(bodies or ""),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in result.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            raw = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stdout}\n{result.stderr}")
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    errors = raw["errors"]
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1),
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "p999_ms": round(lat["p999"] / 1000, 2),
        "mean_ms": round(lat["mean"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "non_2xx": errors["status"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "connections": connections,
        "duration_s": round(seconds, 2),
    }


def measure(server, url, **load):
    """wrk against ``url``, and the server's CPU time (user + system, every process) per request."""
    before = server.cpu_seconds()
    result = wrk(url, **load)
    used = server.cpu_seconds() - before
    result["server_cpu_ms_per_request"] = round(used * 1000 / max(result["requests"], 1), 3)
    return result


def ingest(server, bodies, *, duration, connections, threads, expect):
    """POST every body in turn under wrk; counts what the server made of them (from /metrics)."""
    before = webhook_counts(server.base)
    result = measure(
        server,
        server.base + "/webhook",
        duration=duration,
        connections=connections,
        threads=threads,
        bodies=bodies,
    )
    after = webhook_counts(server.base)
    outcomes = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
    result["outcomes"] = {k: v for k, v in outcomes.items() if v}
    unexpected = sum(v for k, v in outcomes.items() if k != expect)
    if unexpected:
        log(f"warning: {unexpected} webhook outcomes other than {expect!r}: {result['outcomes']}")
    return result


def keep_lines(source, target, message_ids):
    kept = 0
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            body = json.loads(line.split("\t", 1)[1])
            if body["message_id"] in message_ids:
                out.write(line)
                kept += 1
    return kept


# --- WhatsApp batches -----------------------------------------------------------------------------


def whatsapp_batches(secret, prefix, size, count, rng):
    """``count`` signed WhatsApp notifications of ``size`` new text messages each, shaped as Meta
    sends them: ``[(X-Hub-Signature-256, body bytes), ...]``."""
    senders = [f"9198{rng.randrange(10**8):08d}" for _ in range(500)]
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
    key = secret.encode()
    batches = []
    for b in range(count):
        messages = [
            {
                "from": rng.choice(senders),
                "id": f"wamid.{prefix}-{b:05d}-{m:04d}",
                "timestamp": str(start + rng.randrange(365 * 86400)),
                "type": "text",
                "text": {"body": " ".join(rng.choices(_WORDS, k=rng.randint(1, 12)))},
            }
            for m in range(size)
        ]
        notification = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": "106540352242922",
                                },
                                "messages": messages,
                            },
                        }
                    ],
                }
            ],
        }
        # As Meta sends it: compact JSON, non-ASCII escaped as \uXXXX.
        body = json.dumps(notification, separators=(",", ":")).encode("ascii")
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        batches.append((signature, body))
    return batches


class BatchPoster(threading.Thread):
    """POSTs the batches one after the other on one keep-alive connection, from ``delay`` seconds
    after start until ``seconds`` after start (or until they run out), timing each exchange."""

    def __init__(self, port, batches, *, delay, seconds):
        super().__init__(daemon=True)
        self.port, self.batches, self.delay, self.seconds = port, batches, delay, seconds
        self.latencies_ms, self.statuses, self.errors = [], {}, 0
        self.elapsed = 0.0

    def run(self):
        started = time.monotonic()
        time.sleep(self.delay)
        deadline = started + self.seconds
        connection = None
        first = time.monotonic()
        for signature, body in self.batches:
            if time.monotonic() >= deadline:
                break
            if connection is None:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
            headers = {"Content-Type": "application/json", "X-Hub-Signature-256": signature}
            try:
                sent = time.perf_counter()
                connection.request("POST", "/webhooks/whatsapp", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                self.latencies_ms.append((time.perf_counter() - sent) * 1000)
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
                if response.will_close:
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException):
                self.errors += 1
                connection.close()
                connection = None
        self.elapsed = time.monotonic() - first
        if connection is not None:
            connection.close()


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-int(fraction * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def batch_phase(server, workdir, whatsapp_secret, run_id, rng, args):
    """p50/p99 of POST /webhooks/whatsapp per batch size, with /webhook ingest beside it."""
    duration = args.batch_duration
    connections = args.batch_ingest_connections
    results = {
        "duration_s": duration,
        "ingest_beside": {
            "connections": connections,
            "rate": "full speed" if connections else None,
        },
        "sizes": {},
    }
    for size in BATCH_SIZES:
        log(f"WhatsApp batches of {size}: making up to {BATCH_POOL[size]} signed notifications")
        batches = whatsapp_batches(whatsapp_secret, f"{run_id}w{size}", size, BATCH_POOL[size], rng)
        stored_before = whatsapp_stored(server.base)
        # The batches start once wrk's connections are up and stop before wrk does.
        poster = BatchPoster(server.port, batches, delay=0.5, seconds=max(duration - 0.5, 1.0))
        beside = None
        log(
            f"WhatsApp batches of {size} for {duration}s, "
            + (f"/webhook ingest beside it (c={connections})" if connections else "alone")
        )
        if connections:
            bodies = workdir / f"beside{size}.tsv"
            write_bodies(
                bodies,
                server.env["WEBHOOK_SECRET"],
                f"{run_id}b{size}",
                int(EXPECTED_MAX_RPS * duration) + 1000,
                rng,
            )
            before = webhook_counts(server.base)
            poster.start()
            beside = wrk(
                server.base + "/webhook",
                duration=duration,
                connections=connections,
                threads=2,
                bodies=bodies,
            )
            after = webhook_counts(server.base)
            outcomes = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after}
            beside["outcomes"] = {k: v for k, v in outcomes.items() if v}
        else:
            poster.start()
        poster.join()
        latencies = sorted(poster.latencies_ms)
        posted = len(latencies)
        ok = poster.statuses.get(200, 0)
        stored = int(whatsapp_stored(server.base) - stored_before)
        result = {
            "batch_size": size,
            "posts": posted,
            "non_200": posted - ok,
            "errors": poster.errors,
            "statuses": {str(k): v for k, v in sorted(poster.statuses.items())},
            "messages_stored": stored,
            "messages_per_s": round(ok * size / poster.elapsed, 1) if poster.elapsed else None,
            "p50_ms": round(percentile(latencies, 0.50), 2) if latencies else None,
            "p90_ms": round(percentile(latencies, 0.90), 2) if latencies else None,
            "p99_ms": round(percentile(latencies, 0.99), 2) if latencies else None,
            "max_ms": round(latencies[-1], 2) if latencies else None,
            "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
            "ran_out_of_batches": posted + poster.errors >= len(batches),
        }
        if beside is not None:
            result["ingest_beside"] = beside
        if stored != ok * size:
            log(f"warning: {ok} batches of {size} answered 200 but {stored} messages stored")
        if result["ran_out_of_batches"]:
            log(f"note: all {len(batches)} batches of {size} were sent before the time was up")
        results["sizes"][str(size)] = result
    return results


def seed(server, total, target, seed_number):
    count = max(0, target - total)
    if not count:
        return {"count": 0}
    command = [
        str(BIN / "flask"),
        "--app",
        "wsgi",
        "seed",
        "--count",
        str(count),
        "--seed",
        str(seed_number),
    ]
    started = time.perf_counter()
    result = subprocess.run(
        command, cwd=ROOT, env=server.env, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"seed failed: {result.stdout}\n{result.stderr}")
    return {
        "count": count,
        "seconds": round(elapsed, 2),
        "rows_per_s": round(count / elapsed),
        "output": result.stdout.strip(),
    }


# --- the run --------------------------------------------------------------------------------------


def queries(server, messages):
    stats = get_json(server.base, "/stats")
    top_sender = stats["messages_per_sender"][0]["from"]
    last = datetime.strptime(stats["last_message_ts"][:19], "%Y-%m-%dT%H:%M:%S")
    since = (last - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    middle = stats["total_messages"] // 2
    middle_page = get_json(server.base, f"/messages?limit=1&offset={max(middle - 1, 0)}")
    cursor = middle_page.get("next_cursor")
    middle_id = middle_page["data"][0]["message_id"] if middle_page["data"] else "none"
    middle_ts = middle_page["data"][0]["ts"] if middle_page["data"] else None
    # Reading the record gives it (and what arrived before it) its feed position if it had none.
    middle_seq = get_json(server.base, f"/messages/{urllib.parse.quote(middle_id)}").get("seq")
    paths = {
        "stats": "/stats",
        "first_page": "/messages",
        "from": "/messages?" + urllib.parse.urlencode({"from": top_sender}),
        "since": "/messages?" + urllib.parse.urlencode({"since": since}),
        # Half the rows match: the exact total counts them (the 10 ms goal at 10M).
        "since_half": "/messages?" + urllib.parse.urlencode({"since": middle_ts or since}),
        "q_rare": f"/messages?q={RARE_WORD}",
        "q_common": f"/messages?q={COMMON_WORD}",
        "q_commonest": f"/messages?q={COMMONEST_WORD}",
        "offset_half": f"/messages?offset={middle}",
        "cursor_deep": "/messages?" + urllib.parse.urlencode({"cursor": cursor or ""}),
        "record": f"/messages/{urllib.parse.quote(middle_id)}",
        "feed_page": f"/feed?after={middle_seq or 0}&limit=1000",
    }
    totals = {}
    for name, path in paths.items():
        body = get_json(server.base, path)
        totals[name] = body.get("total", body.get("total_messages", len(body.get("data", []))))
    return paths, totals


def run(args):
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    if not (BIN / "gunicorn").exists():
        print(
            f"no virtualenv at {BIN.parent}: run `make test` (or `make run`) once first",
            file=sys.stderr,
        )
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="lyftr-bench-"))
    database = open_database(args.database_url or f"sqlite:///{workdir}/app.db")
    secret = secrets.token_hex(32)
    whatsapp_secret = secrets.token_hex(32)
    rng = random.Random(args.seed)
    run_id = f"bench{int(time.time())}"
    threads = 2
    load = {"connections": args.connections, "threads": threads, "duration": args.duration}
    results = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": args.label,
        "backend": database.backend,
        "options": {
            "messages": args.messages,
            "duration_s": args.duration,
            "query_duration_s": args.query_duration,
            "connections": args.connections,
            "repeat": args.repeat,
            "batch_duration_s": args.batch_duration,
            "batch_ingest_connections": args.batch_ingest_connections,
            "batches_only": args.batches_only,
        },
        "machine": machine(database),
    }
    server = Server(workdir, database.url, secret, whatsapp_secret)
    try:
        database.create()
        log(f"server on {server.base}, database {database}")
        server.start()
        results["server"] = server_config(server)
        if args.batches_only:
            log("warm-up")
            wrk(server.base + "/health/live", duration=2, connections=args.connections, threads=2)
            results["whatsapp_batches"] = batch_phase(
                server, workdir, whatsapp_secret, run_id, rng, args
            )
            results["memory_small"] = server.memory()
            return finish(results, args)
        count = int(EXPECTED_MAX_RPS * args.duration) + 1000
        bodies = [workdir / f"new{r}.tsv" for r in range(args.repeat)]
        for r, path in enumerate(bodies):
            write_bodies(path, secret, f"{run_id}r{r}", count, rng)
        big_bodies = workdir / "big.tsv"
        write_bodies(big_bodies, secret, f"{run_id}big", count, rng)

        log("warm-up")
        wrk(server.base + "/health/live", duration=2, connections=args.connections, threads=threads)

        # The three phases in turn, --repeat times: the machine's noise spreads over all of them.
        runs = {"ingest_new": [], "ingest_duplicates": [], "health_live": []}
        for r, path in enumerate(bodies):
            log(
                f"round {r + 1}/{args.repeat}: new messages, {args.connections} connections, "
                f"{args.duration}s"
            )
            runs["ingest_new"].append(ingest(server, path, expect="created", **load))
            sent = database.stored_ids(f"{run_id}r{r}")
            duplicates = workdir / f"duplicates{r}.tsv"
            keep_lines(path, duplicates, sent)
            log(f"round {r + 1}/{args.repeat}: duplicates ({len(sent)} bodies again)")
            runs["ingest_duplicates"].append(ingest(server, duplicates, expect="duplicate", **load))
            log(f"round {r + 1}/{args.repeat}: GET /health/live")
            runs["health_live"].append(measure(server, server.base + "/health/live", **load))
            for name in ("ingest_new", "ingest_duplicates"):
                runs[name][-1]["ratio_to_live"] = round(
                    runs[name][-1]["rps"] / runs["health_live"][-1]["rps"], 3
                )
        phases = results["phases"] = {name: median_of(values) for name, values in runs.items()}
        live = phases["health_live"]["rps"]
        if args.batch_duration > 0:  # 0: no batch phase (a run comparable with older ones)
            results["whatsapp_batches"] = batch_phase(
                server, workdir, whatsapp_secret, run_id, rng, args
            )
        results["memory_small"] = server.memory()

        if args.ingest_only:
            return finish(results, args)
        total = get_json(server.base, "/stats")["total_messages"]
        log(f"seeding from {total} to {args.messages} messages")
        results["seed"] = seed(server, total, args.messages, args.seed)
        log(f"seeded: {results['seed']}")

        paths, totals = queries(server, args.messages)
        results["queries"] = {}
        for name, path in paths.items():
            log(f"GET {path}")
            result = measure(
                server, server.base + path, duration=args.query_duration, connections=1, threads=1
            )
            result.update(path=path, total=totals[name])
            results["queries"][name] = result
        log(f"ingest of new messages at {args.messages} messages")
        phases["ingest_new_large"] = ingest(server, big_bodies, expect="created", **load)
        phases["ingest_new_large"]["ratio_to_live"] = round(
            phases["ingest_new_large"]["rps"] / live, 3
        )
        if args.purge:
            results["purge"] = purge_phase(server, workdir, secret, run_id, rng, load)
        results["memory"] = server.memory()
        results["database"] = database.size()
        results["database"]["messages"] = get_json(server.base, "/stats")["total_messages"]
    finally:
        server.stop()
        if args.keep:
            log(f"kept {workdir}" + (f" and schema {database.name}" if database.created else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            try:
                database.drop()
            except Exception as exc:  # noqa: BLE001 - the run's own error, if any, matters more
                log(f"warning: could not drop the bench schema ({database}): {exc}")
    return finish(results, args)


def purge_phase(server, workdir, secret, run_id, rng, load):
    """`flask purge` of everything stored so far, with /webhook ingest (new messages) beside it in
    wrk rounds until it ends: how long it takes, and ingest's latency meanwhile."""
    cutoff = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    before = get_json(server.base, "/stats")["total_messages"]
    log(f"purge of {before} messages, /webhook ingest beside it")
    command = [str(BIN / "flask"), "--app", "wsgi", "purge", "--before", cutoff]
    started = time.perf_counter()
    purger = subprocess.Popen(
        command, cwd=ROOT, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    rounds = []
    while purger.poll() is None:
        path = workdir / f"purge{len(rounds)}.tsv"
        write_bodies(path, secret, f"{run_id}p{len(rounds)}", int(EXPECTED_MAX_RPS * 5), rng)
        rounds.append(ingest(server, path, expect="created", **{**load, "duration": 5}))
    output, errors = purger.communicate()
    elapsed = time.perf_counter() - started
    if purger.returncode != 0:
        raise SystemExit(f"purge failed: {output}\n{errors}")
    worst = max(rounds, key=lambda r: r["p99_ms"]) if rounds else {}
    return {
        "purged": before,
        "seconds": round(elapsed, 1),
        "rows_per_s": round(before / elapsed) if elapsed else None,
        "output": output.strip(),
        "ingest_rounds": len(rounds),
        "ingest_rps_median": statistics.median(r["rps"] for r in rounds) if rounds else None,
        "ingest_p99_ms_worst_round": worst.get("p99_ms"),
        "ingest_p50_ms_median": statistics.median(r["p50_ms"] for r in rounds) if rounds else None,
        "ingest_non_2xx": sum(r["non_2xx"] for r in rounds),
    }


def median_of(runs):
    """Each number the median over the runs (ratios included); the runs themselves kept."""
    merged = dict(runs[-1])
    for key, value in runs[-1].items():
        if key in ("requests", "non_2xx", "socket_errors"):
            merged[key] = sum(run[key] for run in runs)
        elif isinstance(value, float):
            merged[key] = statistics.median(run[key] for run in runs)
    merged["outcomes"] = {}
    for run in runs:
        for key, value in run.get("outcomes", {}).items():
            merged["outcomes"][key] = merged["outcomes"].get(key, 0) + value
    if not merged["outcomes"]:
        del merged["outcomes"]
    merged["runs"] = runs
    return merged


def finish(results, args):
    results["targets"] = judge(results)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    report(results)
    save(results)
    return 0


def machine(database):
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except OSError:
        commit, dirty = None, None
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **database.versions(),
        "wrk": wrk_version.split(" Copyright")[0].strip(),
        "commit": commit,
        "dirty": dirty,
        "loadavg_at_start": [round(x, 2) for x in load],
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


def judge(results):
    phases, memory = results.get("phases", {}), results.get("memory", {})
    targets = {}
    if "ingest_new" in phases:
        ingest = phases["ingest_new"]
        targets["ingest >= 70% of /health/live"] = ingest["ratio_to_live"] >= TARGET_INGEST_RATIO
        targets["ingest p99 < 25 ms"] = ingest["p99_ms"] < TARGET_INGEST_P99_MS
    for size, limit in TARGET_BATCH_P99_MS.items():
        batch = results.get("whatsapp_batches", {}).get("sizes", {}).get(str(size))
        if batch and batch["p99_ms"] is not None:
            targets[f"WhatsApp batch of {size:,} p99 < {limit:.0f} ms"] = (
                batch["p99_ms"] < limit and not batch["non_200"] and not batch["errors"]
            )
    for name, limit in QUERY_TARGET_P50_MS.items():
        query = results.get("queries", {}).get(name)
        if query and limit is not None:
            targets[f"{name} p50 < {limit} ms"] = query["p50_ms"] < limit and not query["non_2xx"]
    purge = results.get("purge")
    if purge and purge["ingest_p99_ms_worst_round"] is not None:
        targets["ingest p99 < 100 ms during a purge"] = (
            purge["ingest_p99_ms_worst_round"] < 100 and not purge["ingest_non_2xx"]
        )
    if memory:
        targets[f"server RSS < {TARGET_RSS_MB:.0f} MB"] = memory["rss_mb"] < TARGET_RSS_MB
    return targets


def report(results):
    out = []
    server = results.get("server", {})
    out.append(
        f"lyftr bench  {results['started']}  commit {results['machine']['commit']}"
        f"{' (dirty)' if results['machine']['dirty'] else ''}  "
        f"{results['machine']['cpus']} CPUs  workers {server.get('workers')} "
        f"({server.get('worker_class')})  {database_version(results)}"
    )
    out.append("")
    if results.get("phases"):
        out.append(
            f"medians of {results['options']['repeat']} rounds; cpu = server CPU time per request"
        )
        out.append(
            f"{'phase':<28}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
            f"{'cpu ms':>8}{'non2xx':>8}  notes"
        )
    else:
        out.append("ingest phases skipped (--batches-only)")
    for name, phase in results.get("phases", {}).items():
        notes = []
        if "ratio_to_live" in phase:
            notes.append(f"{phase['ratio_to_live']:.0%} of live")
        if phase.get("outcomes"):
            notes.append(" ".join(f"{k}={v}" for k, v in phase["outcomes"].items()))
        out.append(row(f"{name} (c={phase['connections']})", phase, "  ".join(notes)))
    batches = results.get("whatsapp_batches")
    if batches:
        beside = batches["ingest_beside"]["connections"]
        out.append("")
        out.append(
            "WhatsApp batches: POST /webhooks/whatsapp, 1 connection, "
            + (
                f"/webhook ingest beside it (wrk c={beside}, full speed)"
                if beside
                else "nothing beside it"
            )
        )
        out.append(
            f"{'batch size':<12}{'posts':>7}{'msgs/s':>9}{'p50 ms':>9}{'p90 ms':>9}"
            f"{'p99 ms':>9}{'max ms':>9}{'non200':>8}  beside: req/s p99 ms"
        )
        for size, batch in batches["sizes"].items():
            side = batch.get("ingest_beside")
            side_text = f"{side['rps']:.0f} {side['p99_ms']:.2f}" if side else ""

            def ms(value):
                return f"{value:>9.2f}" if value is not None else f"{'-':>9}"

            out.append(
                f"{int(size):<12,}{batch['posts']:>7}{batch['messages_per_s'] or 0:>9.0f}"
                f"{ms(batch['p50_ms'])}{ms(batch['p90_ms'])}{ms(batch['p99_ms'])}"
                f"{ms(batch['max_ms'])}{batch['non_200'] + batch['errors']:>8}  {side_text}"
            )
    seeded = results.get("seed", {})
    if seeded.get("count"):
        out.append("")
        out.append(
            f"seed: {seeded['count']} messages in {seeded['seconds']} s = "
            f"{seeded['rows_per_s']:,} rows/s (whole command); it says: {seeded['output']}"
        )
    if results.get("queries"):
        out.append("")
        out.append(f"at {results.get('database', {}).get('messages')} messages, 1 connection:")
        for name, query in results["queries"].items():
            out.append(row(name, query, f"total={query['total']}  {query['path'][:60]}"))
    purge = results.get("purge")
    if purge:
        out.append("")
        out.append(
            f"purge: {purge['purged']} messages in {purge['seconds']} s "
            f"({purge['rows_per_s']:,} rows/s); /webhook ingest beside it over "
            f"{purge['ingest_rounds']} rounds of 5 s: {purge['ingest_rps_median']:.0f} req/s, "
            f"p50 {purge['ingest_p50_ms_median']:.2f} ms, worst round p99 "
            f"{purge['ingest_p99_ms_worst_round']:.2f} ms, non-2xx {purge['ingest_non_2xx']}"
        )
    if results.get("memory"):
        memory, database = results["memory"], results["database"]
        out.append("")
        out.append(
            f"server memory: RSS {memory['rss_mb']} MB summed over {memory['processes']} "
            f"processes (PSS {memory['pss_mb']} MB); at start "
            f"{results['memory_small']['rss_mb']} MB"
        )
        if results.get("backend") == "postgresql":
            out.append(
                f"database size: {database['total_mb']} MB (tables {database['tables_mb']}, "
                f"indexes {database['indexes_mb']}; pg_total_relation_size over the "
                f"{database['tables']} tables of schema {database['schema']})"
            )
        else:
            out.append(
                f"database on disk: {database['total_mb']} MB (db {database['db_mb']}, "
                f"wal {database['wal_mb']}, shm {database['shm_mb']})"
            )
    out.append("")
    for name, ok in results.get("targets", {}).items():
        out.append(f"  {'PASS' if ok else 'FAIL'}  {name}")
    print("\n".join(out))


def database_version(results):
    machine = results["machine"]
    if results.get("backend") == "postgresql":
        return f"PostgreSQL {machine['postgresql']}"
    return f"SQLite {machine['sqlite']}"


def row(name, r, notes=""):
    return (
        f"{name:<28}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p90_ms']:>9.2f}{r['p99_ms']:>9.2f}"
        f"{r['max_ms']:>9.1f}{r.get('server_cpu_ms_per_request', 0):>8.2f}{r['non_2xx']:>8}"
        f"  {notes}"
    )


def save(results):
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    label = f"-{re.sub(r'[^A-Za-z0-9_.-]', '_', results['label'])}" if results.get("label") else ""
    # SQLite keeps the plain names; another backend's results sit beside them, never over them.
    backend = "" if results["backend"] == "sqlite" else f"-{results['backend']}"
    # A --batches-only run is not a whole run: it does not replace latest.json.
    partial = "-batches" if results["options"].get("batches_only") else ""
    text = json.dumps(results, indent=2, ensure_ascii=False) + "\n"
    names = (f"{stamp}{label}{partial}{backend}.json", f"latest{partial}{backend}.json")
    for name in names:
        tmp = RESULTS / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(RESULTS / name)
    log(f"results in {RESULTS / names[1]} and {RESULTS / names[0]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages",
        type=int,
        default=1_000_000,
        help="messages in the database for the read measurements (default 1,000,000)",
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=10,
        help="seconds of each ingest and /health/live phase (default 10)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of the ingest and /health/live phases; medians are reported (default 3)",
    )
    parser.add_argument(
        "--query-duration", type=int, default=5, help="seconds of each read query (default 5)"
    )
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="sqlite:///... or postgresql+psycopg://... URL of the database "
        "(default: a temporary SQLite file); on PostgreSQL the bench works in "
        "a new schema of its own, dropped at the end",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the data (default 1)")
    parser.add_argument("--label", default="", help="a name for this run in the results")
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="stop after the ingest, /health/live and WhatsApp batch phases",
    )
    parser.add_argument(
        "--batches-only",
        action="store_true",
        help="run only the WhatsApp batch phase (on an empty database)",
    )
    parser.add_argument(
        "--batch-duration",
        type=int,
        default=10,
        help="seconds of WhatsApp batches of each size (1, 100, 1,000) (default 10)",
    )
    parser.add_argument(
        "--batch-ingest-connections",
        type=int,
        default=None,
        help="wrk connections ingesting on /webhook beside the WhatsApp batches, at full speed "
        "(default: --connections; 0: nothing beside them)",
    )
    parser.add_argument(
        "--purge",
        action="store_true",
        help="at the end, purge everything with `flask purge` while /webhook ingest runs beside it",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary directory (database, server log) and, on "
        "PostgreSQL, the bench schema",
    )
    args = parser.parse_args(argv)
    if args.batch_ingest_connections is None:
        args.batch_ingest_connections = args.connections
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
