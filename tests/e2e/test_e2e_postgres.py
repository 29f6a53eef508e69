"""PostgreSQL as the shared store: several hosts on one database, and the database going away.

These tests run on PostgreSQL only (skipped without LYFTR_TEST_POSTGRES_URL): they test what SQLite
cannot do (two hosts writing one database) or what needs a server to stop and start again.
"""

import glob
import http.client
import itertools
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from helpers import NO_POSTGRES, POSTGRES_URL, PostgresSchema, postgres_admin

from lyftr.providers.signing import sign

from .server import HOST, free_port, message, parse_metrics, value

pytestmark = pytest.mark.e2e

SENDERS = ("+10000000001", "+10000000002", "+10000000003", "+10000000004", "+10000000005")
SAME_ID_SENDER = "+10000000006"
DISTINCT_IDS = 200
SAME_ID_DELIVERIES = 40  # split evenly across the two hosts
PAIR_THREADS = 8  # pairs of client threads, one of each pair per host

LOAD_THREADS = 4
# A short pause between one thread's deliveries: a steady stream, not a benchmark (the machine is
# shared).
LOAD_PAUSE = 0.01
CLIENT_TIMEOUT = 15.0
RUN_BEFORE_OUTAGE = 1.5
OUTAGE = 2.0
RUN_AFTER_RECOVERY = 1.5
RECOVERY_TIMEOUT = 20.0


@pytest.fixture
def postgres_schema():
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    with PostgresSchema() as schema:
        yield schema


@pytest.fixture
def db_url(postgres_schema):
    """Overrides the e2e conftest's: these tests run once, on PostgreSQL, not once per backend."""
    return postgres_schema.url


def metric_sum(servers, name, **labels):
    """A counter summed over hosts: each host's /metrics covers its own workers only."""
    return sum(value(parse_metrics(server.metrics()), name, **labels) or 0 for server in servers)


def deliver(port, body, secret, barrier):
    """Connect first, wait for the others at ``barrier``, then send: deliveries land together."""
    connection = http.client.HTTPConnection(HOST, port, timeout=CLIENT_TIMEOUT)
    try:
        connection.connect()
        barrier.wait(timeout=CLIENT_TIMEOUT)
        connection.request(
            "POST",
            "/webhook",
            body=body,
            headers={
                "Content-Type": "application/json",
                "X-Signature": sign(secret, body),
            },
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_two_hosts_on_one_database_store_each_message_once(start_server, postgres_schema):
    first = start_server(workers=2)
    second = start_server(workers=2)
    assert first.port != second.port
    run = uuid.uuid4().hex[:8]
    distinct = [
        json.dumps(
            message(
                f"pair-{run}-{i:04d}",
                from_=SENDERS[i % len(SENDERS)],
                ts=f"2025-04-01T10:{i // 60:02d}:{i % 60:02d}Z",
                text=f"pair {i}",
            )
        ).encode()
        for i in range(DISTINCT_IDS)
    ]
    same_id = f"same-{run}"
    same = [
        json.dumps(
            message(same_id, from_=SAME_ID_SENDER, ts="2025-04-01T09:00:00Z", text=f"delivery {i}")
        ).encode()
        for i in range(SAME_ID_DELIVERIES)
    ]
    results = []  # (host, status, body), appended from many threads (list.append is atomic)

    def pair_lane(server, lane, barrier):
        # Both threads of a pair walk the same slice of ids; the cyclic barrier makes each
        # message reach both hosts at the same moment.
        for body in distinct[lane::PAIR_THREADS]:
            status, reply = deliver(server.port, body, server.secret, barrier)
            results.append((server.name, status, reply))

    threads = []
    for lane in range(PAIR_THREADS):
        barrier = threading.Barrier(2)
        threads += [
            threading.Thread(target=pair_lane, args=(host, lane, barrier))
            for host in (first, second)
        ]
    # The same message_id 40 times at once, half to each host.
    same_barrier = threading.Barrier(SAME_ID_DELIVERIES)
    for i, body in enumerate(same):
        host = (first, second)[i % 2]
        threads.append(
            threading.Thread(
                target=lambda host=host, body=body: results.append(
                    (host.name, *deliver(host.port, body, host.secret, same_barrier))
                )
            )
        )
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a delivery did not finish within 60 s"

    deliveries = 2 * DISTINCT_IDS + SAME_ID_DELIVERIES
    assert len(results) == deliveries, "a client thread failed (its exception is printed above)"
    assert Counter(status for _, status, _ in results) == {200: deliveries}
    assert all(json.loads(reply) == {"status": "ok"} for _, _, reply in results)
    # Both hosts really took part: each got its half.
    half = deliveries // 2
    assert Counter(host for host, _, _ in results) == {first.name: half, second.name: half}

    stored_ids = {json.loads(body)["message_id"] for body in distinct} | {same_id}
    for server in (first, second):
        assert {row["message_id"] for row in server.all_messages()} == stored_ids
        assert server.get_json("/messages?limit=1")["total"] == len(stored_ids)

    # The database itself: one row per message_id, and counts kept with the rows.
    with postgres_admin() as connection:
        schema = postgres_schema.name
        rows, ids = connection.execute(
            f'SELECT count(*), count(DISTINCT message_id) FROM "{schema}".messages'
        ).fetchone()
        per_sender_rows = dict(
            connection.execute(
                f'SELECT from_msisdn, count(*) FROM "{schema}".messages GROUP BY from_msisdn'
            ).fetchall()
        )
        sender_counts = dict(
            connection.execute(
                f'SELECT from_msisdn, count FROM "{schema}".sender_counts'
            ).fetchall()
        )
    assert rows == ids == len(stored_ids)
    per_sender = DISTINCT_IDS // len(SENDERS)
    expected_counts = {**{sender: per_sender for sender in SENDERS}, SAME_ID_SENDER: 1}
    assert per_sender_rows == sender_counts == expected_counts

    stats = first.get_json("/stats")
    assert second.get_json("/stats") == stats
    assert stats == {
        "total_messages": len(stored_ids),
        "senders_count": len(SENDERS) + 1,
        "messages_per_sender": [{"from": s, "count": per_sender} for s in SENDERS]
        + [{"from": SAME_ID_SENDER, "count": 1}],
        "first_message_ts": "2025-04-01T09:00:00Z",
        "last_message_ts": json.loads(distinct[-1])["ts"],
    }

    # Each host counts what it answered; together they saw every delivery, one creation per id.
    servers = (first, second)
    created = metric_sum(servers, "webhook_requests_total", result="created")
    duplicate = metric_sum(servers, "webhook_requests_total", result="duplicate")
    assert created == len(stored_ids)
    assert created + duplicate == deliveries
    assert metric_sum(servers, "webhook_requests_total", result="unavailable") == 0
    for server in servers:
        assert "traceback" not in server.output().lower()


# --- a PostgreSQL server of the test's own --------------------------------------------------------


def _major(version):
    return int(version) if version.isdigit() else 0


def postgres_bin_dir():
    """The directory holding initdb, pg_ctl and postgres, or None."""
    found = shutil.which("pg_ctl")
    candidates = [os.path.dirname(found)] if found else []
    # Debian and Ubuntu keep them out of PATH, one directory per major version: newest first.
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versioned, key=lambda path: _major(Path(path).parent.name), reverse=True)
    for directory in candidates:
        tools = ("initdb", "pg_ctl", "postgres")
        if all(os.access(os.path.join(directory, tool), os.X_OK) for tool in tools):
            return directory
    return None


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, on a free port, trust auth, user postgres.

    PostgreSQL refuses to run as root: as root its tools run as the ``postgres`` OS user, which
    owns the directory.
    """

    def __init__(self, bin_dir):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="lyftr-pg-"))  # short: the socket path is limited
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self):
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/postgres"

    def connect(self):
        return psycopg.connect(
            host=HOST,
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )

    def _run(self, tool, *args, timeout=60):
        command = [*self.as_user, os.path.join(self.bin_dir, tool), *args]
        env = {key: val for key, val in os.environ.items() if not key.startswith("PG")}
        result = subprocess.run(
            command,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.server_log()}"
            )
        return result

    def server_log(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def init(self):
        self.sockets.mkdir()
        if self.as_user:
            for path in (self.root, self.sockets):
                shutil.chown(path, "postgres")
        os.chmod(self.root, 0o700)
        # --no-sync: a throwaway cluster need not survive a power cut, and fsyncs cost time.
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        )

    def start(self):
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses={HOST} -c fsync=off"
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "-o",
            options,
        )

    def stop(self, mode="fast"):
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "30")

    def running(self):
        command = [
            *self.as_user,
            os.path.join(self.bin_dir, "pg_ctl"),
            "status",
            "-D",
            str(self.data),
        ]
        return subprocess.run(command, cwd=self.root, capture_output=True).returncode == 0

    def remove(self):
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def throwaway_postgres():
    """A PostgreSQL server this test may stop and start (never the shared one)."""
    if not POSTGRES_URL:
        pytest.skip(NO_POSTGRES)
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot run PostgreSQL as another user")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' OS user to run PostgreSQL as")
    instance = ThrowawayPostgres(bin_dir)
    try:
        instance.init()
        instance.start()
        yield instance
    finally:
        instance.remove()


class DeliveryStream:
    """Threads posting distinct messages, each on a fresh connection, until told to stop.

    Every delivery is recorded with when it started and ended (monotonic clock), the phase the test
    was in when it started, and its status (or the exception that replaced a response).
    """

    def __init__(self, server):
        self.server = server
        self.run = uuid.uuid4().hex[:8]
        self.numbers = itertools.count()
        self.phase = "before"
        self.deliveries = []  # dicts, appended from the threads
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.worker) for _ in range(LOAD_THREADS)]

    def body(self, number):
        return message(
            f"outage-{self.run}-{number:05d}",
            from_=SENDERS[number % len(SENDERS)],
            ts=f"2025-05-01T{number // 3600 % 24:02d}:{number // 60 % 60:02d}:{number % 60:02d}Z",
        )

    def worker(self):
        while not self.stopping.is_set():
            number = next(self.numbers)
            self.deliveries.append(self.deliver(self.body(number), self.phase))
            time.sleep(LOAD_PAUSE)

    def deliver(self, body, phase):
        record = {"message_id": body["message_id"], "phase": phase, "started": time.monotonic()}
        try:
            response = self.server.post_webhook(body, timeout=CLIENT_TIMEOUT)
        except (OSError, http.client.HTTPException) as exc:  # a timeout is an OSError too
            record.update(status=None, error=repr(exc))
        else:
            record.update(
                status=response.status,
                body=response.body,
                retry_after=response.headers.get("Retry-After"),
                is_json=response.is_json(),
            )
        record["ended"] = time.monotonic()
        return record

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self.threads), "a client thread hung"


def bad_answer(record):
    """Why ``record`` is not an acceptable answer while the database may be away, or None."""
    if record["status"] is None:
        return f"no response: {record['error']}"
    if record["status"] == 200:
        return None if json.loads(record["body"]) == {"status": "ok"} else "200 with another body"
    if record["status"] != 503:
        return f"status {record['status']}"
    if not record["is_json"] or "detail" not in json.loads(record["body"]):
        return f"503 without a JSON detail: {record['body'][:200]!r}"
    if record["retry_after"] is None:
        return "503 without Retry-After"
    return None


def stored_state(instance):
    """(message_ids in the table, sum of the sender counts), read from PostgreSQL itself."""
    with instance.connect() as connection:
        ids = {row[0] for row in connection.execute("SELECT message_id FROM messages")}
        counted = connection.execute(
            "SELECT coalesce(sum(count), 0) FROM sender_counts"
        ).fetchone()[0]
    return ids, counted


def test_postgres_restart_under_load_loses_nothing_and_recovers_without_restart(
    throwaway_postgres, start_server
):
    server = start_server(database_url=throwaway_postgres.url, workers=2)
    assert server.get_json("/health/ready")["status"] == "ready"

    with DeliveryStream(server) as stream:
        time.sleep(RUN_BEFORE_OUTAGE)
        stream.phase = "stopping"
        throwaway_postgres.stop("fast")
        down_since = time.monotonic()
        stream.phase = "down"
        # Probed a few times: two workers, either may answer.
        ready_during_outage, live_during_outage = [], []
        deadline = down_since + OUTAGE
        while time.monotonic() < deadline:
            ready = server.get("/health/ready", timeout=CLIENT_TIMEOUT)
            ready_during_outage.append((ready.status, ready.json()))
            live_during_outage.append(server.get("/health/live", timeout=CLIENT_TIMEOUT).status)
            time.sleep(0.3)
        stream.phase = "starting"
        up_from = time.monotonic()
        throwaway_postgres.start()
        # No restart of the server: it notices the database by itself.
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while server.get("/health/ready", timeout=CLIENT_TIMEOUT).status != 200:
            assert time.monotonic() < deadline, (
                f"not ready {RECOVERY_TIMEOUT} s after PostgreSQL came back"
            )
            time.sleep(0.1)
        recovered_in = time.monotonic() - up_from
        stream.phase = "after"
        time.sleep(RUN_AFTER_RECOVERY)

    deliveries = stream.deliveries
    phases = Counter(record["phase"] for record in deliveries)
    assert phases["before"] > 0 and phases["after"] > 0, phases

    # At no point a 500, a hang or a non-JSON error: 200, or 503 with a detail and Retry-After.
    problems = [(r["message_id"], r["phase"], bad_answer(r)) for r in deliveries if bad_answer(r)]
    assert not problems, problems[:5]
    assert recovered_in < RECOVERY_TIMEOUT
    # Deliveries made entirely while the server was down were refused, not silently taken.
    while_down = [r for r in deliveries if r["started"] > down_since and r["ended"] < up_from]
    assert while_down, "no delivery ran during the outage"
    assert Counter(r["status"] for r in while_down) == {503: len(while_down)}
    assert ready_during_outage and all(
        status == 503 and body["checks"]["database"].startswith("unavailable")
        for status, body in ready_during_outage
    ), ready_during_outage
    assert set(live_during_outage) == {200}
    # Once ready again, everything succeeds (stale pooled connections are replaced, not used).
    after = [r for r in deliveries if r["phase"] == "after"]
    assert Counter(r["status"] for r in after) == {200: len(after)}

    # Before any retry: everything acknowledged is stored, and every row has its count. A row whose
    # delivery got a 503 is possible (committed, the answer lost with the connection); the retry
    # below then finds it as a duplicate.
    acknowledged = {r["message_id"] for r in deliveries if r["status"] == 200}
    refused = {r["message_id"] for r in deliveries if r["status"] != 200}
    assert refused, "the outage refused nothing"
    stored, counted = stored_state(throwaway_postgres)
    assert acknowledged <= stored
    assert stored <= acknowledged | refused
    assert counted == len(stored)

    # The provider retries every refused delivery until it is acknowledged.
    retries = []
    for message_id in sorted(refused):
        number = int(message_id.rsplit("-", 1)[1])
        for _attempt in range(5):
            record = stream.deliver(stream.body(number), "retry")
            retries.append(record)
            if record["status"] == 200:
                break
            time.sleep(0.2)
    retry_problems = [
        (r["message_id"], r["status"], r.get("error")) for r in retries if r["status"] != 200
    ]
    assert not retry_problems, retry_problems[:5]

    sent = {r["message_id"] for r in deliveries}
    stored, counted = stored_state(throwaway_postgres)
    assert stored == sent
    assert counted == len(sent)
    stats = server.get_json("/stats")
    assert stats["total_messages"] == len(sent)
    assert sum(entry["count"] for entry in stats["messages_per_sender"]) == len(sent)
    assert stats["senders_count"] == len(SENDERS)
    assert server.get_json("/messages?limit=1")["total"] == len(sent)
    assert {row["message_id"] for row in server.all_messages()} == sent

    # The server's own account agrees: every 503 counted as unavailable, every 200 once.
    samples = parse_metrics(server.metrics())
    all_answers = deliveries + retries
    assert value(samples, "webhook_requests_total", result="unavailable") == sum(
        r["status"] == 503 for r in all_answers
    )
    created = value(samples, "webhook_requests_total", result="created") or 0
    duplicate = value(samples, "webhook_requests_total", result="duplicate") or 0
    assert created + duplicate == sum(r["status"] == 200 for r in all_answers)
    assert created <= len(sent)
    webhook_statuses = Counter(
        r["status"] for r in server.request_records() if r["path"] == "/webhook"
    )
    assert set(webhook_statuses) <= {200, 503}, webhook_statuses
    assert "traceback" not in server.output().lower()
