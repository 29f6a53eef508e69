#!/usr/bin/env bash
# The contract's evaluation, end to end, against the container: make up, wait, check, make down.
set -euo pipefail
cd "$(dirname "$0")/.."
export WEBHOOK_SECRET=${WEBHOOK_SECRET:-testsecret} DATABASE_URL=sqlite:////data/app.db
make up
trap 'make down' EXIT
sleep 10
LOGS_CMD="docker compose logs api" ./scripts/evaluate.sh http://localhost:8000
