#!/usr/bin/env bash
# `make run`: serve lyftr from the virtualenv for local development, on http://127.0.0.1:8000
# (BIND overrides it; the container binds 0.0.0.0:8000, gunicorn.conf.py's default), with SQLite
# under ./data/ unless DATABASE_URL says otherwise.
#
# With no WEBHOOK_SECRET in the environment the development secret "testsecret" is used, so the
# README's examples work as pasted. Anyone who knows it can post messages, so it is used only on a
# loopback address, with a warning on stderr; anything else needs a real WEBHOOK_SECRET.
# Notes go to stderr: stdout carries only the server's JSON log lines.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVELOPMENT_SECRET=testsecret
export BIND="${BIND:-127.0.0.1:8000}"
export DATABASE_URL="${DATABASE_URL:-sqlite:///./data/app.db}"

if [ -z "${WEBHOOK_SECRET:-}" ]; then
  case "$BIND" in
    127.*:* | localhost:* | "[::1]:"* | unix:*) ;;
    *)
      echo "lyftr: BIND=$BIND is not a loopback address: set WEBHOOK_SECRET to a real secret" \
        "(make run uses the development secret only on 127.0.0.1)" >&2
      exit 1
      ;;
  esac
  export WEBHOOK_SECRET="$DEVELOPMENT_SECRET"
  cat >&2 <<NOTE
lyftr: ***************************************************************************************
lyftr: WEBHOOK_SECRET is not set: using the DEVELOPMENT secret "$DEVELOPMENT_SECRET".
lyftr: Anyone who knows it can post messages. For trying lyftr on this machine only;
lyftr: set WEBHOOK_SECRET to a secret of your own for anything else.
lyftr: ***************************************************************************************
NOTE
fi
echo "lyftr: serving on http://$BIND (Ctrl-C stops)" >&2
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
