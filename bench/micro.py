#!/usr/bin/env python3
"""Focused measurements of one code path, in-process (no Gunicorn, no wrk): for before/after
comparisons on a busy machine, where a whole ``make bench`` moves with the neighbours.

    .venv/bin/python bench/micro.py --messages 1000000 --label after [--database-url URL]

Seeds a new database with the bench's synthetic messages through ``store.bulk_insert`` (timed:
rows/s), then times reads through the Flask test client, one at a time, cold (first call) and warm
(median of --repeat): ``since=`` matching 1%, 50% and 99% of the rows, the first page, ``from=``,
``/stats``, and the console chart's arrivals per hour (a week). Writes
``bench/results/<time>-micro-<label>.json``. PYTHONPATH=<another checkout> measures that code with
this script (before/after).
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Appended: a PYTHONPATH given (another checkout's lyftr) comes first.
sys.path.append(str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, log  # noqa: E402
from bench.synthetic import synthetic_messages  # noqa: E402

START, DAYS = datetime(2025, 1, 1, tzinfo=UTC), 365


def since_matching(share):
    """A since= value that the synthetic timestamps (evenly spread) match ``share`` of."""
    moment = START + timedelta(days=DAYS * (1 - share))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def timed(call, repeat):
    started = time.perf_counter()
    call()
    cold = (time.perf_counter() - started) * 1000
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return {"cold_ms": round(cold, 3), "p50_ms": round(statistics.median(times), 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--label", default="run")
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args()

    from lyftr import create_app, store

    with tempfile.TemporaryDirectory(prefix="lyftr-micro-") as directory:
        url = args.database_url or f"sqlite:///{directory}/micro.db"
        app = create_app({"WEBHOOK_SECRET": "micro", "DATABASE_URL": url})
        client = app.test_client()
        result = {
            "label": args.label,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "lyftr": str(Path(store.__file__).resolve().parents[2]),
            "database": url.split(":", 1)[0],
            "messages": args.messages,
            "reads": {},
        }
        with app.app_context():
            started = time.perf_counter()
            stored = store.bulk_insert(synthetic_messages(args.messages))
            store.after_bulk_load()
            elapsed = time.perf_counter() - started
        result["seed_rows_per_s"] = round(stored / elapsed)
        log(f"seeded {stored} in {elapsed:.1f} s: {stored / elapsed:,.0f} rows/s")

        sender = client.get("/stats").get_json()["messages_per_sender"][0]["from"]
        reads = {
            "since_1pct": {"since": since_matching(0.01)},
            "since_50pct": {"since": since_matching(0.50)},
            "since_99pct": {"since": since_matching(0.99)},
            "first_page": {},
            "from": {"from": sender},
        }
        for name, query in reads.items():

            def read(query=query):
                response = client.get("/messages", query_string=query)
                assert response.status_code == 200, response.data
                return response.get_json()["total"]

            result["reads"][name] = {**timed(read, args.repeat), "total": read(), **query}
        result["reads"]["stats"] = timed(lambda: client.get("/stats"), args.repeat)
        week = [
            (datetime.now(UTC) - timedelta(hours=i)).strftime("%Y-%m-%dT%H") for i in range(168)
        ]
        with app.app_context():
            result["reads"]["arrivals_per_hour_week"] = timed(
                lambda: store.arrivals_per_hour(week), args.repeat
            )
        for name, read in result["reads"].items():
            log(f"{name:24} cold {read['cold_ms']:8.2f} ms  p50 {read['p50_ms']:8.2f} ms")

    path = (
        ROOT
        / "bench"
        / "results"
        / (f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-micro-{args.label}.json")
    )
    path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
