#!/usr/bin/env bash
# A large result (1 GB by default) through Sluice with result masking off and
# on, next to a direct connection, on a throwaway PostgreSQL cluster: read
# throughput as a ratio to direct, and the gateway's peak RSS. See
# bench/README.md.
#
#   bench/masking.sh                  # full run: SIZE_MB=1000 ROUNDS=2
#   QUICK=1 bench/masking.sh          # smoke run: SIZE_MB=50 ROUNDS=1
#   TMPDIR=/dev/shm bench/masking.sh  # cluster in RAM (needs ~1.3 GB free)
#
# Writes the results between the masking-bench markers of BENCHMARKS.md and
# prints them. Everything it starts is stopped, and its temp dir removed, on
# exit (KEEP_TMP=1 keeps the temp dir with all logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    SIZE_MB=${SIZE_MB:-50}
    ROUNDS=${ROUNDS:-1}
fi
SIZE_MB=${SIZE_MB:-1000}       # result size: value bytes in text form, MB = 10^6 bytes
ROUNDS=${ROUNDS:-2}            # runs per target; the table shows medians
CHUNK_ROWS=${CHUNK_ROWS:-10000} # rows per libpq chunk in the client
PG_VERSION=${PG_VERSION:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
PYTHON=${PYTHON:-python3}
OUTPUT=${OUTPUT:-$ROOT/BENCHMARKS.md}
KEEP_TMP=${KEEP_TMP:-0}
for v in SIZE_MB ROUNDS CHUNK_ROWS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done

# direct: no gateway; sluice-off: [masking] enabled = false; sluice-on: no
# [masking] section, i.e. every content detector on (the default).
TARGETS=(direct sluice-off sluice-on)
MASK_START='<!-- masking-bench:start -->'
MASK_END='<!-- masking-bench:end -->'

# Inherited libpq settings must not leak into any connection made here.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGPASSFILE PGDATABASE PGSERVICE PGSERVICEFILE \
    PGOPTIONS PGSSLMODE PGCONNECT_TIMEOUT PGAPPNAME PGTARGETSESSIONATTRS

# --- 1. prerequisites -------------------------------------------------------

install_missing() {
    local pkgs=()
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/postgres ]] || pkgs+=("postgresql-$PG_VERSION")
    [[ -x $PG_BIN/psql ]] || pkgs+=("postgresql-client-$PG_VERSION")
    command -v ss >/dev/null 2>&1 || pkgs+=(iproute2)
    if ((${#pkgs[@]})); then
        [[ $EUID -eq 0 ]] || die "missing packages (${pkgs[*]}); run as root or install them with apt-get first"
        command -v apt-get >/dev/null 2>&1 || die "missing packages (${pkgs[*]}) and no apt-get to install them"
        log "installing ${pkgs[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2 || die "apt-get update failed"
        apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
    fi
    for b in initdb pg_ctl postgres psql pg_isready; do
        [[ -x $PG_BIN/$b ]] || die "$PG_BIN/$b not found after installation (set PG_BIN?)"
    done
    if [[ $EUID -eq 0 ]]; then
        getent passwd postgres >/dev/null || die "running as root needs a 'postgres' OS user (created by the postgresql package)"
        command -v runuser >/dev/null 2>&1 || die "running as root needs runuser (util-linux)"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=...): the streaming client is a Python script"
    "$PYTHON" -c 'import psycopg.pq' 2>/dev/null ||
        die "$PYTHON cannot import psycopg (3.x): install it, e.g. pip install 'psycopg[binary]' (its libpq streams the result in chunks)"
    command -v timeout >/dev/null 2>&1 || die "timeout (coreutils) not found"
}

install_missing

# --- 2. build ------------------------------------------------------------------

log "building sluice (cargo build --release --bin sluice)"
(cd "$ROOT" && cargo build --release --bin sluice >&2) || die "cargo build --release --bin sluice failed"
TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SLUICE_BIN=${TARGET_DIR:-$ROOT/target}/release/sluice
[[ -x $SLUICE_BIN ]] || die "built binary not found at $SLUICE_BIN"

# --- 3. temp dir and cleanup ---------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-masking-bench.XXXXXX")
chmod 755 "$TMP" # the postgres user must reach its subdirectories
PG_DIR=$TMP/pg
PGDATA_DIR=$PG_DIR/data
SOCK_DIR=$PG_DIR/sock
SL_DIR=$TMP/sluice
OUT_DIR=$TMP/out
mkdir -p "$PG_DIR" "$PGDATA_DIR" "$SOCK_DIR" "$SL_DIR" "$OUT_DIR"
chmod 700 "$PGDATA_DIR" "$SOCK_DIR" "$SL_DIR"
if [[ $EUID -eq 0 ]]; then
    chown -R postgres: "$PG_DIR"
fi
cd "$TMP" # runuser keeps the cwd; it must be readable by postgres

SLUICE_PID=""
SLUICE_NAME=""

stop_pid() { # stop_pid PID NAME: SIGTERM, then SIGKILL after 10 s
    local pid=$1 name=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "$name (pid $pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((rc != 0)); then
        for f in "$SL_DIR/sluice-off.log" "$SL_DIR/sluice-on.log" "$PG_DIR/postgres.log"; do
            [[ -s $f ]] || continue
            printf '\n--- last lines of %s ---\n' "$f" >&2
            tail -n 15 "$f" >&2
        done
    fi
    [[ -n $SLUICE_PID ]] && stop_pid "$SLUICE_PID" "$SLUICE_NAME"
    if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 30 stop >/dev/null 2>&1 || {
            local pm
            pm=$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null)
            [[ -n $pm ]] && kill -KILL "$pm" 2>/dev/null
        }
    fi
    cd /
    if [[ $KEEP_TMP == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The table takes about 1.2 x the result size on disk (tuple headers, no
# TOAST at these row sizes); it is UNLOGGED, so no WAL.
NEED_MB=$((SIZE_MB * 13 / 10 + 300))
FREE_MB=$(df -Pm "$TMP" | awk 'NR == 2 { print $4 }')
[[ -n $FREE_MB ]] || die "cannot tell the free space under $TMP (df)"
((FREE_MB >= NEED_MB)) ||
    die "$TMP has ${FREE_MB} MB free, the cluster needs about ${NEED_MB} MB for SIZE_MB=$SIZE_MB: set TMPDIR to a roomier place (e.g. TMPDIR=/dev/shm, a RAM disk) or lower SIZE_MB"

# --- 4. PostgreSQL -------------------------------------------------------------

PG_PORT=$(free_port)
SL_OFF_PORT=$(free_port)
SL_ON_PORT=$(free_port)
APP_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

log "cluster data in $PGDATA_DIR"
start_pg_cluster "bench/masking.sh"

on_target() { # on_target TARGET COMMAND...: run a libpq client against TARGET
    local t=$1 port user pw
    shift
    case $t in
    direct) port=$PG_PORT user=app_owner pw=$APP_PW ;;
    sluice-off) port=$SL_OFF_PORT user=bench pw=$SLUICE_KEY ;;
    sluice-on) port=$SL_ON_PORT user=bench pw=$SLUICE_KEY ;;
    *) die "unknown target $t" ;;
    esac
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=$user PGPASSWORD=$pw PGDATABASE=app PGSSLMODE=disable \
        PGCONNECT_TIMEOUT=10 "$@"
}
app_sql() { # app_sql SQL...: as app_owner, directly; extra psql arguments allowed
    on_target direct "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"
}
check_target() { # a real login and query through TARGET
    local out
    out=$(on_target "$1" "$PG_BIN/psql" -X -At -c "SELECT 1" 2>&1) && [[ $out == 1 ]] ||
        die "cannot query through $1: $out"
}
SLUICE_KEY=unset
check_target direct

# --- 5. data ---------------------------------------------------------------------

# Rows like a customer/orders table: a name, a street address, city,
# postcode, country, a timestamp, an amount and a free-text note of about
# 800 bytes made of English words. One row in 100 carries one sensitive
# value in its note (half of them an email address, a quarter a payment
# card number, a quarter an IBAN) so the detectors fire now and then; the
# rest is clean text the detectors must scan and pass.
log "creating the data (about $SIZE_MB MB of row values)"
app_sql >"$OUT_DIR/schema.log" 2>&1 <<'SQL' || die "creating the data generator failed: $(tail -n 5 "$OUT_DIR/schema.log")"
CREATE UNLOGGED TABLE frag AS
SELECT i, upper(left(s, 1)) || substr(s, 2) AS s
FROM (
    SELECT i, (
        SELECT string_agg(w[1 + ((i * 7919 + k * 104729 + k * k * 31) % array_length(w, 1))], ' ')
        FROM generate_series(1, 21) k
    ) AS s
    FROM generate_series(0, 999) i,
    (SELECT '{the,a,customer,order,delivery,was,delayed,because,of,weather,called,
      support,about,their,invoice,and,asked,for,refund,package,arrived,damaged,
      please,check,with,warehouse,before,shipping,replacement,item,note,that,
      account,manager,will,follow,up,next,week,on,contract,renewal,discount,
      agreed,previous,quarter,prefers,email,contact,mornings,only,address,
      changed,recently,confirm,billing,details,payment,received,late,again,
      loyal,since,several,years,requested,paper,copy,priority,handling,
      complained,wrong,size,colour,returned,unused,exchange,approved,by,team,
      lead,ticket,closed,reopened,after,review}'::text[] AS w) words
) f;
CREATE UNIQUE INDEX ON frag (i);

CREATE FUNCTION gen_rows(lo bigint, hi bigint)
RETURNS TABLE (id bigint, full_name text, street text, city text, postcode text,
               country text, created_at timestamptz, amount numeric, note text)
LANGUAGE sql STABLE AS $$
SELECT g,
       c.fn[1 + g % 40] || ' ' || c.ln[1 + (g / 40) % 50],
       (1 + g % 997) || ' ' || c.st[1 + (g / 7) % 30],
       c.ci[1 + (g / 3) % 30],
       lpad(((g * 7907) % 100000)::text, 5, '0'),
       c.co[1 + g % 8],
       timestamptz '2024-01-01 00:00:00+00' + (g * 7919 % 31536000) * interval '1 second',
       ((g * 7919) % 1000000) / 100.0,
       f1.s || '. ' || f2.s || '. ' || f3.s || '. ' || f4.s || '. ' || f5.s || '. ' || f6.s || '.' ||
       CASE WHEN g % 100 <> 0 THEN ''
            WHEN (g / 100) % 4 IN (0, 2) THEN
                ' Contact ' || lower(c.fn[1 + g % 40]) || '.' || lower(c.ln[1 + (g / 40) % 50])
                || (g % 997) || '@example.com for details.'
            WHEN (g / 100) % 4 = 1 THEN
                ' Paid with card ' || c.cards[1 + (g / 400) % 4] || '.'
            ELSE ' Refund to IBAN ' || c.ibans[1 + (g / 400) % 3] || '.'
       END
FROM generate_series(lo, hi) g
CROSS JOIN (SELECT
    '{James,Mary,Robert,Patricia,John,Jennifer,Michael,Linda,David,Elizabeth,William,Barbara,Richard,Susan,Joseph,Jessica,Thomas,Sarah,Charles,Karen,Christopher,Lisa,Daniel,Nancy,Matthew,Betty,Anthony,Sandra,Mark,Margaret,Donald,Ashley,Steven,Kimberly,Paul,Emily,Andrew,Donna,Joshua,Michelle}'::text[] AS fn,
    '{Smith,Johnson,Williams,Brown,Jones,Garcia,Miller,Davis,Rodriguez,Martinez,Hernandez,Lopez,Gonzalez,Wilson,Anderson,Thomas,Taylor,Moore,Jackson,Martin,Lee,Perez,Thompson,White,Harris,Sanchez,Clark,Ramirez,Lewis,Robinson,Walker,Young,Allen,King,Wright,Scott,Torres,Nguyen,Hill,Flores,Green,Adams,Nelson,Baker,Hall,Rivera,Campbell,Mitchell,Carter,Roberts}'::text[] AS ln,
    '{Main Street,Oak Avenue,Pine Road,Maple Drive,Cedar Lane,Elm Street,Washington Avenue,Lake View Road,Hill Crest Drive,Park Lane,High Street,Church Road,Station Road,Mill Lane,Victoria Road,Green Lane,Manor Road,Kings Road,Queens Avenue,New Street,Grove Road,School Lane,The Crescent,North Street,South Street,West End,East Parade,Bridge Street,Chapel Lane,Springfield Road}'::text[] AS st,
    '{Springfield,Riverside,Franklin,Greenville,Bristol,Clinton,Fairview,Salem,Madison,Georgetown,Arlington,Ashland,Dover,Oxford,Jackson,Burlington,Manchester,Milton,Newport,Auburn,Dayton,Lexington,Milford,Winchester,Hudson,Kingston,Mount Vernon,Centerville,Clayton,Marion}'::text[] AS ci,
    '{US,GB,DE,FR,NL,IE,CA,AU}'::text[] AS co,
    '{4111 1111 1111 1111,5555 5555 5555 4444,4012888888881881,3782 822463 10005}'::text[] AS cards,
    '{DE89 3704 0044 0532 0130 00,GB82 WEST 1234 5698 7654 32,NL91ABNA0417164300}'::text[] AS ibans
) c
JOIN frag f1 ON f1.i = g % 1000
JOIN frag f2 ON f2.i = (g * 7 + 1) % 1000
JOIN frag f3 ON f3.i = (g * 13 + 2) % 1000
JOIN frag f4 ON f4.i = (g * 31 + 3) % 1000
JOIN frag f5 ON f5.i = (g * 61 + 4) % 1000
JOIN frag f6 ON f6.i = (g * 127 + 5) % 1000
$$;
SQL
# Text-form bytes of one row's values (what a text-format DataRow carries,
# without the per-message and per-field headers).
ROW_BYTES_SQL="octet_length(id::text) + octet_length(full_name) + octet_length(street) + octet_length(city)
    + octet_length(postcode) + octet_length(country) + octet_length(created_at::text)
    + octet_length(amount::text) + octet_length(note)"
AVG_ROW=$(app_sql -At -c "SELECT round(avg($ROW_BYTES_SQL), 3) FROM gen_rows(1, 20000)") ||
    die "sampling the row size failed"
ROWS=$(awk -v mb="$SIZE_MB" -v a="$AVG_ROW" 'BEGIN { printf "%d\n", mb * 1e6 / a + 1 }')
log "average row $AVG_ROW bytes: generating $ROWS rows"
t0=$SECONDS
app_sql -c "CREATE UNLOGGED TABLE t AS SELECT * FROM gen_rows(1, $ROWS)" >"$OUT_DIR/create.log" 2>&1 ||
    die "creating table t failed: $(tail -n 5 "$OUT_DIR/create.log")"
PGDB=app pg_super -c "VACUUM (FREEZE, ANALYZE) t" >/dev/null || die "VACUUM t failed"
# One full pass directly: sizes, and the table is in the page cache for all.
read -r TOTAL_BYTES TOTAL_ROWS < <(app_sql -At -F ' ' -c "SELECT sum($ROW_BYTES_SQL), count(*) FROM t") ||
    die "measuring table t failed"
[[ $TOTAL_ROWS == "$ROWS" ]] || die "table t has $TOTAL_ROWS rows, expected $ROWS"
TABLE_MB=$(app_sql -At -c "SELECT round(pg_table_size('t') / 1e6)")
TOTAL_MB=$(awk -v b="$TOTAL_BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
SENSITIVE_ROWS=$((ROWS / 100))
log "table t: $TOTAL_ROWS rows, $TOTAL_MB MB of values ($TABLE_MB MB on disk), $SENSITIVE_ROWS rows with a sensitive value; took $((SECONDS - t0)) s"

# --- 6. Sluice -------------------------------------------------------------------

POLICY_GLOB=$ROOT/examples/policies/*.cedar
compgen -G "$POLICY_GLOB" >/dev/null || die "no default policies match $POLICY_GLOB"
[[ $POLICY_GLOB != *[\"\\]* ]] || die "the repository path ($ROOT) must not contain \" or \\ (it goes into a TOML string)"
write_sluice_config() { # write_sluice_config FILE PORT MASKING_SECTION
    cat >"$1" <<EOF
[server]
listen = "127.0.0.1:$2"
# Both instances share the key store and the audit log; they never run at
# the same time (each is started for its run and stopped after it).
data_dir = "data"
shutdown_grace_secs = 2

# The shipped default policies: the bench identity is in group "agents",
# which may read; nothing in them unmasks agents.
[policy]
files = ["$POLICY_GLOB"]

[[resource]]
name = "app"
kind = "postgres"
host = "127.0.0.1"
port = $PG_PORT
database = "app"
user = "app_owner"
password_env = "APP_DB_PASSWORD"
tags = { env = "bench" }

[audit]
enabled = true
$3
EOF
}
write_sluice_config "$SL_DIR/sluice-off.toml" "$SL_OFF_PORT" $'\n[masking]\nenabled = false'
write_sluice_config "$SL_DIR/sluice-on.toml" "$SL_ON_PORT" "# no [masking] section: every content detector on (the default)"
"$SLUICE_BIN" keys create --config "$SL_DIR/sluice-on.toml" --identity bench --groups agents \
    >"$OUT_DIR/keys.stdout" 2>"$OUT_DIR/keys.stderr" ||
    die "sluice keys create failed: $(cat "$OUT_DIR/keys.stderr")"
SLUICE_KEY=$(tail -n 1 "$OUT_DIR/keys.stdout")
[[ -n $SLUICE_KEY && $SLUICE_KEY != *" "* ]] || die "sluice keys create printed no key"

start_sluice() { # start_sluice TARGET: sets SLUICE_PID and SLUICE_NAME
    local t=$1 port pid
    case $t in
    sluice-off) port=$SL_OFF_PORT ;;
    sluice-on) port=$SL_ON_PORT ;;
    *) die "start_sluice: unknown target $t" ;;
    esac
    [[ -z $SLUICE_PID ]] || die "start_sluice $t: $SLUICE_NAME (pid $SLUICE_PID) is still running"
    APP_DB_PASSWORD=$APP_PW "$SLUICE_BIN" serve --config "$SL_DIR/$t.toml" >>"$SL_DIR/$t.log" 2>&1 &
    pid=$!
    SLUICE_PID=$pid
    SLUICE_NAME=$t
    # shellcheck disable=SC2317 # called through wait_for
    listening() {
        kill -0 "$pid" 2>/dev/null || die "$t exited during startup"
        port_open "$port"
    }
    wait_for "$t to listen on $port" 30 listening
    check_target "$t"
}
stop_sluice() {
    [[ -n $SLUICE_PID ]] || return 0
    stop_pid "$SLUICE_PID" "$SLUICE_NAME"
    wait "$SLUICE_PID" 2>/dev/null || true
    SLUICE_PID=""
    SLUICE_NAME=""
}
refusals() { # refusals TARGET: statements it has refused so far (logged at warn)
    grep -c 'statement refused' "$SL_DIR/$1.log" 2>/dev/null || true
}

# Masking is really off and on: the first rows through each instance,
# compared with the same rows read directly. With masking on, the rows that
# carry a planted value must differ (masked) and, ideally, no others; with
# it off, none may differ.
SAMPLE_ROWS=$((ROWS < 5000 ? ROWS : 5000))
SAMPLE_SQL="SELECT * FROM t WHERE id <= $SAMPLE_ROWS ORDER BY id"
on_target direct "$PG_BIN/psql" -X -At -c "$SAMPLE_SQL" >"$OUT_DIR/sample.direct" 2>&1 ||
    die "reading the sample directly failed: $(tail -n 3 "$OUT_DIR/sample.direct")"
sample_diff() { # sample_diff TARGET: how many sample rows differ from direct
    on_target "$1" "$PG_BIN/psql" -X -At -c "$SAMPLE_SQL" >"$OUT_DIR/sample.$1" 2>&1 ||
        die "reading the sample through $1 failed: $(tail -n 3 "$OUT_DIR/sample.$1")"
    [[ $(wc -l <"$OUT_DIR/sample.$1") == "$(wc -l <"$OUT_DIR/sample.direct")" ]] ||
        die "$1 returned $(wc -l <"$OUT_DIR/sample.$1") sample rows, directly $(wc -l <"$OUT_DIR/sample.direct")"
    diff "$OUT_DIR/sample.direct" "$OUT_DIR/sample.$1" | grep -c '^>' || true
}
SAMPLE_PLANTED=$((SAMPLE_ROWS / 100))
start_sluice sluice-off
grep -q 'enabled = false: results reach clients UNMASKED' "$SL_DIR/sluice-off.log" ||
    die "sluice-off did not log that masking is off"
SAMPLE_DIFF_OFF=$(sample_diff sluice-off)
stop_sluice
((SAMPLE_DIFF_OFF == 0)) || die "with [masking] enabled = false, $SAMPLE_DIFF_OFF of $SAMPLE_ROWS sample rows differ from direct"
start_sluice sluice-on
SAMPLE_DIFF_ON=$(sample_diff sluice-on)
stop_sluice
((SAMPLE_DIFF_ON > 0 || SAMPLE_PLANTED == 0)) ||
    die "masking on, yet none of the $SAMPLE_PLANTED planted values in the first $SAMPLE_ROWS rows was masked"
log "masking check: first $SAMPLE_ROWS rows: $SAMPLE_DIFF_ON differ with masking on ($SAMPLE_PLANTED carry a planted value), 0 with it off"

# --- 7. the streaming client -----------------------------------------------------

# libpq (through psycopg's pq module, no row conversion in Python): one
# simple-protocol `SELECT * FROM t`, read in chunks of CHUNK_ROWS rows
# (PQsetChunkedRowsMode, libpq >= 17; single-row mode with an older libpq),
# so the client never holds more than one chunk. Prints rows, seconds from
# sending the query to the last result, the row mode, and the client's own
# peak RSS in KiB and CPU seconds.
CLIENT=$OUT_DIR/stream.py
cat >"$CLIENT" <<'PY'
import resource
import sys
import time

import psycopg.pq as pq

chunk, query = int(sys.argv[1]), sys.argv[2].encode()
conn = pq.PGconn.connect(b"")
if conn.status != pq.ConnStatus.OK:
    sys.exit(f"connection failed: {conn.error_message.decode(errors='replace').strip()}")
t0 = time.perf_counter()
conn.send_query(query)  # raises psycopg.OperationalError on failure
mode = "single-row"
try:
    if chunk > 1:
        conn.set_chunked_rows_mode(chunk)
        mode = f"chunks of {chunk} rows"
    else:
        conn.set_single_row_mode()
except Exception:
    conn.set_single_row_mode()
ok = {pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE}
if hasattr(pq.ExecStatus, "TUPLES_CHUNK"):
    ok.add(pq.ExecStatus.TUPLES_CHUNK)
rows, error = 0, None
while True:
    r = conn.get_result()
    if r is None:
        break
    if r.status in ok:
        rows += r.ntuples
    elif error is None:
        error = (r.error_message or b"").decode(errors="replace").strip() or str(r.status)
    r.clear()
elapsed = time.perf_counter() - t0
conn.finish()
if error:
    sys.exit(f"query failed after {rows} rows: {error}")
ru = resource.getrusage(resource.RUSAGE_SELF)
print(f"{rows}\t{elapsed:.6f}\t{mode}\t{ru.ru_maxrss}\t{ru.ru_utime + ru.ru_stime:.2f}")
PY
CLIENT_TIMEOUT=$((120 + SIZE_MB)) # gives up below ~1 MB/s

# --- 8. runs ---------------------------------------------------------------------

RESULTS=$OUT_DIR/results.tsv # round target rows seconds mb_s hwm_mib rss_start_mib cpu_s client_maxrss_kib mode client_cpu_s
: >"$RESULTS"
CLIENT_MODE=""

run_one() { # run_one ROUND TARGET
    local round=$1 t=$2 out pid="" cpu0=0 cpu1=0 hwm="" rss0="" refused0=0 refused rows secs mode crss ccpu mbs
    out=$OUT_DIR/run.$t.$round
    if [[ $t == sluice-* ]]; then
        start_sluice "$t" # a fresh process per run: VmHWM is this run's peak
        pid=$SLUICE_PID
        rss0=$(proc_status_mib "$pid" VmRSS)
        cpu0=$(proc_cpu_seconds "$pid")
        refused0=$(refusals "$t")
    fi
    pg_super -c "CHECKPOINT" >/dev/null
    if ! on_target "$t" timeout "$CLIENT_TIMEOUT" "$PYTHON" "$CLIENT" "$CHUNK_ROWS" "SELECT * FROM t" \
        >"$out.stdout" 2>"$out.stderr"; then
        die "reading t through $t failed (round $round): $(tail -n 3 "$out.stderr")"
    fi
    IFS=$'\t' read -r rows secs mode crss ccpu <"$out.stdout" || die "no output from the client for $t: $(cat "$out.stderr")"
    [[ $rows == "$ROWS" ]] || die "$t returned $rows rows, the table has $ROWS (round $round)"
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || die "$t (pid $pid) died during the run"
        hwm=$(proc_status_mib "$pid" VmHWM)
        cpu1=$(proc_cpu_seconds "$pid")
        refused=$(($(refusals "$t") - refused0))
        ((refused == 0)) || die "$t refused $refused statement(s) (round $round): $(grep 'statement refused' "$SL_DIR/$t.log" | tail -n 3)"
        stop_sluice
    fi
    CLIENT_MODE=$mode
    mbs=$(awk -v b="$TOTAL_BYTES" -v s="$secs" 'BEGIN { printf "%.1f", b / 1e6 / s }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$rows" "$secs" "$mbs" "$hwm" "$rss0" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" "$crss" "$mode" "$ccpu" >>"$RESULTS"
    log "round $round  $(printf '%-10s' "$t") $(printf '%7.2f' "$secs") s  $(printf '%7.1f' "$mbs") MB/s${hwm:+  peak RSS $hwm MiB}"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "reading $TOTAL_MB MB ($ROWS rows) through each target, $ROUNDS round(s), targets interleaved"
for ((round = 1; round <= ROUNDS; round++)); do
    for ((k = 0; k < ${#TARGETS[@]}; k++)); do
        run_one "$round" "${TARGETS[(k + round - 1) % ${#TARGETS[@]}]}"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

"$SLUICE_BIN" audit verify --config "$SL_DIR/sluice-on.toml" >"$OUT_DIR/verify.stdout" 2>"$OUT_DIR/verify.stderr" ||
    die "sluice audit verify failed after the runs: $(cat "$OUT_DIR/verify.stdout" "$OUT_DIR/verify.stderr")"
AUDIT_VERIFY=$(head -n 1 "$OUT_DIR/verify.stdout" | sed 's| in /[^:]*:|:|')

# --- 9. report -------------------------------------------------------------------

col() { # col TARGET COLUMN: that column of every run of TARGET
    awk -F'\t' -v t="$1" -v c="$2" '$2 == t { print $c }' "$RESULTS"
}
med() { col "$1" "$2" | median "${3:-%.1f}"; }
max_col() { col "$1" "$2" | sort -g | tail -n 1; }
cpu_per_gb() { # median proxy CPU seconds per GB of values
    col "$1" 8 | awk -v b="$TOTAL_BYTES" '{ printf "%.2f\n", $1 / (b / 1e9) }' | median %.2f
}
under_64() { awk -v m="$1" 'BEGIN { if (m == "") print "n/a"; else if (m + 0 < 64) print "yes"; else print "**no**" }'; }

D=$(med direct 5)
OFF=$(med sluice-off 5)
ON=$(med sluice-on 5)
OFF_HWM=$(max_col sluice-off 6)
ON_HWM=$(max_col sluice-on 6)
CLIENT_RSS=$(col direct 9 | sort -g | tail -n 1 | awk '{ printf "%.0f", $1 / 1024 }')

describe_run
LIBPQ_VER=$("$PYTHON" -c 'import psycopg, psycopg.pq as pq; v = pq.version(); print(f"psycopg {psycopg.__version__}, libpq {v // 10000}.{v % 100}")' 2>/dev/null || echo unknown)
FS_TYPE=$(df -PT "$TMP" | awk 'NR == 2 { print $2 }')

SECTION=$OUT_DIR/section.md
{
    echo "## Masking: a $(awk -v m="$TOTAL_MB" 'BEGIN { printf (m >= 1000 ? "%.1f GB" : "%.0f MB"), (m >= 1000 ? m / 1000 : m) }') result through Sluice, masking off and on"
    echo
    echo "_Written by \`bench/masking.sh\`$([[ ${QUICK:-0} == 1 ]] && echo ' (QUICK=1 smoke run, not a measurement)') on $(date -u). Do not edit by hand: rerun the script._"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| Machine | $(nproc) vCPU ($CPU_MODEL), $MEM_GIB GiB RAM, Linux $(uname -r); client, Sluice and PostgreSQL share it; load average $LOAD_BEFORE before the runs, $LOAD_AFTER after |"
    echo "| Commit | $COMMIT, $RUSTC_VER, \`cargo build --release\` |"
    echo "| PostgreSQL | $PG_VER; defaults except shared_buffers=256MB; data directory on $FS_TYPE; TCP on 127.0.0.1 |"
    echo "| Data | UNLOGGED table \`t\`, $TOTAL_ROWS rows, **$TOTAL_MB MB of values** in text form (the size used for MB/s; MB = 10^6 bytes), $TABLE_MB MB on disk, in the page cache before the runs (one full read, VACUUM FREEZE). Columns: id, name, street address, city, postcode, country, timestamptz, numeric amount, ~800-byte English free-text note. 1 row in 100 has one sensitive value in its note (half emails, a quarter payment card numbers, a quarter IBANs) |"
    echo "| Query | \`SELECT * FROM t\` (simple protocol, text format), read by a libpq client ($LIBPQ_VER, Python without row conversion) in $CLIENT_MODE: it holds one chunk at a time (its peak RSS: $CLIENT_RSS MiB). Time from sending the query to the last row; connection setup excluded |"
    echo "| Sluice | the shipped default policies (\`examples/policies/*.cedar\`; identity \`bench\` in group \`agents\`, which may read and is not unmasked), **audit log on** in both (one statement and one response record per run; \`sluice audit verify\` after the runs: $AUDIT_VERIFY), plaintext loopback listener, SCRAM client auth, log level info. **Masking off**: \`[masking] enabled = false\`. **Masking on**: no \`[masking]\` section, i.e. all 16 content detectors on every value, default key names, no column rules. Each instance is started fresh for each of its runs, so its peak RSS (\`VmHWM\`) is that run's |"
    echo "| Masking check | the first $SAMPLE_ROWS rows read through each instance and compared with a direct read: masking off, $SAMPLE_DIFF_OFF rows differ; masking on, $SAMPLE_DIFF_ON differ ($SAMPLE_PLANTED of them carry a planted value) |"
    echo "| Runs | $ROUNDS per target, the three interleaved (starting target rotates per round); medians; every run returned all $ROWS rows |"
    echo
    echo "| Target | MB/s | vs direct | vs masking off | Peak RSS (max over runs) | Under 64 MB | Sluice CPU s per GB |"
    echo "|---|--:|--:|--:|--:|---|--:|"
    echo "| Direct | $D | 1.00 | | | | |"
    echo "| Sluice, masking off | $OFF | **$(ratio "$OFF" "$D")** | | $OFF_HWM MiB | $(under_64 "$OFF_HWM") | $(cpu_per_gb sluice-off) |"
    echo "| Sluice, masking on | $ON | **$(ratio "$ON" "$D")** | **$(ratio "$ON" "$OFF")** | $ON_HWM MiB | $(under_64 "$ON_HWM") | $(cpu_per_gb sluice-on) |"
    echo
    echo "Reading the numbers: one session's result passes through one Sluice task, so with masking on the gateway is bound by one core (its CPU time is close to the wall time of those runs, below), and its CPU per GB is the figure that carries over to other machines. Direct is bound by the client, a single-threaded process that spends more CPU reading the backend's stream directly than through Sluice (Client CPU, below; presumably Sluice hands it fewer, larger segments than the backend's 8 KB sends), which is why masking off can match or beat direct. Client, Sluice and PostgreSQL share the machine; runs of a few seconds on a shared machine are noisy: compare targets within one run."
    echo
    echo "<details><summary>Every run, in the order run</summary>"
    echo
    echo "| Round | Target | Seconds | MB/s | Sluice peak RSS (MiB) | Sluice RSS at start (MiB) | Sluice CPU (s) | Client CPU (s) |"
    echo "|--:|---|--:|--:|--:|--:|--:|--:|"
    awk -F'\t' '{ d = ($2 == "direct"); printf "| %s | %s | %.2f | %s | %s | %s | %s | %s |\n", $1, $2, $4, $5, (d ? "-" : $6), (d ? "-" : $7), (d ? "-" : $8), $11 }' "$RESULTS"
    echo
    echo "</details>"
} >"$SECTION"

replace_section "$OUTPUT" "$SECTION" "$MASK_START" "$MASK_END"
log "results written to $OUTPUT"
echo
cat "$SECTION"
