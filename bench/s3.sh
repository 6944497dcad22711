#!/usr/bin/env bash
# S3 through Sluice against the same s3s-fs directly, in one run:
#
#   bench/s3.sh                 # writes the "S3" section of BENCHMARKS.md
#   OUTPUT=/tmp/s.md bench/s3.sh
#
# 1. PUT and GET of a 1 MB object (ROUNDS times, median) and a 1 GB object
#    (once), by curl on presigned URLs: directly with the backend's keys,
#    through Sluice unmasked (a policy unmasks the identity) and masked
#    (the object is CSV with an email column, masked as it streams).
# 2. Small-object operations per second: HeadObject in a loop from THREADS
#    boto3 threads for SECONDS, directly and through Sluice.
# 3. Sluice's peak RSS (VmHWM) before and after the 1 GB transfers: objects
#    stream, they are never held.
#
# Needs s3s-fs (scripts/install-deps.sh), curl, boto3.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROOT=$PWD
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

ROUNDS=${ROUNDS:-10}
SECONDS_EACH=${SECONDS_EACH:-10}
THREADS=${THREADS:-8}
BIG_BYTES=${BIG_BYTES:-1000000000}
OUTPUT=${OUTPUT:-BENCHMARKS.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-s3-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

S3S_FS=${SLUICE_S3S_FS:-${SLUICE_CACHE:-$HOME/.cache/sluice}/s3s-fs/bin/s3s-fs}
[[ -x $S3S_FS ]] || die "s3s-fs missing: run scripts/install-deps.sh"
log "building (release)"
cargo build -q --release -p sluice --bins
SLUICE=target/release/sluice
LOAD="python3 bench/s3_load.py"

BK=BENCHBACKENDKEY0001 BS=bench-backend-secret-0001
BACK_PORT=$(free_port)
mkdir -p "$WORK/data"
"$S3S_FS" --host 127.0.0.1 --port "$BACK_PORT" --access-key $BK --secret-key $BS "$WORK/data" >"$WORK/s3s.log" 2>&1 &
PIDS+=($!)
wait_for "s3s-fs" 20 port_open "$BACK_PORT"
DIRECT=http://127.0.0.1:$BACK_PORT

SL_PORT=$(free_port) PG_PORT_UNUSED=$(free_port)
cat >"$WORK/policy.cedar" <<'EOF'
@id("all") permit (principal, action, resource);
@id("raw-unmask") permit (principal in Group::"raw", action == Action::"unmask", resource);
EOF
cat >"$WORK/sluice.toml" <<EOF
[server]
listen = "127.0.0.1:$PG_PORT_UNUSED"
data_dir = "$WORK/sluice-data"
log_format = "text"
[[resource]]
name = "store"
kind = "s3"
listen = "127.0.0.1:$SL_PORT"
endpoint = "$DIRECT"
access_key_env = "STORE_ACCESS_KEY"
secret_key_env = "STORE_SECRET_KEY"
[policy]
files = ["$WORK/policy.cedar"]
[masking]
EOF
keypair() {
    "$SLUICE" keys create --config "$WORK/sluice.toml" --identity "$1" --groups "$2" --s3 | tail -2 |
        cut -d= -f2 | paste -sd' '
}
read -r RAW_K RAW_S <<<"$(keypair raw-1 raw)"
read -r MASK_K MASK_S <<<"$(keypair agent-1 agents)"
STORE_ACCESS_KEY=$BK STORE_SECRET_KEY=$BS "$SLUICE" serve --config "$WORK/sluice.toml" >"$WORK/sluice.log" 2>&1 &
SL_PID=$!
PIDS+=($SL_PID)
wait_for "Sluice" 20 port_open "$SL_PORT"
VIA=http://127.0.0.1:$SL_PORT

log "objects: 1 MB and $((BIG_BYTES / 1000000)) MB of CSV"
$LOAD csv "$WORK/small.csv" 1000000
$LOAD csv "$WORK/big.csv" "$BIG_BYTES"
python3 -c "import boto3; boto3.client('s3', endpoint_url='$DIRECT', aws_access_key_id='$BK', aws_secret_access_key='$BS', region_name='us-east-1').create_bucket(Bucket='bench')"

# put_s ENDPOINT KEY SECRET OBJECT FILE: seconds for one PUT.
put_s() {
    local url
    url=$($LOAD presign "$1" "$2" "$3" PUT bench "$4")
    curl -sS -f -o /dev/null -w '%{time_total}\n' -H 'Content-Type: text/csv' -T "$5" "$url"
}
get_s() {
    local url
    url=$($LOAD presign "$1" "$2" "$3" GET bench "$4")
    curl -sS -f -o /dev/null -w '%{time_total}\n' "$url"
}
median_of() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mbps() { python3 -c "print(f'{$1 / $2 / 1e6:.0f}')"; }

rss_before=$(proc_status_mib "$SL_PID" VmHWM)
declare -A T
log "1 MB, $ROUNDS rounds each"
for who in direct raw masked; do
    case $who in
        direct) E=$DIRECT K=$BK S=$BS ;;
        raw) E=$VIA K=$RAW_K S=$RAW_S ;;
        masked) E=$VIA K=$MASK_K S=$MASK_S ;;
    esac
    T[put1_$who]=$(for _ in $(seq "$ROUNDS"); do put_s "$E" "$K" "$S" "small-$who.csv" "$WORK/small.csv"; done | median_of)
    T[get1_$who]=$(for _ in $(seq "$ROUNDS"); do get_s "$E" "$K" "$S" "small-$who.csv"; done | median_of)
done
log "$((BIG_BYTES / 1000000)) MB, once each"
for who in direct raw masked; do
    case $who in
        direct) E=$DIRECT K=$BK S=$BS ;;
        raw) E=$VIA K=$RAW_K S=$RAW_S ;;
        masked) E=$VIA K=$MASK_K S=$MASK_S ;;
    esac
    T[putb_$who]=$(put_s "$E" "$K" "$S" "big-$who.csv" "$WORK/big.csv")
    T[getb_$who]=$(get_s "$E" "$K" "$S" "big-$who.csv")
    rm -f "$WORK/data/bench/big-$who.csv"
done
rss_after=$(proc_status_mib "$SL_PID" VmHWM)
log "HeadObject, $THREADS threads, ${SECONDS_EACH}s each"
put_s "$DIRECT" $BK $BS head.txt "$WORK/small.csv" >/dev/null
ops_direct=$($LOAD ops "$DIRECT" $BK $BS bench head.txt "$SECONDS_EACH" "$THREADS")
ops_via=$($LOAD ops "$VIA" "$RAW_K" "$RAW_S" bench head.txt "$SECONDS_EACH" "$THREADS")

row() { # label size_bytes direct raw masked
    printf '| %s | %s MB/s | %s MB/s (%.2fx) | %s MB/s (%.2fx) |\n' "$1" \
        "$(mbps "$2" "$3")" "$(mbps "$2" "$4")" "$(python3 -c "print($3/$4)")" \
        "$(mbps "$2" "$5")" "$(python3 -c "print($3/$5)")"
}
describe_run
{
    echo "## S3"
    echo
    echo "\`bench/s3.sh\` (commit $COMMIT, $RUSTC_VER, $CPU_MODEL, $MEM_GIB GiB): curl on presigned URLs against s3s-fs 0.14.1 directly"
    echo "(backend keys) and through Sluice (audit on; an identity a policy unmasks, and a masked one"
    echo "whose CSV objects are masked as they stream). Objects are CSV with an email column; PUTs are"
    echo "UNSIGNED-PAYLOAD streams. Throughput is payload bytes over curl's total time; 1 MB figures are"
    echo "medians of $ROUNDS."
    echo
    echo "| transfer | direct | Sluice, unmasked (ratio) | Sluice, masked (ratio) |"
    echo "|---|---|---|---|"
    row "PUT 1 MB" 1000000 "${T[put1_direct]}" "${T[put1_raw]}" "${T[put1_masked]}"
    row "GET 1 MB" 1000000 "${T[get1_direct]}" "${T[get1_raw]}" "${T[get1_masked]}"
    row "PUT $((BIG_BYTES / 1000000)) MB" "$BIG_BYTES" "${T[putb_direct]}" "${T[putb_raw]}" "${T[putb_masked]}"
    row "GET $((BIG_BYTES / 1000000)) MB" "$BIG_BYTES" "${T[getb_direct]}" "${T[getb_raw]}" "${T[getb_masked]}"
    echo
    echo "HeadObject, $THREADS boto3 threads: $ops_direct/s direct, $ops_via/s through Sluice ($(python3 -c "print(f'{$ops_via/$ops_direct:.2f}')")x)."
    echo "Sluice's peak RSS: $rss_before MiB before the transfers, $rss_after MiB after the $((BIG_BYTES / 1000000)) MB ones."
    echo
} >"$WORK/section.md"
cat "$WORK/section.md"
if [[ $OUTPUT == BENCHMARKS.md ]]; then
    python3 - "$WORK/section.md" <<'PY'
import sys
section = open(sys.argv[1]).read()
text = open("BENCHMARKS.md").read()
start = text.find("## S3\n")
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
