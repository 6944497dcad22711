#!/usr/bin/env bash
# Runs the S3 tests (crates/sluice/tests/s3) against Garage 2.5.0, a
# production-grade S3 store, instead of s3s-fs. Builds Garage once (~7 min
# on 2 cores), cached outside the repository. Extra arguments go to
# `cargo test` (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
GARAGE_ROOT="${SLUICE_CACHE:-$HOME/.cache/sluice}/garage"
if [ ! -x "$GARAGE_ROOT/bin/garage" ]; then
    echo "test-s3-garage: building garage 2.5.0 into $GARAGE_ROOT" >&2
    cargo install garage --version 2.5.0 --locked --root "$GARAGE_ROOT" --quiet
fi
SLUICE_S3_BACKEND=garage SLUICE_GARAGE="$GARAGE_ROOT/bin/garage" \
    cargo test -p sluice --test s3 "$@"
