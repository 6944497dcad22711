#!/usr/bin/env bash
# pgbench through Sluice, next to a direct connection and PgBouncer, on a
# throwaway PostgreSQL cluster. One command; see bench/README.md.
#
#   bench/run.sh                 # full run: DURATION=15 ROUNDS=2
#   QUICK=1 bench/run.sh         # smoke run: DURATION=3 ROUNDS=1
#   DURATION=30 ROUNDS=3 CLIENTS=16 SCALING_CLIENTS="1 32" bench/run.sh
#   IDLE_CONNECTIONS=5000 bench/run.sh
#
# Writes the results between the bench markers of BENCHMARKS.md and prints
# them. Everything it starts is stopped, and its temp dir removed, on exit
# (KEEP_TMP=1 keeps the temp dir with all logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

IDLE_WANTED=${IDLE_CONNECTIONS:-} # set by the caller: never lowered
if [[ ${QUICK:-0} == 1 ]]; then
    DURATION=${DURATION:-3}
    ROUNDS=${ROUNDS:-1}
    IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-2000}
fi
DURATION=${DURATION:-15}
ROUNDS=${ROUNDS:-2}
CLIENTS=${CLIENTS:-8}
# The same workloads at other client counts (direct, PgBouncer, Sluice only).
SCALING_CLIENTS=${SCALING_CLIENTS:-1 64}
# Idle sessions held open through Sluice (and through PgBouncer) at the
# end. Each session through a proxy needs two descriptors (client and
# upstream), so this must stay below half the open-files limit.
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-9000}
JOBS=${JOBS:-2}
SCALE=${SCALE:-10}
POOL_SIZE=${POOL_SIZE:-70}
PG_VERSION=${PG_VERSION:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
OUTPUT=${OUTPUT:-$ROOT/BENCHMARKS.md}
KEEP_TMP=${KEEP_TMP:-0}
for v in DURATION ROUNDS CLIENTS JOBS SCALE POOL_SIZE IDLE_CONNECTIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
MAX_CLIENTS=$CLIENTS
for c in $SCALING_CLIENTS; do
    [[ $c =~ ^[1-9][0-9]*$ ]] || die "SCALING_CLIENTS must be positive integers (got '$c')"
    ((c > MAX_CLIENTS)) && MAX_CLIENTS=$c
done
# PgBouncer keeps up to POOL_SIZE server connections, the transaction pool
# 20, and a run through Sluice opens MAX_CLIENTS of its own.
PG_MAX_CONNECTIONS=300
((POOL_SIZE + 20 + MAX_CLIENTS < PG_MAX_CONNECTIONS)) ||
    die "POOL_SIZE + clients must stay below the cluster's max_connections=$PG_MAX_CONNECTIONS"
((POOL_SIZE >= MAX_CLIENTS)) || die "POOL_SIZE ($POOL_SIZE) must be >= the most clients ($MAX_CLIENTS): session pooling needs one server connection per client"
# Everything started from here inherits the hard open-files limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if ((IDLE_CONNECTIONS * 2 + 200 >= NOFILE)); then
    [[ -z $IDLE_WANTED ]] ||
        die "IDLE_CONNECTIONS=$IDLE_CONNECTIONS needs $((IDLE_CONNECTIONS * 2 + 200)) open files in one proxy; the limit here is $NOFILE"
    IDLE_CONNECTIONS=$(((NOFILE - 201) / 2))
    log "the open-files limit is $NOFILE: holding $IDLE_CONNECTIONS idle sessions"
fi

# workload name -> pgbench arguments. Run order within a round is this order.
WORKLOADS=(select-simple select-prepared tpcb-simple)
declare -A WORKLOAD_ARGS=(
    [select-simple]="-S -M simple"
    [select-prepared]="-S -M prepared"
    [tpcb-simple]="-M simple"
)
# sluice: policy + audit log on (the product); sluice-fsync: the same with
# read_durability = "fsync" (results wait for the fsync, not the write);
# sluice-noaudit: the same policies with [audit] enabled = false, to measure
# what recording costs.
TARGETS=(direct pgbouncer sluice sluice-fsync sluice-noaudit)
SCALING_TARGETS=(direct pgbouncer sluice)

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

log "building sluice (cargo build --release -p sluice --bin sluice --example idle_clients)"
(cd "$ROOT" && cargo build --release -p sluice --bin sluice --example idle_clients >&2) ||
    die "cargo build --release -p sluice failed"
TARGET_DIR=$(cd "$ROOT" && cargo metadata --no-deps --format-version 1 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
SLUICE_BIN=${TARGET_DIR:-$ROOT/target}/release/sluice
IDLE_BIN=${TARGET_DIR:-$ROOT/target}/release/examples/idle_clients
[[ -x $SLUICE_BIN && -x $IDLE_BIN ]] || die "built binaries not found at $SLUICE_BIN, $IDLE_BIN"

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

# Sluice instances: target -> pid, port, key.
declare -A SL_PIDS=() SL_PORTS=() SL_KEYS=()
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
        for f in "$SL_DIR"/*/sluice.log "$PGB_DIR/pgbouncer.log" "$PG_DIR/postgres.log"; do
            [[ -s $f ]] || continue
            printf '\n--- last lines of %s ---\n' "$f" >&2
            tail -n 15 "$f" >&2
        done
    fi
    for t in "${!SL_PIDS[@]}"; do
        stop_pid "${SL_PIDS[$t]}" "$t"
    done
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
    sluice*) port=${SL_PORTS[$t]:?unknown target $t} user=bench pw=${SL_KEYS[$t]} ;;
    *) die "unknown target $t" ;;
    esac
    PGHOST=127.0.0.1 PGPORT=$port PGUSER=$user PGPASSWORD=$pw PGDATABASE=${DB:-app} PGSSLMODE=disable \
        PGCONNECT_TIMEOUT=10 "$@"
}
check_target() { # a real login and query through TARGET
    local out
    out=$(on_target "$1" "$PG_BIN/psql" -X -At -c "SELECT 1" 2>&1) && [[ $out == 1 ]] ||
        die "cannot query through $1: $out"
}
check_target direct

# --- 5. PgBouncer ----------------------------------------------------------------

log "starting PgBouncer on 127.0.0.1:$PGB_PORT"
printf '"%s" "%s"\n' app_owner "$SCRAM_VERIFIER" >"$PGB_DIR/userlist.txt"
cat >"$PGB_DIR/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
; Only for the idle-connection measurement: many clients, few servers.
app_tx = host=127.0.0.1 port=$PG_PORT dbname=app pool_mode=transaction pool_size=20

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = session
default_pool_size = $POOL_SIZE
max_client_conn = $((IDLE_CONNECTIONS + 200))
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
# PgBouncer keeps the soft open-files limit it is given (often 1024): the
# idle sessions need the hard one.
# shellcheck disable=SC2016 # expanded by the inner shell
as_pg bash -c 'ulimit -n "$(ulimit -Hn)" && exec pgbouncer -d -q "$1"' _ "$PGB_DIR/pgbouncer.ini" \
    >"$OUT_DIR/pgbouncer.stdout" 2>&1 ||
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
write_sluice_config() { # write_sluice_config TARGET AUDIT_ENABLED READ_DURABILITY
cat >"$SL_DIR/$1/sluice.toml" <<EOF
[server]
listen = "127.0.0.1:${SL_PORTS[$1]}"
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

# The idle-connection measurement only: the same database through
# PgBouncer's transaction pool, so that thousands of sessions fit.
[[resource]]
name = "app_tx"
kind = "postgres"
host = "127.0.0.1"
port = $PGB_PORT
database = "app_tx"
user = "app_owner"
password_env = "APP_DB_PASSWORD"
tags = { env = "bench" }

[audit]
enabled = $2
read_durability = "$3"
EOF
}
start_sluice() { # start_sluice TARGET AUDIT_ENABLED READ_DURABILITY
    local t=$1 pid
    mkdir -p "$SL_DIR/$t"
    SL_PORTS[$t]=$(free_port)
    write_sluice_config "$t" "$2" "$3"
    log "starting $t on 127.0.0.1:${SL_PORTS[$t]} (audit enabled = $2, read_durability = $3)"
    "$SLUICE_BIN" keys create --config "$SL_DIR/$t/sluice.toml" --identity bench --groups agents \
        >"$OUT_DIR/keys.$t.stdout" 2>"$OUT_DIR/keys.$t.stderr" ||
        die "sluice keys create failed: $(cat "$OUT_DIR/keys.$t.stderr")"
    SL_KEYS[$t]=$(tail -n 1 "$OUT_DIR/keys.$t.stdout")
    [[ -n ${SL_KEYS[$t]} && ${SL_KEYS[$t]} != *" "* ]] || die "sluice keys create printed no key"
    APP_DB_PASSWORD=$APP_PW "$SLUICE_BIN" serve --config "$SL_DIR/$t/sluice.toml" >"$SL_DIR/$t/sluice.log" 2>&1 &
    pid=$!
    SL_PIDS[$t]=$pid
    # shellcheck disable=SC2317 # called through wait_for
    listening() {
        kill -0 "$pid" 2>/dev/null || die "$t exited during startup"
        port_open "${SL_PORTS[$t]}"
    }
    wait_for "$t to listen on ${SL_PORTS[$t]}" 30 listening
    check_target "$t"
}
start_sluice sluice true written
start_sluice sluice-fsync true fsync
start_sluice sluice-noaudit false written

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
    {
        echo "export PG_BIN=$PG_BIN PG_PORT=$PG_PORT PGB_PORT=$PGB_PORT APP_PW=$APP_PW PGB_PID=$PGB_PID"
        for t in "${!SL_PIDS[@]}"; do
            v=${t//-/_}
            echo "export ${v^^}_PORT=${SL_PORTS[$t]} ${v^^}_PID=${SL_PIDS[$t]} ${v^^}_KEY=${SL_KEYS[$t]}"
        done
    } >"$TMP/env.sh"
    log "HOLD=1: everything is up; source $TMP/env.sh; Ctrl-C (or kill $$) stops it"
    while sleep 3600; do :; done
fi

# --- 8. runs ---------------------------------------------------------------------

proxy_pid() {
    case $1 in
    pgbouncer) echo "$PGB_PID" ;;
    sluice*) echo "${SL_PIDS[$1]}" ;;
    *) echo "" ;;
    esac
}

# round workload target clients tps txns latency_ms proxy_cpu_s failed p50_ms p99_ms
RESULTS=$OUT_DIR/results.tsv
: >"$RESULTS"

refusals() { # refusals TARGET: statements it has refused so far (logged at warn)
    grep -c 'statement refused' "$SL_DIR/$1/sluice.log" || true
}

percentiles() { # percentiles LOGFILE...: "p50 p99" in ms of pgbench's per-transaction log
    # Third column: the transaction's latency in microseconds.
    awk '{ print $3 }' "$@" | sort -n | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- -"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        printf "%.3f %.3f\n", v[i50] / 1000, v[i99] / 1000 }'
}

run_one() { # run_one ROUND WORKLOAD TARGET CLIENTS
    local round=$1 w=$2 t=$3 clients=$4 out pid cpu0=0 cpu1=0 tps txns lat failed refused0 refused
    local jobs=$((JOBS < clients ? JOBS : clients)) logging=() p50=- p99=-
    out=$OUT_DIR/$w.$t.c$clients.$round.log
    # Same starting state for every target: the tpcb tables are vacuumed and
    # history emptied (what pgbench's own pre-run vacuum does), then a
    # checkpoint so none starts in the middle of a run's first seconds.
    if [[ $w == tpcb-* ]]; then
        PGDB=app pg_super -c "VACUUM pgbench_branches" -c "VACUUM pgbench_tellers" \
            -c "TRUNCATE pgbench_history" >/dev/null
    fi
    pg_super -c "CHECKPOINT" >/dev/null
    [[ $t == sluice* ]] && refused0=$(refusals "$t")
    # One client: every transaction's latency is logged, for p50 and p99.
    ((clients == 1)) && logging=(-l "--log-prefix=$OUT_DIR/txlog.$w.$t.$round")
    pid=$(proxy_pid "$t")
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || die "$t (pid $pid) is no longer running"
        cpu0=$(proc_cpu_seconds "$pid")
    fi
    # shellcheck disable=SC2086 # WORKLOAD_ARGS holds several arguments
    if ! on_target "$t" "$PG_BIN/pgbench" -n ${WORKLOAD_ARGS[$w]} -c "$clients" -j "$jobs" -T "$DURATION" \
        "${logging[@]}" >"$out" 2>&1; then
        die "pgbench $w against $t failed (round $round, $clients clients): $(tail -n 8 "$out")"
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
        ((refused == 0)) || die "$t refused $refused statement(s) during $w (round $round): $(grep 'statement refused' "$SL_DIR/$t/sluice.log" | tail -n 3)"
    fi
    if ((clients == 1)); then
        read -r p50 p99 < <(percentiles "$OUT_DIR/txlog.$w.$t.$round".*)
        rm -f "$OUT_DIR/txlog.$w.$t.$round".*
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$w" "$t" "$clients" "$tps" "$txns" "${lat:-}" \
        "$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')" "$failed" "$p50" "$p99" >>"$RESULTS"
    log "round $round  $(printf '%-16s %-15s %3s clients' "$w" "$t" "$clients") tps $(printf '%10.1f' "$tps")  latency ${lat:-?} ms"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
n_scaling=$(wc -w <<<"$SCALING_CLIENTS")
total=$((ROUNDS * ${#WORKLOADS[@]} * (${#TARGETS[@]} + n_scaling * ${#SCALING_TARGETS[@]})))
log "running $total pgbench runs of ${DURATION}s (-c $CLIENTS, and -c $SCALING_CLIENTS), targets interleaved"
# The starting target rotates per round (round 1: direct, pgbouncer, sluice;
# round 2: pgbouncer, sluice, direct; ...), so a drift within a round does not
# always hit the same target last.
for ((round = 1; round <= ROUNDS; round++)); do
    for w in "${WORKLOADS[@]}"; do
        for ((k = 0; k < ${#TARGETS[@]}; k++)); do
            run_one "$round" "$w" "${TARGETS[(k + round - 1) % ${#TARGETS[@]}]}" "$CLIENTS"
        done
        for c in $SCALING_CLIENTS; do
            for ((k = 0; k < ${#SCALING_TARGETS[@]}; k++)); do
                run_one "$round" "$w" "${SCALING_TARGETS[(k + round - 1) % ${#SCALING_TARGETS[@]}]}" "$c"
            done
        done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 9. idle connections ---------------------------------------------------------

# shellcheck source=bench/idle.sh
source "$HERE/idle.sh"
IDLE_RESULTS=$OUT_DIR/idle.tsv # target opened failed seconds rss_before_kib rss_after_kib
: >"$IDLE_RESULTS"
measure_idle pgbouncer "$PGB_PID"
measure_idle sluice "${SL_PIDS[sluice]}"

# --- 10. report ------------------------------------------------------------------

# The audit log is really on: it holds every statement and verifies.
"$SLUICE_BIN" audit verify --config "$SL_DIR/sluice/sluice.toml" >"$OUT_DIR/verify.stdout" 2>"$OUT_DIR/verify.stderr" ||
    die "sluice audit verify failed after the runs: $(cat "$OUT_DIR/verify.stdout" "$OUT_DIR/verify.stderr")"
AUDIT_VERIFY=$(head -n 1 "$OUT_DIR/verify.stdout")
AUDIT_BYTES=$(du -cb "$SL_DIR"/sluice/data/audit.* 2>/dev/null | awk 'END { print $1 }')
log "audit log: $AUDIT_VERIFY ($AUDIT_BYTES bytes)"

SECTION=$OUT_DIR/section.md
# shellcheck source=bench/report.sh
source "$HERE/report.sh" >"$SECTION"
replace_section "$OUTPUT" "$SECTION"
log "results written to $OUTPUT"
echo
cat "$SECTION"

# --- 11. masking: a large result with masking off and on ---------------------
# The issue's second measurement lives in its own script (its own cluster, a
# 1 GB table); MASKING=0 skips it. It writes its own BENCHMARKS.md section.
if [[ ${MASKING:-1} == 1 ]]; then
    log "running bench/masking.sh (MASKING=0 skips it)"
    OUTPUT=$OUTPUT "$HERE/masking.sh" || die "bench/masking.sh failed"
fi
