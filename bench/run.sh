#!/usr/bin/env bash
# pgbench through Sluice, next to a direct connection and PgBouncer, on a
# throwaway PostgreSQL cluster. One command; see bench/README.md.
#
#   bench/run.sh                 # full run: DURATION=15 ROUNDS=2
#   QUICK=1 bench/run.sh         # smoke run: DURATION=3 ROUNDS=1
#   DURATION=30 ROUNDS=3 CLIENTS=16 bench/run.sh
#
# Writes the results between the bench markers of BENCHMARKS.md and prints
# them. Everything it starts is stopped, and its temp dir removed, on exit
# (KEEP_TMP=1 keeps the temp dir with all logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-3}
    ROUNDS=${ROUNDS:-1}
fi
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-8}
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-20}
PG_VERSION=${PG_VERSION:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
OUTPUT=${OUTPUT:-$ROOT/BENCHMARKS.md}
KEEP_TMP=${KEEP_TMP:-0}
for v in DURATION ROUNDS CLIENTS JOBS SCALE POOL_SIZE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
((CLIENTS < 90)) || die "CLIENTS must stay below the cluster's max_connections=100"
((POOL_SIZE >= CLIENTS)) || die "POOL_SIZE ($POOL_SIZE) must be >= CLIENTS ($CLIENTS): session pooling needs one server connection per client"

# workload name -> pgbench arguments. Run order within a round is this order.
WORKLOADS=(select-simple select-prepared tpcb-simple)
declare -A WORKLOAD_ARGS=(
    [select-simple]="-S -M simple"
    [select-prepared]="-S -M prepared"
    [tpcb-simple]="-M simple"
)
# sluice: policy + audit log on (the product); sluice-noaudit: the same
# policies with [audit] enabled = false, to measure what recording costs.
TARGETS=(direct pgbouncer sluice sluice-noaudit)

# Inherited libpq settings must not leak into any connection made here.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGPASSFILE PGDATABASE PGSERVICE PGSERVICEFILE \
    PGOPTIONS PGSSLMODE PGCONNECT_TIMEOUT PGAPPNAME PGTARGETSESSIONATTRS

# --- 1. prerequisites -------------------------------------------------------

install_missing() {
    local pkgs=()
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/postgres && -x $PG_BIN/pgbench ]] ||
        pkgs+=("postgresql-$PG_VERSION")
    [[ -x $PG_BIN/psql ]] || pkgs+=("postgresql-client-$PG_VERSION")
    command -v pgbouncer >/dev/null 2>&1 || pkgs+=(pgbouncer)
    command -v ss >/dev/null 2>&1 || pkgs+=(iproute2)
    if ((${#pkgs[@]})); then
        [[ $EUID -eq 0 ]] || die "missing packages (${pkgs[*]}); run as root or install them with apt-get first"
        command -v apt-get >/dev/null 2>&1 || die "missing packages (${pkgs[*]}) and no apt-get to install them"
        log "installing ${pkgs[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >&2 || die "apt-get update failed"
        apt-get install -y -q --no-install-recommends "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed"
    fi
    for b in initdb pg_ctl postgres pgbench psql pg_isready; do
        [[ -x $PG_BIN/$b ]] || die "$PG_BIN/$b not found after installation (set PG_BIN?)"
    done
    command -v pgbouncer >/dev/null 2>&1 || die "pgbouncer not found after installation"
    if [[ $EUID -eq 0 ]]; then
        getent passwd postgres >/dev/null || die "running as root needs a 'postgres' OS user (created by the postgresql package)"
        command -v runuser >/dev/null 2>&1 || die "running as root needs runuser (util-linux)"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install a Rust toolchain (rustup) first"
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

TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
chmod 755 "$TMP" # the postgres user must reach its subdirectories
PG_DIR=$TMP/pg
PGDATA_DIR=$PG_DIR/data
SOCK_DIR=$PG_DIR/sock
PGB_DIR=$TMP/pgbouncer
SL_DIR=$TMP/sluice
OUT_DIR=$TMP/out
mkdir -p "$PG_DIR" "$PGDATA_DIR" "$SOCK_DIR" "$PGB_DIR" "$SL_DIR" "$OUT_DIR"
chmod 700 "$PGDATA_DIR" "$SOCK_DIR" "$SL_DIR"
if [[ $EUID -eq 0 ]]; then
    chown -R postgres: "$PG_DIR" "$PGB_DIR"
fi
cd "$TMP" # runuser keeps the cwd; it must be readable by postgres

SLUICE_PID=""
SLUICE2_PID=""
PGB_PID=""

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
        for f in "$SL_DIR/sluice.log" "$SL_DIR/sluice-noaudit.log" "$PGB_DIR/pgbouncer.log" "$PG_DIR/postgres.log"; do
            [[ -s $f ]] || continue
            printf '\n--- last lines of %s ---\n' "$f" >&2
            tail -n 15 "$f" >&2
        done
    fi
    [[ -n $SLUICE_PID ]] && stop_pid "$SLUICE_PID" sluice
    [[ -n $SLUICE2_PID ]] && stop_pid "$SLUICE2_PID" sluice-noaudit
    if [[ -z $PGB_PID && -s $PGB_DIR/pgbouncer.pid ]]; then
        PGB_PID=$(cat "$PGB_DIR/pgbouncer.pid" 2>/dev/null)
    fi
    [[ -n $PGB_PID ]] && stop_pid "$PGB_PID" pgbouncer
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

# --- 4. PostgreSQL -------------------------------------------------------------

PG_PORT=$(free_port)
PGB_PORT=$(free_port)
SL_PORT=$(free_port)
SL2_PORT=$(free_port)
APP_PW=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

start_pg_cluster "bench/run.sh"
SCRAM_VERIFIER=$(pg_super -At -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'app_owner'")
[[ $SCRAM_VERIFIER == SCRAM-SHA-256\$* ]] || die "app_owner's password is not stored as a SCRAM verifier"

on_target() { # on_target TARGET COMMAND...: run a libpq client against TARGET
    local t=$1 port user pw
    shift
    case $t in
    direct) port=$PG_PORT user=app_owner pw=$APP_PW ;;
    pgbouncer) port=$PGB_PORT user=app_owner pw=$APP_PW ;;
    sluice) port=$SL_PORT user=bench pw=$SLUICE_KEY ;;
    sluice-noaudit) port=$SL2_PORT user=bench pw=$SLUICE_KEY ;;
    *) die "unknown target $t" ;;
    esac
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=$user PGPASSWORD=$pw PGDATABASE=app PGSSLMODE=disable \
        PGCONNECT_TIMEOUT=10 "$@"
}
check_target() { # a real login and query through TARGET
    local out
    out=$(on_target "$1" "$PG_BIN/psql" -X -At -c "SELECT 1" 2>&1) && [[ $out == 1 ]] ||
        die "cannot query through $1: $out"
}
SLUICE_KEY=unset
check_target direct

# --- 5. PgBouncer ----------------------------------------------------------------

log "starting PgBouncer on 127.0.0.1:$PGB_PORT"
printf '"%s" "%s"\n' app_owner "$SCRAM_VERIFIER" >"$PGB_DIR/userlist.txt"
cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = session
default_pool_size = $POOL_SIZE
max_client_conn = 200
server_tls_sslmode = disable
client_tls_sslmode = disable
ignore_startup_parameters = extra_float_digits
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
EOF
if [[ $EUID -eq 0 ]]; then
    chown postgres: "$PGB_DIR/userlist.txt" "$PGB_DIR/pgbouncer.ini"
fi
chmod 600 "$PGB_DIR/userlist.txt"
as_pg pgbouncer -d -q "$PGB_DIR/pgbouncer.ini" >"$OUT_DIR/pgbouncer.stdout" 2>&1 ||
    die "pgbouncer did not start: $(tail -n 5 "$OUT_DIR/pgbouncer.stdout") (log: $PGB_DIR/pgbouncer.log)"
wait_for "PgBouncer's pidfile" 30 test -s "$PGB_DIR/pgbouncer.pid"
PGB_PID=$(cat "$PGB_DIR/pgbouncer.pid")
pgb_listening() {
    kill -0 "$PGB_PID" 2>/dev/null || die "pgbouncer exited during startup"
    port_open "$PGB_PORT"
}
wait_for "PgBouncer to listen on $PGB_PORT" 30 pgb_listening
check_target pgbouncer

# --- 6. Sluice -------------------------------------------------------------------

POLICY_GLOB=$ROOT/examples/policies/*.cedar
compgen -G "$POLICY_GLOB" >/dev/null || die "no default policies match $POLICY_GLOB"
[[ $POLICY_GLOB != *[\"\\]* ]] || die "the repository path ($ROOT) must not contain \" or \\ (it goes into a TOML string)"
log "starting Sluice ($SLUICE_BIN) on 127.0.0.1:$SL_PORT, policy + audit on ($POLICY_GLOB)"
write_sluice_config() { # write_sluice_config FILE PORT AUDIT_ENABLED
cat >"$1" <<EOF
[server]
listen = "127.0.0.1:$2"
# Both instances share the key store; only the first writes an audit log.
data_dir = "data"
shutdown_grace_secs = 2

# Policy on: the shipped default policies. Every statement is classified and
# decided. The bench identity is in group "agents" and the resource is not
# prod, so pgbench's reads, writes (UPDATE ... WHERE, INSERT) and BEGIN/END
# are permitted.
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
enabled = $3
EOF
}
write_sluice_config "$SL_DIR/sluice.toml" "$SL_PORT" true
write_sluice_config "$SL_DIR/sluice-noaudit.toml" "$SL2_PORT" false
"$SLUICE_BIN" keys create --config "$SL_DIR/sluice.toml" --identity bench --groups agents \
    >"$OUT_DIR/keys.stdout" 2>"$OUT_DIR/keys.stderr" ||
    die "sluice keys create failed: $(cat "$OUT_DIR/keys.stderr")"
SLUICE_KEY=$(tail -n 1 "$OUT_DIR/keys.stdout")
[[ -n $SLUICE_KEY && $SLUICE_KEY != *" "* ]] || die "sluice keys create printed no key"
start_sluice() { # start_sluice TARGET PORT: sets SLUICE_PID or SLUICE2_PID
    local t=$1 port=$2 pid
    APP_DB_PASSWORD=$APP_PW "$SLUICE_BIN" serve --config "$SL_DIR/$t.toml" >"$SL_DIR/$t.log" 2>&1 &
    pid=$!
    if [[ $t == sluice ]]; then SLUICE_PID=$pid; else SLUICE2_PID=$pid; fi
    # shellcheck disable=SC2317 # called through wait_for
    listening() {
        kill -0 "$pid" 2>/dev/null || die "$t exited during startup"
        port_open "$port"
    }
    wait_for "$t to listen on $port" 30 listening
    check_target "$t"
}
start_sluice sluice "$SL_PORT"
log "starting Sluice without the audit log on 127.0.0.1:$SL2_PORT"
start_sluice sluice-noaudit "$SL2_PORT"

# --- 7. data ---------------------------------------------------------------------

log "initialising pgbench data, scale $SCALE (directly)"
on_target direct "$PG_BIN/pgbench" -i -q -s "$SCALE" >"$OUT_DIR/pgbench-init.log" 2>&1 ||
    die "pgbench -i failed: $(tail -n 5 "$OUT_DIR/pgbench-init.log")"
PGDB=app pg_super -c "VACUUM ANALYZE" >/dev/null

# Policy is really on: what the defaults forbid agents is refused (history is
# empty here, so nothing is lost if it were not), what pgbench needs is not.
out=$(on_target sluice "$PG_BIN/psql" -X -At -c "TRUNCATE pgbench_history" 2>&1) &&
    die "Sluice let TRUNCATE through: policy is not on ($out)"
[[ $out == *'denied by policy "agents-no-truncate"'* ]] ||
    die "TRUNCATE through Sluice failed, but not by policy: $out"
out=$(on_target sluice "$PG_BIN/psql" -X -At -c "BEGIN" \
    -c "UPDATE pgbench_tellers SET tbalance = tbalance WHERE tid = 1" -c "END" 2>&1) ||
    die "the default policies refuse a pgbench-like transaction through Sluice: $out"
log "policy check: TRUNCATE denied by agents-no-truncate, BEGIN/UPDATE ... WHERE/END allowed"

# HOLD=1: keep everything running for profiling by hand (perf, strace)
# instead of running the benchmark; $TMP/env.sh has what a client needs.
if [[ ${HOLD:-0} == 1 ]]; then
    cat >"$TMP/env.sh" <<EOF
export PG_BIN=$PG_BIN PG_PORT=$PG_PORT PGB_PORT=$PGB_PORT SL_PORT=$SL_PORT SL2_PORT=$SL2_PORT
export APP_PW=$APP_PW SLUICE_KEY=$SLUICE_KEY SLUICE_PID=$SLUICE_PID SLUICE2_PID=$SLUICE2_PID PGB_PID=$PGB_PID
EOF
    log "HOLD=1: everything is up; source $TMP/env.sh; Ctrl-C (or kill $$) stops it"
    while sleep 3600; do :; done
fi

# --- 8. runs ---------------------------------------------------------------------

proxy_pid() {
    case $1 in
    pgbouncer) echo "$PGB_PID" ;;
    sluice) echo "$SLUICE_PID" ;;
    sluice-noaudit) echo "$SLUICE2_PID" ;;
    *) echo "" ;;
    esac
}

RESULTS=$OUT_DIR/results.tsv # round workload target tps txns latency_ms proxy_cpu_s failed
: >"$RESULTS"

refusals() { # refusals TARGET: statements it has refused so far (logged at warn)
    grep -c 'statement refused' "$SL_DIR/$1.log" || true
}

run_one() { # run_one ROUND WORKLOAD TARGET
    local round=$1 w=$2 t=$3 out pid cpu0=0 cpu1=0 tps txns lat failed refused0 refused
    out=$OUT_DIR/$w.$t.$round.log
    # Same starting state for every target: the tpcb tables are vacuumed and
    # history emptied (what pgbench's own pre-run vacuum does), then a
    # checkpoint so none starts in the middle of a run's first seconds.
    if [[ $w == tpcb-* ]]; then
        PGDB=app pg_super -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" \
            -c "TRUNCATE pgbench_history" >/dev/null
    fi
    pg_super -c "CHECKPOINT" >/dev/null
    [[ $t == sluice* ]] && refused0=$(refusals "$t")
    pid=$(proxy_pid "$t")
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || die "$t (pid $pid) is no longer running"
        cpu0=$(proc_cpu_seconds "$pid")
    fi
    # shellcheck disable=SC2086 # WORKLOAD_ARGS holds several arguments
    if ! on_target "$t" "$PG_BIN/pgbench" -n ${WORKLOAD_ARGS[$w]} -c "$CLIENTS" -j "$JOBS" -T "$DURATION" \
        >"$out" 2>&1; then
        die "pgbench $w against $t failed (round $round): $(tail -n 8 "$out")"
    fi
    [[ -n $pid ]] && cpu1=$(proc_cpu_seconds "$pid")
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$out")
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$out")
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    [[ -n $tps && -n $txns ]] || die "could not parse pgbench output for $w against $t: $(tail -n 8 "$out")"
    # pgbench >= 15 always prints the failed count; a policy refusal or any
    # other error either counts there or aborts the client ("aborted", exit
    # status 2, caught above). Any of these fails the whole bench.
    [[ -n $failed ]] || die "pgbench printed no 'number of failed transactions' for $w against $t (pgbench >= 15 needed): $(tail -n 8 "$out")"
    ((failed == 0)) || die "pgbench reported $failed failed transactions for $w against $t (round $round): $(grep -m 3 -i 'error' "$out")"
    if grep -qiE 'error|aborted' "$out"; then
        die "pgbench printed errors for $w against $t (round $round): $(grep -m 3 -iE 'error|aborted' "$out")"
    fi
    if [[ $t == sluice* ]]; then
        refused=$(($(refusals "$t") - refused0))
        ((refused == 0)) || die "$t refused $refused statement(s) during $w (round $round): $(grep 'statement refused' "$SL_DIR/$t.log" | tail -n 3)"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$t" "$tps" "$txns" "${lat:-}" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" "$failed" >>"$RESULTS"
    log "round $round  $(printf '%-16s %-10s' "$w" "$t") tps $(printf '%10.1f' "$tps")  latency ${lat:-?} ms"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
total=$((ROUNDS * ${#WORKLOADS[@]} * ${#TARGETS[@]}))
log "running $total pgbench runs of ${DURATION}s (-c $CLIENTS -j $JOBS), targets interleaved"
# The starting target rotates per round (round 1: direct, pgbouncer, sluice;
# round 2: pgbouncer, sluice, direct; ...), so a drift within a round does not
# always hit the same target last.
for ((round = 1; round <= ROUNDS; round++)); do
    for w in "${WORKLOADS[@]}"; do
        for ((k = 0; k < ${#TARGETS[@]}; k++)); do
            run_one "$round" "$w" "${TARGETS[(k + round - 1) % ${#TARGETS[@]}]}"
        done
    done
done

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
SL_HWM=$(proc_status_mib "$SLUICE_PID" VmHWM)
SL_RSS=$(proc_status_mib "$SLUICE_PID" VmRSS)
SL_CPU=$(proc_cpu_seconds "$SLUICE_PID")
SL_THREADS=$(awk '$1 == "Threads:" { print $2 }' "/proc/$SLUICE_PID/status")
SL2_HWM=$(proc_status_mib "$SLUICE2_PID" VmHWM)
SL2_CPU=$(proc_cpu_seconds "$SLUICE2_PID")

# The audit log is really on: it holds every statement and verifies.
"$SLUICE_BIN" audit verify --config "$SL_DIR/sluice.toml" >"$OUT_DIR/verify.stdout" 2>"$OUT_DIR/verify.stderr" ||
    die "sluice audit verify failed after the runs: $(cat "$OUT_DIR/verify.stdout" "$OUT_DIR/verify.stderr")"
AUDIT_VERIFY=$(head -n 1 "$OUT_DIR/verify.stdout")
AUDIT_BYTES=$(du -cb "$SL_DIR"/data/audit.db* 2>/dev/null | awk 'END { print $1 }')
log "audit log: $AUDIT_VERIFY ($AUDIT_BYTES bytes)"
PGB_HWM=$(proc_status_mib "$PGB_PID" VmHWM)
PGB_CPU=$(proc_cpu_seconds "$PGB_PID")

# --- 9. report -------------------------------------------------------------------

med() { # med WORKLOAD TARGET COLUMN [FORMAT]
    awk -F'\t' -v w="$1" -v t="$2" -v c="$3" '$2 == w && $3 == t { print $c }' "$RESULTS" | median "${4:-%.1f}"
}
sum_col() { # sum_col WORKLOAD TARGET COLUMN
    awk -F'\t' -v w="$1" -v t="$2" -v c="$3" '$2 == w && $3 == t { s += $c } END { printf "%.2f", s }' "$RESULTS"
}
us_per_txn() { # proxy CPU microseconds per transaction over all rounds
    local cpu txns
    cpu=$(sum_col "$1" "$2" 7)
    txns=$(sum_col "$1" "$2" 5)
    awk -v c="$cpu" -v n="$txns" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / n; else print "n/a" }'
}

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
MEM_GIB=$(awk '$1 == "MemTotal:" { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain -- . ':!bench' ':!BENCHMARKS.md' 2>/dev/null) ]]; then
    COMMIT+=" (working tree has uncommitted changes)"
fi
PG_VER=$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
PGB_VER=$(pgbouncer --version 2>/dev/null | head -n1 | sed 's/^PgBouncer //')
RUSTC_VER=$(cd "$ROOT" && rustc --version 2>/dev/null || echo unknown)

SECTION=$OUT_DIR/section.md
{
    echo "## pgbench: direct vs PgBouncer vs Sluice (policy + audit on)"
    echo
    echo "_Written by \`bench/run.sh\`$([[ ${QUICK:-0} == 1 ]] && echo ' (QUICK=1 smoke run, not a measurement)') on $(date -u). Do not edit by hand: rerun the script._"
    echo
    echo "| | |"
    echo "|---|---|"
    echo "| Machine | $(nproc) vCPU ($CPU_MODEL), $MEM_GIB GiB RAM, Linux $(uname -r); client, proxies and PostgreSQL share it; load average $LOAD_BEFORE before the runs, $LOAD_AFTER after |"
    echo "| Commit | $COMMIT, $RUSTC_VER, \`cargo build --release\` |"
    echo "| PostgreSQL | $PG_VER; defaults (fsync on, synchronous_commit on) except shared_buffers=256MB, max_connections=100; TCP on 127.0.0.1 |"
    echo "| PgBouncer | $PGB_VER; pool_mode=session, default_pool_size=$POOL_SIZE, auth_type=scram-sha-256, no TLS |"
    echo "| Sluice | **policy on**: the shipped default policies (\`examples/policies/*.cedar\`), every statement classified (sluice-sql) and decided (Cedar) before it is forwarded; identity \`bench\` in group \`agents\`, resource tagged \`env = \"bench\"\`; all pgbench statements permitted, 0 failed transactions and 0 refusals checked on every run. Otherwise default settings, plaintext loopback listener, SCRAM client auth, log level info |"
    echo "| Sluice, audit | **audit log on**: every command appended to the hash-chained log (journal, then SQLite index) before it is forwarded (writes outside a transaction block and COMMIT wait for the fsync; reads, BEGIN and changes inside a transaction block are forwarded at once, their results held until the record is written, \`read_durability = \"written\"\`), and one response record per command. After the runs, \`sluice audit verify\`: $AUDIT_VERIFY; log size $AUDIT_BYTES bytes |"
    echo "| Sluice without audit | the same binary, policies and settings with \`[audit] enabled = false\`: what the audit log costs is Sluice / Sluice without audit |"
    echo "| Direct, PgBouncer | no policy (nothing classified) |"
    echo "| pgbench | scale $SCALE; \`-c $CLIENTS -j $JOBS -T $DURATION\`; $ROUNDS round(s), the four targets interleaved per workload (starting target rotates per round); TPS excludes connection time; median over rounds |"
    echo
    echo "| Workload | pgbench flags | Direct TPS | PgBouncer TPS | Sluice TPS | Sluice without audit TPS | PgBouncer / direct | Sluice / direct | Sluice / PgBouncer | Sluice / Sluice without audit |"
    echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    for w in "${WORKLOADS[@]}"; do
        d=$(med "$w" direct 4)
        b=$(med "$w" pgbouncer 4)
        s=$(med "$w" sluice 4)
        n=$(med "$w" sluice-noaudit 4)
        echo "| $w | \`${WORKLOAD_ARGS[$w]}\` | $d | $b | $s | $n | $(ratio "$b" "$d") | $(ratio "$s" "$d") | **$(ratio "$s" "$b")** | **$(ratio "$s" "$n")** |"
    done
    echo
    echo "Median average latency (ms):"
    echo
    echo "| Workload | Direct | PgBouncer | Sluice | Sluice without audit |"
    echo "|---|--:|--:|--:|--:|"
    for w in "${WORKLOADS[@]}"; do
        echo "| $w | $(med "$w" direct 6 %.3f) | $(med "$w" pgbouncer 6 %.3f) | $(med "$w" sluice 6 %.3f) | $(med "$w" sluice-noaudit 6 %.3f) |"
    done
    echo
    echo "Proxy processes (CPU per transaction = process CPU time during that workload's runs / transactions completed):"
    echo
    echo "| Process | Peak RSS (VmHWM) | CPU time, all runs | $(for w in "${WORKLOADS[@]}"; do printf 'CPU µs/txn %s | ' "$w"; done)"
    echo "|---|--:|--:|$(for _ in "${WORKLOADS[@]}"; do printf -- '--:|'; done)"
    echo "| PgBouncer | $PGB_HWM MiB | $PGB_CPU s | $(for w in "${WORKLOADS[@]}"; do printf '%s | ' "$(us_per_txn "$w" pgbouncer)"; done)"
    echo "| Sluice, policy + audit ($SL_THREADS threads, RSS now $SL_RSS MiB) | $SL_HWM MiB | $SL_CPU s | $(for w in "${WORKLOADS[@]}"; do printf '%s | ' "$(us_per_txn "$w" sluice)"; done)"
    echo "| Sluice without audit | $SL2_HWM MiB | $SL2_CPU s | $(for w in "${WORKLOADS[@]}"; do printf '%s | ' "$(us_per_txn "$w" sluice-noaudit)"; done)"
    echo
    echo "<details><summary>Every run, in the order run</summary>"
    echo
    echo "| Round | Workload | Target | TPS | Transactions | Failed | Latency (ms) | Proxy CPU (s) |"
    echo "|--:|---|---|--:|--:|--:|--:|--:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %.1f | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $8, $6, ($3 == "direct" ? "-" : $7) }' "$RESULTS"
    echo
    echo "</details>"
} >"$SECTION"

replace_section "$OUTPUT" "$SECTION"
log "results written to $OUTPUT"
echo
cat "$SECTION"

# --- 10. masking: a large result with masking off and on ---------------------
# The issue's second measurement lives in its own script (its own cluster, a
# 1 GB table); MASKING=0 skips it. It writes its own BENCHMARKS.md section.
if [[ ${MASKING:-1} == 1 ]]; then
    log "running bench/masking.sh (MASKING=0 skips it)"
    OUTPUT=$OUTPUT "$HERE/masking.sh" || die "bench/masking.sh failed"
fi
