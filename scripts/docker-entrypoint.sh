#!/bin/sh
# Container entrypoint: apply the schema migrations, then exec the command (Gunicorn by default).
# A database that cannot be reached yet does not stop the container: the server starts anyway
# (live 200, ready 503) and its workers apply the migrations once the database answers. Every line
# stays JSON: a failure's traceback is summed up in one JSON line.
set -e
errors=$(mktemp)
# Without PROMETHEUS_MULTIPROC_DIR: that directory is made by gunicorn.conf.py, which has not run
# yet (prometheus_client fails on a missing one), and a one-off command's metrics are not wanted.
if ! env -u PROMETHEUS_MULTIPROC_DIR flask --app wsgi db upgrade 2>"$errors"; then
  python - "$errors" <<'PY'
import json, sys
from datetime import datetime, timezone

with open(sys.argv[1], encoding="utf-8", errors="replace") as errors:
    # The last exception's own line with its indented continuation (psycopg's tab-indented hints),
    # not SQLAlchemy's "(Background on this error at: ...)" after it.
    lines = []
    for line in errors.read().splitlines():
        if not line.strip() or line.startswith("(Background"):
            continue
        if line[0].isspace():
            lines.append(line.strip())
        else:
            lines = [line]
print(json.dumps({
    "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    "level": "WARNING",
    "logger": "lyftr.entrypoint",
    "msg": "flask db upgrade failed; the server starts and applies the migrations once the database answers",
    "error": " ".join(lines),
}), flush=True)
PY
fi
rm -f "$errors"
exec "$@"
