# Sourced by bench/run.sh after the runs: prints BENCHMARKS.md's pgbench
# section (markdown) from RESULTS and IDLE_RESULTS.
# RESULTS columns: round workload target clients tps txns latency_ms
# proxy_cpu_s failed p50_ms p99_ms.

med() { # med WORKLOAD TARGET CLIENTS COLUMN [FORMAT]
    awk -F'\t' -v w="$1" -v t="$2" -v n="$3" -v c="$4" '$2 == w && $3 == t && $4 == n { print $c }' "$RESULTS" |
        median "${5:-%.1f}"
}
sum_col() { # sum_col WORKLOAD TARGET CLIENTS COLUMN
    awk -F'\t' -v w="$1" -v t="$2" -v n="$3" -v c="$4" '$2 == w && $3 == t && $4 == n { s += $c } END { printf "%.2f", s }' "$RESULTS"
}
us_per_txn() { # us_per_txn WORKLOAD TARGET CLIENTS: proxy CPU µs per transaction over all rounds
    local cpu txns
    cpu=$(sum_col "$1" "$2" "$3" 8)
    txns=$(sum_col "$1" "$2" "$3" 6)
    awk -v c="$cpu" -v n="$txns" 'BEGIN { if (n > 0) printf "%.1f", c * 1e6 / n; else print "n/a" }'
}

SL_PID=${SL_PIDS[sluice]}
describe_run
PGB_VER=$(pgbouncer --version 2>/dev/null | head -n1 | sed 's/^PgBouncer //')
C=$CLIENTS

echo "## pgbench: direct vs PgBouncer vs Sluice (policy + audit on)"
echo
echo "_Written by \`bench/run.sh\`$([[ ${QUICK:-0} == 1 ]] && echo ' (QUICK=1 smoke run, not a measurement)') on $(date -u). Do not edit by hand: rerun the script._"
echo
echo "| | |"
echo "|---|---|"
echo "| Machine | $(nproc) vCPU ($CPU_MODEL), $MEM_GIB GiB RAM, Linux $(uname -r), open-files limit $(ulimit -n); client, proxies and PostgreSQL share it; load average $LOAD_BEFORE before the runs, $LOAD_AFTER after |"
echo "| Commit | $COMMIT, $RUSTC_VER, \`cargo build --release\` |"
echo "| PostgreSQL | $PG_VER; defaults (fsync on, synchronous_commit on) except shared_buffers=256MB, max_connections=$PG_MAX_CONNECTIONS; TCP on 127.0.0.1 |"
echo "| PgBouncer | $PGB_VER; pool_mode=session, default_pool_size=$POOL_SIZE, auth_type=scram-sha-256, no TLS (and database \`app_tx\`, pool_mode=transaction, pool_size=20, for the idle sessions only) |"
echo "| Sluice | **policy on**: the shipped default policies (\`examples/policies/*.cedar\`), every statement classified (sluice-sql) and decided (Cedar) before it is forwarded; identity \`bench\` in group \`agents\`, resource tagged \`env = \"bench\"\`; all pgbench statements permitted, 0 failed transactions and 0 refusals checked on every run. Otherwise default settings, plaintext loopback listener, SCRAM client auth, log level info |"
echo "| Sluice, audit | **audit log on**: every command appended to the hash-chained log (journal, then SQLite index) before it is forwarded (writes outside a transaction block and COMMIT wait for the fsync; reads, BEGIN and changes inside a transaction block are forwarded at once, their results held until the record is written, \`read_durability = \"written\"\`), and one response record per command. After the runs, \`sluice audit verify\`: $AUDIT_VERIFY; log size $AUDIT_BYTES bytes |"
echo "| Sluice, read_durability = fsync | the same, with results also held until their record is fsynced (survives a power loss, not only a crash of the gateway) |"
echo "| Sluice without audit | the same binary, policies and settings with \`[audit] enabled = false\`: what the audit log costs is Sluice / Sluice without audit |"
echo "| Direct, PgBouncer | no policy (nothing classified) |"
echo "| pgbench | scale $SCALE; \`-c $C -j $JOBS -T $DURATION\` (and \`-c\` $SCALING_CLIENTS with \`-j\` at most the clients); $ROUNDS round(s), the targets interleaved per workload (starting target rotates per round); TPS excludes connection time; median over rounds |"
echo
echo "### $C clients"
echo
echo "| Workload | pgbench flags | Direct TPS | PgBouncer TPS | Sluice TPS | Sluice, fsync reads TPS | Sluice without audit TPS | PgBouncer / direct | Sluice / direct | Sluice / PgBouncer | Sluice, fsync reads / PgBouncer | Sluice without audit / PgBouncer | Sluice / Sluice without audit |"
echo "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
for w in "${WORKLOADS[@]}"; do
    d=$(med "$w" direct "$C" 5)
    b=$(med "$w" pgbouncer "$C" 5)
    s=$(med "$w" sluice "$C" 5)
    f=$(med "$w" sluice-fsync "$C" 5)
    n=$(med "$w" sluice-noaudit "$C" 5)
    echo "| $w | \`${WORKLOAD_ARGS[$w]}\` | $d | $b | $s | $f | $n | $(ratio "$b" "$d") | $(ratio "$s" "$d") | **$(ratio "$s" "$b")** | $(ratio "$f" "$b") | **$(ratio "$n" "$b")** | $(ratio "$s" "$n") |"
done
echo
echo "Median average latency (ms), $C clients:"
echo
echo "| Workload | Direct | PgBouncer | Sluice | Sluice, fsync reads | Sluice without audit |"
echo "|---|--:|--:|--:|--:|--:|"
for w in "${WORKLOADS[@]}"; do
    echo "| $w | $(med "$w" direct "$C" 7 %.3f) | $(med "$w" pgbouncer "$C" 7 %.3f) | $(med "$w" sluice "$C" 7 %.3f) | $(med "$w" sluice-fsync "$C" 7 %.3f) | $(med "$w" sluice-noaudit "$C" 7 %.3f) |"
done
echo
echo "Proxy processes, $C clients (CPU per transaction = process CPU time during that workload's runs / transactions completed):"
echo
echo "| Process | Peak RSS (VmHWM, whole bench) | $(for w in "${WORKLOADS[@]}"; do printf 'CPU µs/txn %s | ' "$w"; done)"
echo "|---|--:|$(for _ in "${WORKLOADS[@]}"; do printf -- '--:|'; done)"
echo "| PgBouncer | $(proc_status_mib "$PGB_PID" VmHWM) MiB | $(for w in "${WORKLOADS[@]}"; do printf '%s | ' "$(us_per_txn "$w" pgbouncer "$C")"; done)"
for t in sluice sluice-fsync sluice-noaudit; do
    echo "| $t ($(awk '$1 == "Threads:" { print $2 }' "/proc/${SL_PIDS[$t]}/status") threads) | $(proc_status_mib "${SL_PIDS[$t]}" VmHWM) MiB | $(for w in "${WORKLOADS[@]}"; do printf '%s | ' "$(us_per_txn "$w" "$t" "$C")"; done)"
done
echo
echo "### As clients grow"
echo
echo "TPS (median), and Sluice's CPU per transaction next to PgBouncer's:"
echo
echo "| Workload | Clients | Direct TPS | PgBouncer TPS | Sluice TPS | Sluice / PgBouncer | PgBouncer CPU µs/txn | Sluice CPU µs/txn |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
for w in "${WORKLOADS[@]}"; do
    for c in $(tr ' ' '\n' <<<"$SCALING_CLIENTS $C" | sort -n | uniq); do
        b=$(med "$w" pgbouncer "$c" 5)
        s=$(med "$w" sluice "$c" 5)
        echo "| $w | $c | $(med "$w" direct "$c" 5) | $b | $s | **$(ratio "$s" "$b")** | $(us_per_txn "$w" pgbouncer "$c") | $(us_per_txn "$w" sluice "$c") |"
    done
done
if awk -F'\t' '$4 == 1 { found = 1 } END { exit !found }' "$RESULTS"; then
    echo
    echo "Latency at 1 client (ms; every transaction logged by pgbench \`-l\`; median over rounds of each run's percentile):"
    echo
    echo "| Workload | Direct p50 | Direct p99 | PgBouncer p50 | PgBouncer p99 | Sluice p50 | Sluice p99 |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    for w in "${WORKLOADS[@]}"; do
        echo "| $w | $(med "$w" direct 1 10 %.3f) | $(med "$w" direct 1 11 %.3f) | $(med "$w" pgbouncer 1 10 %.3f) | $(med "$w" pgbouncer 1 11 %.3f) | $(med "$w" sluice 1 10 %.3f) | $(med "$w" sluice 1 11 %.3f) |"
    done
fi
echo
echo "### Idle sessions"
echo
echo "$IDLE_CONNECTIONS sessions opened (each logs in and runs \`SELECT 1\` once, tokio-postgres, \`crates/sluice/examples/idle_clients.rs\`), then held idle; the proxy's RSS before and with them open. Through Sluice each session holds two sockets (client and upstream), so one process holds at most half its open-files limit ($(ulimit -n) here, the hard limit, which Sluice raises its soft limit to at start): 10,000 would need more than 20,000."
echo
idle_report
echo
echo "<details><summary>Every run, in the order run</summary>"
echo
echo "| Round | Workload | Target | Clients | TPS | Transactions | Failed | Latency (ms) | p50 / p99 (ms) | Proxy CPU (s) |"
echo "|--:|---|---|--:|--:|--:|--:|--:|--:|--:|"
awk -F'\t' '{ printf "| %s | %s | %s | %s | %.1f | %s | %s | %s | %s / %s | %s |\n", $1, $2, $3, $4, $5, $6, $9, $7, $10, $11, ($3 == "direct" ? "-" : $8) }' "$RESULTS"
echo
echo "</details>"
