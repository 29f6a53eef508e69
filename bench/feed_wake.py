#!/usr/bin/env python3
"""How soon a long poll (/feed?wait=) answers after another app (another host) commits a message.

    .venv/bin/python bench/feed_wake.py --database-url postgresql+psycopg://... [--label L]

Two apps on one database, in one process (each with its own engine and, on PostgreSQL, listener):
a reader's /feed?wait=30 in a thread, then a writer's /webhook; the time from the writer's 200 to
the reader's answer, --rounds times. Writes bench/results/<time>-feed-wake-<label>.json.
PYTHONPATH=<another checkout> measures that code (before/after).
"""

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, log  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--label", default="run")
    args = parser.parse_args()

    from lyftr import create_app

    config = {"WEBHOOK_SECRET": "wake", "DATABASE_URL": args.database_url}
    reader, writer = create_app(config).test_client(), create_app(config).test_client()
    after = reader.get("/feed?limit=1000&wait=0").get_json()["next_after"]
    while page := reader.get(f"/feed?after={after}&limit=1000").get_json()["data"]:
        after = page[-1]["seq"]
    delays = []
    for _ in range(args.rounds):
        answered = {}

        def poll(after=after, answered=answered):
            answered["page"] = reader.get(f"/feed?after={after}&wait=30").get_json()
            answered["at"] = time.monotonic()

        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.3)  # the reader is waiting
        body = json.dumps(
            {"message_id": uuid.uuid4().hex, "from": "+1", "to": "+2", "ts": "2025-01-01T00:00:00Z"}
        ).encode()
        signature = hmac.new(b"wake", body, hashlib.sha256).hexdigest()
        response = writer.post(
            "/webhook",
            data=body,
            headers={"X-Signature": signature, "Content-Type": "application/json"},
        )
        committed = time.monotonic()
        assert response.status_code == 200
        waiter.join(60)
        delays.append((answered["at"] - committed) * 1000)
        after = answered["page"]["next_after"]
    result = {
        "label": args.label,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": args.database_url.split(":", 1)[0],
        "rounds": args.rounds,
        "wake_ms": {
            "p50": round(statistics.median(delays), 2),
            "max": round(max(delays), 2),
            "all": [round(d, 2) for d in delays],
        },
    }
    log(f"wake after commit: p50 {result['wake_ms']['p50']} ms, max {result['wake_ms']['max']} ms")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = ROOT / "bench" / "results" / f"{stamp}-feed-wake-{args.label}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
