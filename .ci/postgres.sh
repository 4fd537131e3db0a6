#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests of `cnnlab search` with many workers
# (tests/test_search_postgres.py). Idempotent: a second run finds the server up and only
# re-checks the database and user.
#
#   bash .ci/postgres.sh            # install (Debian packages), start on 127.0.0.1, create db + user
#   source /tmp/cnnlab-postgres.env # exports CNNLAB_TEST_POSTGRES_URL (the tests also read this file)
#
# Runs as root in CI: initdb and pg_ctl refuse root, so they run as the `postgres` user.
# Settings (environment): CNNLAB_PG_PORT (default 55432: not the system cluster's 5432, so a
# machine's own PostgreSQL is left alone), CNNLAB_PG_DIR (default /tmp/cnnlab-postgres),
# CNNLAB_PG_ENV (default /tmp/cnnlab-postgres.env).
set -euo pipefail

PORT="${CNNLAB_PG_PORT:-55432}"
PGDIR="${CNNLAB_PG_DIR:-/tmp/cnnlab-postgres}"
ENV_FILE="${CNNLAB_PG_ENV:-/tmp/cnnlab-postgres.env}"
DB=cnnlab_test
DB_USER=cnnlab
DB_PASSWORD=cnnlab-test   # a local test server bound to 127.0.0.1 only; not a secret

as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

# 1. The server binaries (Debian's postgresql package; its own cluster is not used).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: PostgreSQL is not installed and this is not root: run as root or apt-get install postgresql" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq postgresql >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
fi
BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

# 2. A data folder of our own under /tmp, owned by postgres.
if [ ! -f "$PGDIR/PG_VERSION" ]; then
  mkdir -p "$PGDIR"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$PGDIR"
  chmod 700 "$PGDIR"
  as_postgres "'$BIN/initdb' -D '$PGDIR' -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null"
fi

# 3. Start it on 127.0.0.1:$PORT unless it is already up (socket in the data folder, not /run).
if ! "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT"; then
  as_postgres "'$BIN/pg_ctl' -D '$PGDIR' -l '$PGDIR/server.log' -w -t 60 \
    -o \"-c listen_addresses=127.0.0.1 -p $PORT -k '$PGDIR' -c max_connections=100\" start >/dev/null"
fi
"$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || { echo "postgres.sh: server did not start; see $PGDIR/server.log" >&2; exit 1; }

# 4. The tests' user and database (created once).
PSQL="'$BIN/psql' -h '$PGDIR' -p $PORT -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA"
if [ "$(as_postgres "$PSQL -c \"SELECT 1 FROM pg_roles WHERE rolname='$DB_USER'\"")" != 1 ]; then
  as_postgres "$PSQL -c \"CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'\""
fi
if [ "$(as_postgres "$PSQL -c \"SELECT 1 FROM pg_database WHERE datname='$DB'\"")" != 1 ]; then
  as_postgres "$PSQL -c \"CREATE DATABASE $DB OWNER $DB_USER\""
fi

URL="postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$PORT/$DB"
printf 'export CNNLAB_TEST_POSTGRES_URL=%s\n' "$URL" > "$ENV_FILE"
echo "export CNNLAB_TEST_POSTGRES_URL=$URL"
