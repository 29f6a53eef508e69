"""The results of a run: the machine it ran on, the targets judged, the table printed on stdout
and the JSON written to bench/results/ (latest*.json and a timestamped copy)."""

import json
import os
import platform
import re
import subprocess
from datetime import UTC, datetime

from bench.common import ROOT, log

RESULTS = ROOT / "bench" / "results"

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
    "since_1pct": 10,
    "since_half": 10,
    "since_99pct": 10,
    "q_rare": 10,
    "cursor_deep": 10,
    "record": 10,
    "feed_page": 10,
    "console_messages": 10,
    "console_overview": 10,
    "console_record": 10,
    "console_sender": 10,
    "q_common": 50,
    "q_commonest": None,
    "offset_half": 100,
}


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
        targets["ingest p99 < 50 ms during a purge (worst 5 s round)"] = (
            purge["ingest_p99_ms_worst_round"] < 50 and not purge["ingest_non_2xx"]
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
            cold = f"cold={query['cold_ms']}ms  " if query.get("cold_ms") is not None else ""
            total = f"total={query['total']}  " if query["total"] is not None else ""
            out.append(row(name, query, f"{cold}{total}{query['path'][:60]}"))
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
