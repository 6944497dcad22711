#!/usr/bin/env bash
# Installs what a bare Debian 12 machine (Rust toolchain already present) lacks
# to build and test Sluice. Idempotent: does nothing when everything is there.
#
# Note: Debian's `postgresql` package creates and starts a 'main' cluster on
# port 5432. It is harmless; the tests never use it (sluice-testkit starts its
# own throwaway servers on free ports).
set -euo pipefail

APT_PACKAGES=(postgresql postgresql-client pgbouncer clang libclang-dev python3-pip python3-venv
    curl openssl etcd-server)

log() { printf 'install-deps: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for pkg in "${APT_PACKAGES[@]}"; do
        pkg_installed "$pkg" || missing+=("$pkg")
    done
else
    # Not a dpkg system: only check for the tools themselves.
    command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
    command -v pgbouncer >/dev/null 2>&1 || missing+=(pgbouncer)
    command -v clang >/dev/null 2>&1 || missing+=(clang)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing packages (${missing[*]}) and no apt-get: install them by hand"
        exit 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq "${missing[@]}"
else
    log "apt packages present"
fi

# PostgreSQL server binaries (initdb, pg_ctl, postgres) used by sluice-testkit.
if [ -z "${SLUICE_PG_BIN:-}" ] && [ ! -x /usr/lib/postgresql/15/bin/initdb ] \
    && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "warning: no initdb under /usr/lib/postgresql/*/bin; set SLUICE_PG_BIN"
fi

PYTHON=python3
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "python3 not found"
    exit 1
fi
# pip_install MODULE SPEC: installs SPEC when MODULE does not import.
pip_install() {
    local module=$1 spec=$2
    if "$PYTHON" -c "import $module" >/dev/null 2>&1; then
        log "$module present"
        return 0
    fi
    log "installing $spec for $("$PYTHON" -c 'import sys; print(sys.executable)')"
    local pip_log
    pip_log="$(mktemp)"
    if ! "$PYTHON" -m pip install --quiet "$spec" 2>"$pip_log"; then
        if grep -q 'externally-managed-environment' "$pip_log"; then
            "$PYTHON" -m pip install --quiet --break-system-packages "$spec"
        else
            cat "$pip_log" >&2
            rm -f "$pip_log"
            exit 1
        fi
    fi
    rm -f "$pip_log"
    "$PYTHON" -c "import $module" || { log "$module still not importable"; exit 1; }
}
pip_install psycopg 'psycopg[binary]'
# The Python Kubernetes client, driven through Sluice by the Kubernetes tests.
pip_install kubernetes kubernetes

# aws-cli and boto3, unchanged clients of the S3 tests.
pip_install awscli awscli
pip_install boto3 boto3

# s3s-fs 0.14.1, the S3 server (it checks SigV4) behind Sluice in the S3
# tests: built once (~85 s), cached outside the repository.
S3S_FS_ROOT="${SLUICE_CACHE:-$HOME/.cache/sluice}/s3s-fs"
if [ ! -x "$S3S_FS_ROOT/bin/s3s-fs" ]; then
    log "building s3s-fs 0.14.1 into $S3S_FS_ROOT"
    cargo install s3s-fs --version 0.14.1 --features binary --locked \
        --root "$S3S_FS_ROOT" --quiet
else
    log "s3s-fs present"
fi

# kubectl: the machine's own if it has one (a newer one), else Debian's 1.20.
if ! command -v kubectl >/dev/null 2>&1; then
    log "installing kubectl (kubernetes-client)"
    "${SUDO[@]}" apt-get install -y -qq kubernetes-client
fi
# kube-apiserver for the Kubernetes tests: built once from Debian's source
# package, cached outside the repository.
"$(dirname "$0")/install-kube.sh" >/dev/null

if ! command -v cargo >/dev/null 2>&1; then
    log "warning: cargo not found on PATH (the Rust toolchain is expected to be installed)"
fi
