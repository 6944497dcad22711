# shellcheck shell=bash
# Helpers for bench/run.sh and bench/masking.sh. Sourced, never run.

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    printf '[bench %s] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2
    exit 1
}

# Runs a command as the `postgres` OS user when we are root (initdb, pg_ctl
# and pgbouncer refuse to run as root), directly otherwise.
as_pg() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND every 0.2 s
# until it succeeds; dies with DESCRIPTION after the timeout.
wait_for() {
    local what=$1 timeout=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die "timed out after ${timeout}s waiting for ${what}"
        fi
        sleep 0.2
    done
}

# Is something listening on 127.0.0.1:PORT?
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A TCP port on loopback nobody listens on, not in $TAKEN_PORTS.
TAKEN_PORTS=" "
free_port() {
    local used p i
    used=" $(ss -Htan 2>/dev/null | awk '{n=split($4,a,":"); printf "%s ", a[n]}') "
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if [[ $used != *" $p "* && $TAKEN_PORTS != *" $p "* ]] && ! port_open "$p"; then
            TAKEN_PORTS+="$p "
            echo "$p"
            return 0
        fi
    done
    die "could not find a free loopback port"
}

# Median of the numbers on stdin (one per line), printed with the printf
# format $1 (default %.1f); empty input gives "".
median() {
    sort -g | awk -v fmt="${1:-%.1f}\n" '{ v[NR] = $1 } END {
        if (NR == 0) exit
        if (NR % 2) printf fmt, v[(NR + 1) / 2]
        else printf fmt, (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

# ratio A B -> A/B with two decimals, or "n/a".
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

# CPU seconds (user+system) a live process has used so far.
proc_cpu_seconds() {
    local pid=$1 hz
    hz=$(getconf CLK_TCK)
    # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
    sed 's/.*) //' "/proc/$pid/stat" | awk -v hz="$hz" '{ printf "%.2f\n", ($12 + $13) / hz }'
}

# A /proc/<pid>/status field (VmHWM, VmRSS ...) in MiB.
proc_status_mib() {
    awk -v k="$2:" '$1 == k { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"
}

# replace_section FILE SECTION_FILE [START_MARKER END_MARKER]: replaces the
# text between the markers (default: the pgbench ones of bench/run.sh) in
# FILE with the contents of SECTION_FILE (markers kept); creates FILE, or
# appends the markers at its end, if needed.
replace_section() {
    local file=$1 section=$2 start=${3:-'<!-- bench:pgbench:start -->'} end=${4:-'<!-- bench:pgbench:end -->'}
    if [[ ! -f $file ]]; then
        cat >"$file" <<'EOF'
# Benchmarks

Throughput of Sluice against a direct PostgreSQL connection and against
PgBouncer, measured with pgbench by `bench/run.sh` (see `bench/README.md`).
The section between the markers below is rewritten by that script.
EOF
    fi
    if ! grep -qF "$start" "$file" || ! grep -qF "$end" "$file"; then
        printf '\n%s\n%s\n' "$start" "$end" >>"$file"
    fi
    local tmp
    tmp=$(mktemp "${file}.XXXXXX")
    awk -v start="$start" -v end="$end" -v section="$section" '
        $0 == start { print; while ((getline line < section) > 0) print line; skipping = 1; next }
        $0 == end { skipping = 0 }
        !skipping { print }
    ' "$file" >"$tmp"
    cat "$tmp" >"$file" # keeps the file's owner and mode
    rm -f "$tmp"
}

# start_pg_cluster WHO: a throwaway PostgreSQL cluster on $PG_PORT (initdb and
# pg_ctl as postgres when root), defaults except a few settings, with role
# app_owner (SCRAM password $APP_PW) owning database app. Uses PG_BIN,
# PG_VERSION, PG_DIR, PGDATA_DIR, SOCK_DIR and OUT_DIR (PG_MAX_CONNECTIONS
# defaults to 100; PG_EXTRA_CONF, if set, is appended to postgresql.conf);
# defines pg_super.
start_pg_cluster() {
    local who=$1
    log "starting PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$OUT_DIR/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -n 5 "$OUT_DIR/initdb.log")"
    cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# $who: defaults except these
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCK_DIR'
shared_buffers = 256MB
max_connections = ${PG_MAX_CONNECTIONS:-100}
password_encryption = 'scram-sha-256'
${PG_EXTRA_CONF:-}
EOF
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null ||
        die "PostgreSQL did not start (log: $PG_DIR/postgres.log)"
    wait_for "PostgreSQL to accept connections" 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"
    pg_super -c "CREATE ROLE app_owner LOGIN PASSWORD '$APP_PW'" >/dev/null || die "cannot create role app_owner"
    pg_super -c "CREATE DATABASE app OWNER app_owner" >/dev/null || die "cannot create database app"
}

pg_super() { # SQL as the superuser over the private Unix socket
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PG_PORT" -U postgres -d "${PGDB:-postgres}" "$@"
}

# describe_run: sets CPU_MODEL, MEM_GIB, COMMIT, PG_VER and RUSTC_VER for a
# report (uses ROOT and PG_BIN).
describe_run() {
    CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    MEM_GIB=$(awk '$1 == "MemTotal:" { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
    COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$ROOT" status --porcelain -- . ':!bench' ':!BENCHMARKS.md' 2>/dev/null) ]]; then
        COMMIT+=" (working tree has uncommitted changes)"
    fi
    PG_VER=$("$PG_BIN/postgres" --version | sed 's/^postgres (PostgreSQL) //')
    RUSTC_VER=$(cd "$ROOT" && rustc --version 2>/dev/null || echo unknown)
}
