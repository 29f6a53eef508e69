#!/usr/bin/env bash
# `make evaluate`: the contract's evaluation (scripts/evaluate.sh) against a server of its own, on a
# free local port with a new database in a temporary directory, removed afterwards: the checks
# write messages, and they do not belong in the database `make run` serves.
# With BASE_URL set (`make evaluate BASE_URL=http://host:8000`), that server is evaluated instead,
# and the messages the checks write stay in its database.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${BASE_URL:-}" ]; then
  echo "lyftr: evaluating $BASE_URL: the checks store test messages in its database" >&2
  exec ./scripts/evaluate.sh "$BASE_URL"
fi

workdir=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export BIND="127.0.0.1:$port" DATABASE_URL="sqlite:///$workdir/app.db" WEBHOOK_SECRET=testsecret
unset API_TOKEN
./scripts/run.sh >"$workdir/server.log" 2>"$workdir/server.err" &
server=$!
stop() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  rm -rf "$workdir"
}
trap stop EXIT
for _ in $(seq 1 100); do
  curl -sf "http://$BIND/health/live" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$workdir/server.err" >&2; exit 1; }
  sleep 0.2
done
echo "lyftr: evaluating a server of its own on http://$BIND (database in $workdir, removed after)" >&2
LOGS_CMD="cat $workdir/server.log" ./scripts/evaluate.sh "http://$BIND"
