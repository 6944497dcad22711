#!/usr/bin/env bash
# Runs Sluice in front of a throwaway local PostgreSQL with the embedded
# SQLite store, and prints the psql line to connect through it.
#
#   scripts/demo.sh            # Ctrl-C stops the gateway and removes the cluster
#
# Installs PostgreSQL from Debian's packages if it is missing. Everything the
# demo creates lives in a temp dir (the cluster) and .demo/ (config, store).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

log() { printf 'demo: %s\n' "$*" >&2; }

PG_BIN="${SLUICE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)}"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || ! command -v psql >/dev/null; then
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql postgresql-client
    PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

log "building sluice (release)"
cargo build --release --quiet --bin sluice
SLUICE="$ROOT/target/release/sluice"

PGDIR="$(mktemp -d /tmp/sluice-demo-pg.XXXXXX)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$PGDIR"
    as_pg=(runuser -u postgres --)
fi
cleanup() {
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
}
trap cleanup EXIT

PG_PORT="$(free_port)"
DB_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
"${as_pg[@]}" "$PG_BIN/initdb" -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
    -o "-p $PG_PORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
psql -X -q -h "$PGDIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 \
    -c "CREATE ROLE app_owner LOGIN PASSWORD '$DB_PASSWORD'" \
    -c "CREATE DATABASE app OWNER app_owner"
psql -X -q -h "$PGDIR" -p "$PG_PORT" -U app_owner -d app -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text NOT NULL, plan text NOT NULL);
INSERT INTO customers (name, email, plan) VALUES
  ('Ada Lovelace', 'ada@example.com', 'pro'),
  ('Grace Hopper', 'grace@example.com', 'team'),
  ('Edsger Dijkstra', 'edsger@example.com', 'free');
SQL

mkdir -p .demo
LISTEN_PORT="${SLUICE_DEMO_PORT:-6432}"
ADMIN_PORT="${SLUICE_DEMO_ADMIN_PORT:-6480}"
cat > .demo/sluice.toml <<TOML
[server]
listen = "127.0.0.1:$LISTEN_PORT"
data_dir = "sluice-data"
admin_listen = "127.0.0.1:$ADMIN_PORT"

[[resource]]
name = "app"
kind = "postgres"
host = "127.0.0.1"
port = $PG_PORT
database = "app"
user = "app_owner"
password_env = "APP_DB_PASSWORD"
tags = { env = "demo" }

# The same database as "production": agents' writes there wait for a DBA.
[[resource]]
name = "app-prod"
kind = "postgres"
host = "127.0.0.1"
port = $PG_PORT
database = "app"
user = "app_owner"
password_env = "APP_DB_PASSWORD"
tags = { env = "prod" }

[policy]
files = ["$ROOT/examples/policies/*.cedar"]
TOML

KEY="$("$SLUICE" keys create --config .demo/sluice.toml --identity demo-agent --groups agents | tail -1)"
DBA_KEY="$("$SLUICE" keys create --config .demo/sluice.toml --identity demo-dba --groups dba | tail -1)"
cat >&2 <<MSG

Sluice is starting on 127.0.0.1:$LISTEN_PORT in front of PostgreSQL on 127.0.0.1:$PG_PORT.
Connect through it with (the key is the agent's only credential):

  psql "host=127.0.0.1 port=$LISTEN_PORT dbname=app user=demo-agent password=$KEY"

Try: SELECT * FROM customers;          (allowed: agents may read; emails come back masked)
     DELETE FROM customers;            (denied: no WHERE clause)
     DROP TABLE customers;             (denied: agents may not drop)
     $SLUICE policy check --config .demo/sluice.toml --identity demo-agent --resource app "DELETE FROM customers"

Approvals: connect with dbname=app-prod and run
     UPDATE customers SET plan = 'pro' WHERE id = 1;   (held until a DBA approves)
then, in another terminal:
     SLUICE_KEY=$DBA_KEY $SLUICE approvals list --config .demo/sluice.toml
     SLUICE_KEY=$DBA_KEY $SLUICE approvals approve <id> --config .demo/sluice.toml
Audit: $SLUICE audit sessions --config .demo/sluice.toml, then audit replay <session>.
Ctrl-C here stops the gateway and the cluster.

MSG
APP_DB_PASSWORD="$DB_PASSWORD" "$SLUICE" serve --config .demo/sluice.toml
