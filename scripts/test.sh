#!/usr/bin/env bash
# Installs missing dependencies, then runs the whole workspace's tests.
# Extra arguments are passed to `cargo test` (e.g. `-- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo test --workspace --no-fail-fast "$@"
