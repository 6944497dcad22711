# Sourced by bench/run.sh: many idle sessions held open through a proxy.
# Uses on_target, IDLE_BIN, IDLE_CONNECTIONS, OUT_DIR and IDLE_RESULTS.
#
# The sessions go to database app_tx: PgBouncer's transaction pool, reached
# directly (target pgbouncer) or through Sluice's resource app_tx (target
# sluice), so that thousands of client sessions share 20 server ones.
# Memory per connection is the proxy's RSS with them open minus its RSS
# before, divided by the number opened.

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }

measure_idle() { # measure_idle TARGET PID
    local t=$1 pid=$2 before after fifo out client line i
    fifo=$OUT_DIR/idle.$t.hold
    out=$OUT_DIR/idle.$t.out
    rm -f "$fifo"
    mkfifo "$fifo"
    before=$(rss_kib "$pid")
    log "idle: opening $IDLE_CONNECTIONS sessions through $t"
    DB=app_tx on_target "$t" "$IDLE_BIN" "$IDLE_CONNECTIONS" 64 <"$fifo" >"$out" 2>&1 &
    client=$!
    exec 7>"$fifo" # the client holds its sessions until this closes
    line=""
    for ((i = 0; i < 600; i++)); do
        line=$(grep -m 1 '^{' "$out" 2>/dev/null || true)
        [[ -n $line ]] && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.5
    done
    after=$(rss_kib "$pid")
    exec 7>&-
    wait "$client" || die "idle_clients through $t failed: $(tail -n 5 "$out")"
    rm -f "$fifo"
    [[ -n $line ]] || die "idle_clients through $t printed no result: $(tail -n 5 "$out")"
    local opened failed seconds
    opened=$(sed -n 's/.*"opened":\([0-9]*\).*/\1/p' <<<"$line")
    failed=$(sed -n 's/.*"failed":\([0-9]*\).*/\1/p' <<<"$line")
    seconds=$(sed -n 's/.*"seconds":\([0-9.e+-]*\).*/\1/p' <<<"$line")
    ((failed == 0)) || die "$failed of $IDLE_CONNECTIONS sessions through $t failed: $line"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$opened" "$failed" "$seconds" "$before" "$after" >>"$IDLE_RESULTS"
    log "idle: $opened sessions through $t in ${seconds}s, RSS ${before} -> ${after} KiB"
}

idle_report() { # the markdown table of IDLE_RESULTS
    echo "| Proxy | Sessions held | Time to open them (64 at a time) | Sessions / s | RSS before | RSS with them open | Memory per session |"
    echo "|---|--:|--:|--:|--:|--:|--:|"
    awk -F'\t' '{
        printf "| %s | %d | %.1f s | %.0f | %.1f MiB | %.1f MiB | %.1f KiB |\n",
            ($1 == "sluice" ? "Sluice, policy + audit (via PgBouncer transaction pool)" : "PgBouncer (transaction pool)"),
            $2, $4, ($4 > 0 ? $2 / $4 : 0), $5 / 1024, $6 / 1024, ($2 > 0 ? ($6 - $5) / $2 : 0) }' "$IDLE_RESULTS"
}
