"""The phases of a run: the ingest and /health/live rounds (and their medians), WhatsApp
batches with ingest beside them, ``flask seed`` up to N messages, the read queries at that size,
and a purge with ingest beside it."""

import statistics
import subprocess
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

from bench.common import BIN, ROOT, log
from bench.load import (
    BatchPoster,
    get_json,
    http_get,
    ingest,
    keep_lines,
    measure,
    webhook_counts,
    whatsapp_batches,
    whatsapp_stored,
    write_bodies,
    wrk,
)

# Words of the seeded texts (bench/synthetic.py): a rare one (about 10 rows per million), a common
# one (about one message in ten) and the most common one (most messages).
RARE_WORD = "quixotic"
COMMON_WORD = "hello"
COMMONEST_WORD = "the"

# Bodies are made for this many requests per second of an ingest phase; past them wrk cycles
# through them again (duplicates, which the phase's outcome counts then show).
EXPECTED_MAX_RPS = 4000

# WhatsApp batches: the sizes measured, and how many pre-signed batches of each are made at most
# (a 1,000-message batch is about 200 KB; the phase stops early if they run out).
BATCH_SIZES = (1, 100, 1000)
BATCH_POOL = {1: 5000, 100: 1000, 1000: 150}


def percentile(sorted_values, fraction):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-int(fraction * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def ingest_phase(server, database, workdir, bodies, run_id, load):
    """New messages, the same ones again (duplicates), then GET /health/live: one round per file
    of new bodies (--repeat of them); each number the median over the rounds."""
    repeat = len(bodies)
    runs = {"ingest_new": [], "ingest_duplicates": [], "health_live": []}
    for r, path in enumerate(bodies):
        log(
            f"round {r + 1}/{repeat}: new messages, {load['connections']} connections, "
            f"{load['duration']}s"
        )
        runs["ingest_new"].append(ingest(server, path, expect="created", **load))
        sent = database.stored_ids(f"{run_id}r{r}")
        duplicates = workdir / f"duplicates{r}.tsv"
        keep_lines(path, duplicates, sent)
        log(f"round {r + 1}/{repeat}: duplicates ({len(sent)} bodies again)")
        runs["ingest_duplicates"].append(ingest(server, duplicates, expect="duplicate", **load))
        log(f"round {r + 1}/{repeat}: GET /health/live")
        runs["health_live"].append(measure(server, server.base + "/health/live", **load))
        for name in ("ingest_new", "ingest_duplicates"):
            runs[name][-1]["ratio_to_live"] = round(
                runs[name][-1]["rps"] / runs["health_live"][-1]["rps"], 3
            )
    return {name: median_of(values) for name, values in runs.items()}


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


def _ts_at(server, offset):
    """The ts of the message at ``offset`` in the list's order (ts, then message_id)."""
    page = get_json(server.base, f"/messages?limit=1&offset={max(offset, 0)}")
    return page["data"][0]["ts"] if page["data"] else None


def queries(server, messages):
    stats = get_json(server.base, "/stats")
    top_sender = stats["messages_per_sender"][0]["from"]
    last = datetime.strptime(stats["last_message_ts"][:19], "%Y-%m-%dT%H:%M:%S")
    since = (last - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    total = stats["total_messages"]
    middle = total // 2
    middle_page = get_json(server.base, f"/messages?limit=1&offset={max(middle - 1, 0)}")
    cursor = middle_page.get("next_cursor")
    middle_id = middle_page["data"][0]["message_id"] if middle_page["data"] else "none"
    middle_ts = middle_page["data"][0]["ts"] if middle_page["data"] else None
    # Reading the record gives it (and what arrived before it) its feed position if it had none.
    middle_seq = get_json(server.base, f"/messages/{urllib.parse.quote(middle_id)}").get("seq")
    # since= matching about 1%, half and 99% of the rows: the exact total counts them (the
    # issue's 10 ms goal at 10M), from the hour counts plus one hour's rows.
    since_share = {
        "since_1pct": _ts_at(server, total - total // 100),
        "since_half": middle_ts,
        "since_99pct": _ts_at(server, total // 100),
    }
    paths = {
        "stats": "/stats",
        "first_page": "/messages",
        "from": "/messages?" + urllib.parse.urlencode({"from": top_sender}),
        "since": "/messages?" + urllib.parse.urlencode({"since": since}),
        **{
            name: "/messages?" + urllib.parse.urlencode({"since": ts or since})
            for name, ts in since_share.items()
        },
        "q_rare": f"/messages?q={RARE_WORD}",
        "q_common": f"/messages?q={COMMON_WORD}",
        "q_commonest": f"/messages?q={COMMONEST_WORD}",
        "offset_half": f"/messages?offset={middle}",
        "cursor_deep": "/messages?" + urllib.parse.urlencode({"cursor": cursor or ""}),
        "record": f"/messages/{urllib.parse.quote(middle_id)}",
        "feed_page": f"/feed?after={middle_seq or 0}&limit=1000",
        # The console's pages (the bench server has no API_TOKEN: no login).
        "console_messages": "/ui",
        "console_overview": "/ui/overview",
        "console_record": f"/ui/messages/{urllib.parse.quote(middle_id)}",
        "console_sender": f"/ui/senders/{urllib.parse.quote(top_sender)}",
    }
    totals = {}
    for name, path in paths.items():
        if path.startswith("/ui"):
            totals[name] = None
            continue
        body = get_json(server.base, path)
        totals[name] = body.get("total", body.get("total_messages", len(body.get("data", []))))
    return paths, totals


def cold_read(server, path):
    """Milliseconds of the first GET of ``path`` by a new server (its processes' caches empty;
    the operating system's file cache is not emptied)."""
    server.stop()
    server.start()
    started = time.perf_counter()
    status, _ = http_get(server.base, path)
    elapsed = (time.perf_counter() - started) * 1000
    return round(elapsed, 2) if status == 200 else None


def read_phase(server, messages, duration, cold=True):
    """wrk with 1 connection on each read query in turn (``queries``): its latencies, its path and
    the total it answers; with ``cold``, first the time of its first request to a new server."""
    paths, totals = queries(server, messages)
    results = {}
    for name, path in paths.items():
        log(f"GET {path}")
        cold_ms = cold_read(server, path) if cold else None
        result = measure(server, server.base + path, duration=duration, connections=1, threads=1)
        result.update(path=path, total=totals[name], cold_ms=cold_ms)
        results[name] = result
    return results


def purge_phase(server, workdir, secret, run_id, rng, load, control_rounds=0):
    """`flask purge` of everything stored so far, with /webhook ingest (new messages) beside it in
    wrk rounds until it ends: how long it takes, and ingest's latency meanwhile. First, as the
    control, ``control_rounds`` of the same ingest with no purge beside it."""
    cutoff = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    before = get_json(server.base, "/stats")["total_messages"]

    def ingest_round(name):
        path = workdir / f"{name}.tsv"
        write_bodies(path, secret, f"{run_id}{name}", int(EXPECTED_MAX_RPS * 5), rng)
        return ingest(server, path, expect="created", **{**load, "duration": 5})

    log(f"control: {control_rounds} rounds of /webhook ingest, no purge")
    alone = [ingest_round(f"alone{n}") for n in range(control_rounds)]
    log(f"purge of {before} messages, /webhook ingest beside it")
    command = [str(BIN / "flask"), "--app", "wsgi", "purge", "--before", cutoff]
    started = time.perf_counter()
    purger = subprocess.Popen(
        command, cwd=ROOT, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    rounds = []
    while purger.poll() is None:
        rounds.append(ingest_round(f"p{len(rounds)}"))
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
        "ingest_p99_ms_rounds": [r["p99_ms"] for r in rounds],
        "ingest_p50_ms_median": statistics.median(r["p50_ms"] for r in rounds) if rounds else None,
        "ingest_non_2xx": sum(r["non_2xx"] for r in rounds),
        "ingest_alone_p99_ms_rounds": [r["p99_ms"] for r in alone],
        "ingest_alone_rps_median": statistics.median(r["rps"] for r in alone) if alone else None,
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
