#!/usr/bin/env bash
# Serve lyftr on http://localhost:8000 from the virtualenv, with SQLite under ./data/.
# With no WEBHOOK_SECRET in the environment, a random one is made once and kept in ./.webhook_secret
# (ignored by git), so the service is usable on a fresh machine with no setup.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${WEBHOOK_SECRET:-}" ]; then
  if [ ! -s .webhook_secret ]; then
    (umask 077 && .venv/bin/python -c 'import secrets; print(secrets.token_hex(32))' > .webhook_secret)
    echo "lyftr: created a random webhook secret in .webhook_secret" >&2
  fi
  WEBHOOK_SECRET=$(cat .webhook_secret)
  export WEBHOOK_SECRET
  echo "lyftr: WEBHOOK_SECRET is read from .webhook_secret. Sign and send a message with:" >&2
  echo "         WEBHOOK_SECRET=\$(cat .webhook_secret) .venv/bin/flask --app wsgi send" >&2
fi
export DATABASE_URL="${DATABASE_URL:-sqlite:///./data/app.db}"
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
