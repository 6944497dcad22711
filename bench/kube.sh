#!/usr/bin/env bash
# Kubernetes through Sluice against the same API server directly, in one run:
#
#   bench/kube.sh                 # writes the "Kubernetes" section of BENCHMARKS.md
#   OUTPUT=/tmp/k.md bench/kube.sh
#
# 1. kubectl-like GETs of one ConfigMap (HTTPS, keep-alive) at 1 and 8
#    concurrent clients for SECONDS each: requests/s and p50/p99 latency,
#    direct and through Sluice (audit on, masking on, the agent masked).
# 2. A list of about 50 MB (ConfigMaps of ~900 KB each) read once directly
#    and once through Sluice by a masked identity: time, and Sluice's peak
#    RSS before and after (VmHWM), which shows the list is streamed item by
#    item rather than held.
#
# Needs kube-apiserver (scripts/install-kube.sh), etcd, kubectl, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

SECONDS_EACH=${SECONDS_EACH:-10}
LIST_ITEMS=${LIST_ITEMS:-56}
OUTPUT=${OUTPUT:-BENCHMARKS.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kube-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    if ((rc != 0)) && [[ -s $WORK/sluice.log ]]; then
        log "Sluice's log:"
        tail -20 "$WORK/sluice.log" >&2
    fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    # kube_up's etcd and kube-apiserver (its Drop does not run on SIGTERM).
    [[ -n ${KUBE_DIR:-} ]] && pkill -f "$KUBE_DIR" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

scripts/install-kube.sh >/dev/null
log "building (release)"
cargo build -q --release -p sluice --bins --example kube_load
cargo build -q --release -p sluice-testkit --example kube_up
SLUICE=target/release/sluice

log "starting etcd and kube-apiserver"
target/release/examples/kube_up 100000 >"$WORK/up.txt" 2>&1 &
PIDS+=($!)
wait_for "the API server" 120 grep -q '^url=' "$WORK/up.txt"
URL=$(grep -o 'url=[^ ]*' "$WORK/up.txt" | cut -d= -f2)
CA=$(grep -o 'ca=[^ ]*' "$WORK/up.txt" | cut -d= -f2)
KUBE_DIR=$(grep -o 'dir=[^ ]*' "$WORK/up.txt" | cut -d= -f2)
direct() { kubectl --server="$URL" --certificate-authority="$CA" --token=admin-token-for-tests "$@"; }
direct create clusterrolebinding agents-admin --clusterrole=cluster-admin --group=agents >/dev/null
direct create configmap bench --from-literal=k=v >/dev/null

log "starting Sluice"
# A CA and a leaf signed by it (a self-signed CA certificate cannot serve
# as a TLS server's own certificate for rustls clients).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj "/CN=bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
    -keyout "$WORK/key.pem" -out "$WORK/leaf.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$WORK/leaf.ext"
openssl x509 -req -in "$WORK/leaf.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 1 -extfile "$WORK/leaf.ext" -out "$WORK/cert.pem" 2>/dev/null
PORT=$(free_port)
KPORT=$(free_port)
cat >"$WORK/sluice.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
data_dir = "data"
tls_cert = "cert.pem"
tls_key = "key.pem"

[[resource]]
name = "kube"
kind = "kubernetes"
listen = "127.0.0.1:$KPORT"
url = "$URL"
ca_file = "$CA"
token_env = "KUBE_TOKEN"

[policy]
files = ["p.cedar"]
EOF
echo '@id("agents-read") permit(principal in Group::"agents", action in Action::"read", resource);' >"$WORK/p.cedar"
(cd "$WORK" && KUBE_TOKEN=sluice-token-for-tests SLUICE_LOG=warn exec "$OLDPWD/$SLUICE" serve --config sluice.toml 2>sluice.log) &
SLUICE_PID=$!
PIDS+=($SLUICE_PID)
wait_for "Sluice" 30 port_open "$KPORT"
KEY=$("$SLUICE" keys create --config "$WORK/sluice.toml" --identity agent-1 --groups agents | tail -1)

load() { # URL CA CONCURRENCY TOKEN
    KUBE_TOKEN=$4 target/release/examples/kube_load "$1" "$2" "$3" "$SECONDS_EACH"
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
PATH_CM=/api/v1/namespaces/default/configmaps/bench
rows=()
for c in 1 8; do
    log "GET at $c clients: direct"
    d=$(load "$URL$PATH_CM" "$CA" "$c" admin-token-for-tests)
    log "GET at $c clients: through Sluice"
    s=$(load "https://127.0.0.1:$KPORT$PATH_CM" "$WORK/ca.pem" "$c" "$KEY")
    ratio=$(python3 -c "print(f'{$(field "$s" rps)/$(field "$d" rps):.2f}')")
    added=$(python3 -c "print(f'{$(field "$s" p50_ms)-$(field "$d" p50_ms):.2f}')")
    rows+=("| $c | $(field "$d" rps) | $(field "$s" rps) | $ratio | $(field "$d" p50_ms) / $(field "$d" p99_ms) | $(field "$s" p50_ms) / $(field "$s" p99_ms) | $added | $(field "$s" errors) |")
done

log "creating a list of about 50 MB ($LIST_ITEMS ConfigMaps of ~900 KB)"
python3 - "$WORK/big" "$LIST_ITEMS" <<'PY'
import json, os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d, exist_ok=True)
blob = ("0123456789abcdef" * 57600)[:900000]
for i in range(n):
    with open(f"{d}/cm{i}.json", "w") as f:
        json.dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"big{i}", "namespace": "default"}, "data": {"blob": blob}}, f)
PY
direct create -f "$WORK/big" >/dev/null
hwm() { awk '/VmHWM/ {print $2}' "/proc/$SLUICE_PID/status"; }
before=$(hwm)
t0=$(date +%s.%N)
dbytes=$(curl -s --cacert "$CA" -H "Authorization: Bearer admin-token-for-tests" "$URL/api/v1/namespaces/default/configmaps" | wc -c)
t1=$(date +%s.%N)
sbytes=$(curl -s --cacert "$WORK/ca.pem" -H "Authorization: Bearer $KEY" "https://127.0.0.1:$KPORT/api/v1/namespaces/default/configmaps" | wc -c)
t2=$(date +%s.%N)
after=$(hwm)
list_row="| $((dbytes / 1000000)) MB / $((sbytes / 1000000)) MB | $(python3 -c "print(f'{$t1-$t0:.2f}')") s | $(python3 -c "print(f'{$t2-$t1:.2f}')") s | $((before / 1024)) MiB | $((after / 1024)) MiB |"

{
    echo "## Kubernetes"
    echo
    echo "\`bench/kube.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores: kube-apiserver 1.20 with etcd on loopback; Sluice with audit and masking on (the agent's results masked), HTTPS on both legs. GETs of one ConfigMap, ${SECONDS_EACH} s per cell."
    echo
    echo "| clients | direct req/s | Sluice req/s | ratio | direct p50 / p99 ms | Sluice p50 / p99 ms | added p50 ms | Sluice errors |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "A list of $LIST_ITEMS ConfigMaps read once (\`GET /api/v1/namespaces/default/configmaps\`), masked identity:"
    echo
    echo "| size direct / through Sluice | direct | through Sluice | Sluice peak RSS before | after |"
    echo "|---|---|---|---|---|"
    echo "$list_row"
} >"$WORK/section.md"
cat "$WORK/section.md"
if [[ $OUTPUT == BENCHMARKS.md ]]; then
    python3 - "$WORK/section.md" <<'PY'
import re, sys
section = open(sys.argv[1]).read()
text = open("BENCHMARKS.md").read()
start = text.find("## Kubernetes")
if start == -1:
    text = text.rstrip("\n") + "\n\n" + section
else:
    end = text.find("\n## ", start + 1)
    text = text[:start] + section + ("" if end == -1 else text[end:])
open("BENCHMARKS.md", "w").write(text)
PY
else
    cp "$WORK/section.md" "$OUTPUT"
fi
