#!/usr/bin/env bash
# Installs missing dependencies, then runs the whole workspace's tests, the
# S3 tests against Garage (SLUICE_SKIP_GARAGE=1 skips them), then
# psycopg's own test suite directly and through Sluice (without its slow
# tests by default; PSYCOPG_COMPAT_ALL=1 runs all of it, about an hour).
# Extra arguments are passed to `cargo test` (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo test --workspace --no-fail-fast "$@"
# The S3 tests again, against Garage (built once, ~7 min, cached).
if [[ ${SLUICE_SKIP_GARAGE:-0} != 1 ]]; then
    scripts/test-s3-garage.sh "$@"
fi

if [[ ${PSYCOPG_COMPAT_ALL:-0} == 1 ]]; then
    scripts/psycopg-compat.sh
else
    # Without the tests psycopg marks slow (leak checks repeating the same
    # protocol), timing-based or flakey, and the modules that test the
    # client library alone (type checking, socket waiting): about 6 minutes.
    scripts/psycopg-compat.sh -m "not slow and not timing and not flakey" \
        --ignore=tests/test_typing.py --ignore=tests/test_waiting.py \
        --ignore=tests/test_waiting_async.py
fi
