#!/usr/bin/env bash
# Makes a real kube-apiserver (and etcd) available for the Kubernetes tests,
# on Debian 12 as root, offline apart from the Debian mirror:
#
#   scripts/install-kube.sh        # prints the directory holding kube-apiserver
#
# No Debian package ships kube-apiserver, but bookworm's `kubernetes`
# source package builds it with Debian's Go 1.19 and its vendored modules
# (no module proxy needed). The build (about 4 minutes on 2 cores) is cached
# in ${SLUICE_CACHE:-~/.cache/sluice}/kube, outside the repository, so only
# the first run on a machine pays for it. etcd comes from `etcd-server`.
set -euo pipefail

CACHE=${SLUICE_CACHE:-$HOME/.cache/sluice}/kube
BIN=$CACHE/bin
# Bumped whenever the build changes, so a stale cached binary is rebuilt.
BUILD_ID="kube-apiserver 1.20 + reflect2 1.0.2"
log() { printf '[install-kube] %s\n' "$*" >&2; }

# Debian's kubectl 1.20 (kubernetes-client), unpacked next to it without
# installing it (the machine may have a newer /usr/bin/kubectl): the tests
# drive both.
if [[ ! -x $BIN/kubectl-1.20 ]]; then
    DL=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kubectl.XXXXXX")
    if (cd "$DL" && apt-get download -q kubernetes-client >&2 2>/dev/null && dpkg -x ./kubernetes-client_*.deb x); then
        mkdir -p "$BIN"
        install -m 0755 "$DL/x/usr/bin/kubectl" "$BIN/kubectl-1.20"
    else
        log "could not fetch Debian's kubernetes-client: the kubectl 1.20 test is skipped (apt-get update first?)"
    fi
    rm -rf "$DL"
fi

if [[ -x $BIN/kube-apiserver ]] && "$BIN/kube-apiserver" --version >/dev/null 2>&1 &&
    [[ $(cat "$BIN/BUILD_ID" 2>/dev/null) == "$BUILD_ID" ]] && command -v etcd >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi
[[ $EUID -eq 0 ]] || { log "run as root (apt-get), or put kube-apiserver in $BIN yourself"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
SRC_LIST=/etc/apt/sources.list.d/sluice-deb-src.sources
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm ($SRC_LIST)"
    cat >"$SRC_LIST" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
log "installing golang-1.19-go, etcd-server and the source tools"
apt-get update -q >&2
apt-get install -y -q --no-install-recommends golang-1.19-go etcd-server dpkg-dev make rsync \
    golang-github-modern-go-reflect2-dev >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kube-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
log "fetching the kubernetes source package into $WORK"
(cd "$WORK" && apt-get source -q --download-only kubernetes >&2 && dpkg-source -x --no-check ./*.dsc src >&2)

# Kubernetes 1.20 vendors reflect2 1.0.1, whose map iteration faults under
# Go >= 1.18 (the API server dies serialising the first map it returns);
# 1.0.2 fixes exactly that with the same API. Debian packages 1.0.2.
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[[ -d $REFLECT2 ]] || { log "$REFLECT2 missing (golang-github-modern-go-reflect2-dev)"; exit 1; }
log "replacing the vendored reflect2 1.0.1 with Debian's 1.0.2"
rm -rf "$WORK/src/vendor/github.com/modern-go/reflect2"
cp -r "$REFLECT2" "$WORK/src/vendor/github.com/modern-go/reflect2"
rm -f "$WORK/src/vendor/github.com/modern-go/reflect2/go.mod" "$WORK/src/vendor/github.com/modern-go/reflect2/go.sum"

log "building kube-apiserver (GOFLAGS=-mod=vendor GOPROXY=off, Go 1.19)"
(
    cd "$WORK/src"
    export PATH=/usr/lib/go-1.19/bin:$PATH GOFLAGS=-mod=vendor GOPROXY=off GOCACHE=$CACHE/go-build
    make WHAT=cmd/kube-apiserver >&2
)
mkdir -p "$BIN"
install -m 0755 "$WORK/src/_output/bin/kube-apiserver" "$BIN/kube-apiserver"
echo "$BUILD_ID" >"$BIN/BUILD_ID"
"$BIN/kube-apiserver" --version >&2
command -v etcd >/dev/null 2>&1 || { log "etcd not found after installing etcd-server"; exit 1; }
echo "$BIN"
