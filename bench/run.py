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
4. For each read, the server restarted and its first request timed (cold), then wrk, 1
   connection: p50/p99 of /messages (first page, from=, since= the last day and 1%, 50% and 99% of
   the rows, q= rare and common words, offset=N/2, a cursor page in the middle), one record, a
   feed page, /stats and the console's pages; webhook ingest at that size too.
5. Resident memory of the server (master + workers, from /proc) and the database size: the SQLite
   files, or on PostgreSQL pg_total_relation_size summed over the bench schema's tables.

Prints a table and writes bench/results/latest.json plus a timestamped copy (latest-postgresql.json
and a ``-postgresql`` copy on PostgreSQL; latest-batches.json and a ``-batches`` copy for
--batches-only); new files there are ignored by git. A full run takes
about 6 minutes and about 0.5 GB of temporary space (the SQLite database, under $TMPDIR).
Standard library + wrk; on PostgreSQL also psycopg and SQLAlchemy, from the virtualenv. The data
``flask seed`` loads is bench/synthetic.py's. docs/performance.md has the latest results.

This file is the entry point (options and the run's outline); the parts are beside it:
bench/server.py (gunicorn), bench/database.py (SQLite file or PostgreSQL schema), bench/load.py
(wrk, signed bodies, HTTP helpers), bench/phases.py (the phases) and bench/report.py (the table
and the JSON results).
"""

import argparse
import random
import secrets
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# `python bench/run.py` puts bench/ first on sys.path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import BIN, log  # noqa: E402
from bench.database import open_database  # noqa: E402
from bench.load import get_json, ingest, write_bodies, wrk  # noqa: E402
from bench.phases import (  # noqa: E402
    EXPECTED_MAX_RPS,
    batch_phase,
    ingest_phase,
    purge_phase,
    read_phase,
    seed,
)
from bench.report import finish, machine  # noqa: E402
from bench.server import Server, server_config  # noqa: E402


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
        phases = results["phases"] = ingest_phase(server, database, workdir, bodies, run_id, load)
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

        results["queries"] = read_phase(server, args.messages, args.query_duration)
        log(f"ingest of new messages at {args.messages} messages")
        phases["ingest_new_large"] = ingest(server, big_bodies, expect="created", **load)
        phases["ingest_new_large"]["ratio_to_live"] = round(
            phases["ingest_new_large"]["rps"] / live, 3
        )
        if args.purge:
            results["purge"] = purge_phase(
                server, workdir, secret, run_id, rng, load, args.purge_control_rounds
            )
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
        "--purge-control-rounds",
        type=int,
        default=0,
        help="with --purge: first this many 5-second rounds of the same ingest with no purge",
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
