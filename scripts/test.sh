#!/usr/bin/env bash
# Installs missing dependencies, then runs the whole workspace's tests, then
# psycopg's own test suite directly and through Sluice (a subset of its
# modules by default; PSYCOPG_COMPAT_ALL=1 runs all of it, about an hour).
# Extra arguments are passed to `cargo test` (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo test --workspace --no-fail-fast "$@"

if [[ ${PSYCOPG_COMPAT_ALL:-0} == 1 ]]; then
    scripts/psycopg-compat.sh
else
    # The modules that exercise the wire protocol: connections, cursors
    # (client- and server-side), COPY, pipelines, prepared statements,
    # transactions and two-phase commit, notifications, errors; without the
    # tests psycopg marks slow (leak checks that repeat the same protocol).
    scripts/psycopg-compat.sh -m "not slow" \
        tests/test_connection.py tests/test_cursor.py tests/test_cursor_server.py \
        tests/test_copy.py tests/test_pipeline.py tests/test_generators.py \
        tests/test_prepared.py tests/test_transaction.py tests/test_tpc.py \
        tests/test_notify.py tests/test_errors.py tests/pq
fi
