#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with user postgres (trust auth) and a
# database "test", as the PostgreSQL test tier expects. Starts the machine's cluster if it is down,
# installs Debian's postgresql package (as root) if there is none. Exits non-zero if it can't.
set -euo pipefail
HOST=127.0.0.1
PORT=5432
DATABASE=test

say() { echo "ensure-postgres: $*" >&2; }
listening() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }
wait_listening() {
  for _ in $(seq 1 60); do listening && return 0; sleep 0.5; done
  return 1
}

if ! listening; then
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    [ "$(id -u)" = 0 ] || { say "no PostgreSQL installed and not root: cannot install it"; exit 1; }
    say "installing Debian's postgresql"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$version main"; then
    pg_createcluster "$version" main >/dev/null
  fi
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q "^host all postgres 127.0.0.1/32 trust" "$hba"; then
    # The tests connect over TCP as postgres without a password: trust on loopback only.
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  fi
  say "starting cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_listening || { say "PostgreSQL did not start listening on $HOST:$PORT"; exit 1; }
fi

psql_() { psql -h "$HOST" -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
if ! psql_ -d postgres -c "SELECT 1" >/dev/null; then
  say "PostgreSQL on $HOST:$PORT refuses user postgres without a password"
  exit 1
fi
if [ "$(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DATABASE'")" != 1 ]; then
  psql_ -d postgres -c "CREATE DATABASE $DATABASE" >/dev/null
fi
say "ready: postgresql://postgres@$HOST:$PORT/$DATABASE"
