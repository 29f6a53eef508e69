#!/usr/bin/env python3
"""Bulk loads, end to end: ``flask seed``, ``flask export`` and ``flask import`` as an operator runs
them, each timed (wall and CPU) on new databases.

    .venv/bin/python bench/bulk_load.py [--messages 1000000] [--postgres-url postgresql+psycopg://...]

1. ``flask seed --count N`` into a new SQLite file;
2. ``flask export`` of it to an NDJSON file;
3. ``flask import`` of that file into another new SQLite file;
4. with --postgres-url: ``flask export | flask import -`` from the first SQLite file into a new
   schema of that PostgreSQL database (the move of issue 19), dropped afterwards.

The commands are the checkout's (``PYTHONPATH=<other checkout>`` measures another's code). Writes
bench/results/<time>-bulk-<label>.json.
"""

import argparse
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import BIN, ROOT, log  # noqa: E402
from bench.database import open_database  # noqa: E402


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(shell_command, env):
    """Run ``shell_command``; its wall and CPU seconds (every process it started) and its last
    line of output."""
    cpu, started = _children_cpu(), time.perf_counter()
    result = subprocess.run(
        shell_command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{shell_command} failed:\n{result.stdout}\n{result.stderr[-2000:]}")
    says = (result.stdout.strip().splitlines() or [""])[-1]
    return {"wall_s": round(wall, 2), "cpu_s": round(_children_cpu() - cpu, 2), "says": says}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    flask = f"{BIN / 'flask'} --app wsgi"
    workdir = Path(tempfile.mkdtemp(prefix="lyftr-bulk-"))
    base_env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    source = {**base_env, "DATABASE_URL": f"sqlite:///{workdir / 'source.db'}"}
    target = {**base_env, "DATABASE_URL": f"sqlite:///{workdir / 'target.db'}"}
    export = workdir / "messages.ndjson"
    n = args.messages
    results = {
        "label": args.label,
        "messages": n,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "pythonpath": os.environ.get("PYTHONPATH"),
    }
    try:
        log(f"seed {n:,} into a new SQLite file")
        results["seed"] = timed(f"{flask} seed --count {n} --seed 1", source)
        log("export")
        results["export"] = timed(f"{flask} export > {export}", source)
        log("import into a new SQLite file")
        results["import"] = timed(f"{flask} import {export}", target)
        if args.postgres_url:
            results["move_to_postgresql"] = move(flask, source, base_env, args.postgres_url)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for step in ("seed", "export", "import", "move_to_postgresql"):
        if step in results:
            results[step]["rows_per_s"] = round(n / results[step]["wall_s"])
            log(f"{step}: {results[step]}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = ROOT / "bench" / "results" / f"{stamp}-bulk{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {out}")


def move(flask, source, base_env, postgres_url):
    """export | import from the SQLite source into a new schema of ``postgres_url``."""
    database = open_database(postgres_url)
    database.create()
    try:
        log(f"export | import into {database}")
        command = (
            f"DATABASE_URL={shlex.quote(source['DATABASE_URL'])} {flask} export | "
            f"DATABASE_URL={shlex.quote(database.url)} {flask} import -"
        )
        return timed(command, base_env)
    finally:
        database.drop()


if __name__ == "__main__":
    sys.exit(main())
