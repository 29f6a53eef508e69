#!/usr/bin/env bash
# `make run` (and `make run-demo`): serve lyftr from the virtualenv for local development, on http://127.0.0.1:8000
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

loopback_only() {
  case "$BIND" in
    127.*:* | localhost:* | "[::1]:"* | unix:*) ;;
    *)
      echo "lyftr: BIND=$BIND is not a loopback address: $1" >&2
      exit 1
      ;;
  esac
}

# `make run-demo` (--demo): every provider on, with scripts/demo.env's development values for the
# variables not already set.
if [ "${1:-}" = "--demo" ]; then
  loopback_only "make run-demo's development secrets are for 127.0.0.1 only"
  while IFS='=' read -r name value; do
    case "$name" in '' | '#'*) continue ;; esac
    if [ -z "${!name:-}" ]; then export "$name=$value"; fi
  done < scripts/demo.env
  echo "lyftr: demo mode: WhatsApp, Twilio and Standard Webhooks on, with the development" \
    "values of scripts/demo.env" >&2
fi

if [ -z "${WEBHOOK_SECRET:-}" ]; then
  loopback_only "set WEBHOOK_SECRET to a real secret (make run uses the development secret only on 127.0.0.1)"
  export WEBHOOK_SECRET="$DEVELOPMENT_SECRET"
  cat >&2 <<NOTE
lyftr: ***************************************************************************************
lyftr: WEBHOOK_SECRET is not set: using the DEVELOPMENT secret "$DEVELOPMENT_SECRET".
lyftr: Anyone who knows it can post messages. For trying lyftr on this machine only;
lyftr: set WEBHOOK_SECRET to a secret of your own for anything else.
lyftr: ***************************************************************************************
NOTE
fi
case "$BIND" in
  unix:*) echo "lyftr: serving on $BIND (Ctrl-C stops)" >&2 ;;
  *) echo "lyftr: serving on http://$BIND: the console is at http://$BIND/ui (Ctrl-C stops)" >&2 ;;
esac
exec .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app
