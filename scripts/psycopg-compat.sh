#!/usr/bin/env bash
# Runs psycopg's own test suite (vendored in third_party/psycopg-tests) twice
# against one throwaway PostgreSQL: directly, and through Sluice with a
# permit-all policy and masking off. Then compares the outcome of every test
# and prints how many behave identically. A test that behaves differently and
# is not listed, with its reason, in scripts/psycopg-compat.known fails the
# run (exit 1); so does a listed one that no longer differs (the list must
# stay true).
#
#   scripts/psycopg-compat.sh [PYTEST_ARGS...]     e.g. -k test_copy
#
# Environment: SLUICE_BIN (default target/debug/sluice, built if missing),
# PG_VERSION (15), PG_BIN, PSYCOPG_VENV (default ~/.cache/sluice/psycopg-venv:
# pytest, anyio, pproxy and psycopg, installed once), OUT_DIR (default
# target/psycopg-compat: JUnit reports, logs, the gateway's data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=../bench/lib.sh
source bench/lib.sh
log() { printf '[psycopg-compat %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 2
}

PG_VERSION=${PG_VERSION:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
[[ -x $PG_BIN/initdb ]] || die "no PostgreSQL at $PG_BIN (scripts/install-deps.sh installs it)"
OUT_DIR=${OUT_DIR:-$ROOT/target/psycopg-compat}
TESTS_DIR=$ROOT/third_party/psycopg-tests

# The psycopg version the vendored tests were taken with (see
# third_party/psycopg-tests/README.md), and the test tools they need.
PSYCOPG_PIN='psycopg[binary]==3.3.9'
VENV=${PSYCOPG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/psycopg-venv}
if ! "$VENV/bin/python" -c 'import psycopg, pytest, anyio, pproxy, pytest_timeout' 2>/dev/null; then
    log "creating the test virtualenv in $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$VENV/bin/pip" install --quiet "$PSYCOPG_PIN" 'pytest>=8,<9' 'pytest-timeout>=2,<3' 'anyio>=4,<5' 'pproxy>=2.7' ||
        die "pip install failed"
fi

SLUICE=${SLUICE_BIN:-$ROOT/target/debug/sluice}
if [[ ! -x $SLUICE ]]; then
    log "building sluice"
    cargo build --quiet --bin sluice
fi

rm -rf "$OUT_DIR"
mkdir -p "$OUT_DIR"
PG_DIR=$(mktemp -d /tmp/sluice-psycopg-compat.XXXXXX)
PGDATA_DIR=$PG_DIR/data
SOCK_DIR=$PG_DIR
[[ $EUID -eq 0 ]] && chown postgres "$PG_DIR"
chmod 755 "$PG_DIR"
GW_PID=
cleanup() {
    [[ -n $GW_PID ]] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap cleanup EXIT

PG_PORT=$(free_port)
GW_PORT=$(free_port)
APP_PW=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
# Two-phase commit tests need prepared transactions.
PG_EXTRA_CONF="max_prepared_transactions = 10"
start_pg_cluster "psycopg-compat"
# psycopg's suite creates extensions, types and roles: a superuser, the same
# one on both paths. Each run gets a database of its own, fresh.
pg_super -c "ALTER ROLE app_owner SUPERUSER" \
    -c "CREATE DATABASE direct OWNER app_owner" \
    -c "CREATE DATABASE through OWNER app_owner" >/dev/null

cat >"$OUT_DIR/permit-all.cedar" <<'CEDAR'
@id("permit-all")
permit(principal, action, resource);
CEDAR
cat >"$OUT_DIR/sluice.toml" <<TOML
[server]
listen = "127.0.0.1:$GW_PORT"
data_dir = "$OUT_DIR/sluice-data"

[policy]
files = ["$OUT_DIR/permit-all.cedar"]

[masking]
enabled = false

[[resource]]
name = "through"
kind = "postgres"
host = "127.0.0.1"
port = $PG_PORT
database = "through"
user = "app_owner"
password_env = "APP_DB_PASSWORD"
TOML
KEY=$("$SLUICE" keys create --config "$OUT_DIR/sluice.toml" --identity psycopg-tests --groups tests | tail -1)
APP_DB_PASSWORD=$APP_PW "$SLUICE" serve --config "$OUT_DIR/sluice.toml" >"$OUT_DIR/sluice.log" 2>&1 &
GW_PID=$!
wait_for "Sluice to listen on $GW_PORT" 60 port_open "$GW_PORT"

# run_suite NAME DSN: the suite against DSN, outcomes in $OUT_DIR/NAME.xml.
run_suite() {
    local name=$1 dsn=$2
    shift 2
    log "running psycopg's tests $name"
    # pytest exits 1 when tests fail: expected, the comparison decides.
    (cd "$TESTS_DIR" && PSYCOPG_TEST_DSN=$dsn "$VENV/bin/python" -m pytest \
        -q -o addopts= --timeout=${PSYCOPG_TEST_TIMEOUT:-60} -o cache_dir="$OUT_DIR/pytest-cache-$name" --junitxml="$OUT_DIR/$name.xml" \
        "$@" >"$OUT_DIR/$name.log" 2>&1) || true
    tail -n 1 "$OUT_DIR/$name.log" >&2
    [[ -s $OUT_DIR/$name.xml ]] || die "the $name run wrote no report (see $OUT_DIR/$name.log)"
}
shift_args=("$@")
run_suite direct "host=127.0.0.1 port=$PG_PORT dbname=direct user=app_owner password=$APP_PW" "${shift_args[@]}"
run_suite through-sluice "host=127.0.0.1 port=$GW_PORT dbname=through user=psycopg-tests password=$KEY" "${shift_args[@]}"

"$VENV/bin/python" scripts/psycopg-compat.py "$OUT_DIR/direct.xml" "$OUT_DIR/through-sluice.xml" \
    scripts/psycopg-compat.known
