#!/usr/bin/env bash
# Side-by-side RESP benchmark: `lb ring serve` against a real redis-server answering GET
# for the same keys (issue 6; the latest table is in benches/RESULTS.md).
#
# Method: redis-server (no persistence) is preloaded with KEYS keys `key:000000000000` ...
# holding 14-byte values (the length of "127.0.0.1:7001"); `lb ring serve` (release build,
# one thread, like redis-server's one event loop) serves a consistent ring of three nodes,
# where every GET is a placement answer. redis-benchmark then runs, against each server in
# turn inside a round:
#   - GET, 50 clients, no pipelining (throughput),
#   - GET, 50 clients, 16-deep pipelines (-P 16),
#   - GET, 1 client (round-trip latency p50/p99),
# recording req/s, latency percentiles (redis-benchmark's own, in ms) and the server's CPU
# time per request (utime+stime from /proc/PID/stat over the run / requests). Figures are
# medians of REPEAT rounds; the server measured first alternates each round (`rotated` in
# lib.sh). The 2 cores are shared by redis-benchmark and the server.
#
# Env: REPEAT (default 3), KEYS (10000), REQUESTS (c50, default 300000),
#      PIPE_REQUESTS (c50 -P16, default 3000000), LAT_REQUESTS (c1, default 30000),
#      RING_THREADS (default 1), LB_BIN (skip the cargo build).
# Loopback only; every process started here is stopped by PID on exit; each load run is
# bounded by `timeout 120`.
set -euo pipefail

REPEAT=${REPEAT:-3}
KEYS=${KEYS:-10000}
REQUESTS=${REQUESTS:-300000}
PIPE_REQUESTS=${PIPE_REQUESTS:-3000000}
LAT_REQUESTS=${LAT_REQUESTS:-30000}
RING_THREADS=${RING_THREADS:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

NAME=ring.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
install_missing redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools python3:python3

if [[ -n ${LB_BIN:-} ]]; then
    LB=$LB_BIN
else
    log "building lb (release)"
    (cd "$ROOT" && timeout 2400 cargo build --release -j2 -p lb-cli)
    LB=$ROOT/target/release/lb
fi
[[ -x $LB ]] || die "lb binary not found at $LB"

read -r P_REDIS P_RING < <(free_ports 2)

redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no \
    --protected-mode no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PID_REDIS=$!
PIDS+=("$PID_REDIS")
RUST_LOG=warn "$LB" ring serve --listen "127.0.0.1:$P_RING" --strategy consistent \
    --backends 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --threads "$RING_THREADS" \
    >"$TMP/ring.log" 2>&1 &
PID_RING=$!
PIDS+=("$PID_RING")
wait_port "$P_REDIS" "$PID_REDIS" redis-server
wait_port "$P_RING" "$PID_RING" "lb ring serve"

log "preloading $KEYS keys into redis-server"
timeout 120 redis-benchmark -h 127.0.0.1 -p "$P_REDIS" -t set -r "$KEYS" -n $((KEYS * 20)) -d 14 -q >/dev/null
have=$(redis-cli -h 127.0.0.1 -p "$P_REDIS" dbsize)
((have >= KEYS * 99 / 100)) || die "redis-server holds $have keys, expected ~$KEYS"
# Both answer the same key names: a value from redis, an address from the ring.
log "redis GET key:000000000042 = $(redis-cli -h 127.0.0.1 -p "$P_REDIS" get key:000000000042)," \
    "ring GET key:000000000042 = $(redis-cli -h 127.0.0.1 -p "$P_RING" get key:000000000042)"

cpu_ticks() { local u s; read -r u s < <(tree_ticks "$1"); echo $((u + s)); }

# run NAME PORT PID LOAD REQUESTS ARGS... → appends "name load rps p50 p99 cpu_us" to results
run() {
    local name=$1 port=$2 pid=$3 load=$4 n=$5
    shift 5
    local c0 c1 csv
    c0=$(cpu_ticks "$pid")
    # stderr: redis-benchmark warns that the ring has no CONFIG to read; kept in the temp dir.
    csv=$(timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -t get -r "$KEYS" -n "$n" "$@" --csv 2>>"$TMP/bench.err") \
        || die "redis-benchmark failed against $name"
    c1=$(cpu_ticks "$pid")
    python3 - "$name" "$load" "$n" "$c0" "$c1" "$CLK_TCK" "$csv" >>"$TMP/results" <<'EOF'
import csv, io, sys
name, load, n, c0, c1, tck, text = sys.argv[1:]
rows = list(csv.DictReader(io.StringIO(text)))
r = rows[-1]
cpu_us = (int(c1) - int(c0)) / int(tck) * 1e6 / int(n)
print(name, load, r["rps"], r["p50_latency_ms"], r["p99_latency_ms"], f"{cpu_us:.3f}")
EOF
    log "$name $load: $(tail -1 "$TMP/results")"
}

: >"$TMP/results"
for round in $(seq "$REPEAT"); do
    log "round $round/$REPEAT"
    for target in $(rotated "$round" redis ring); do
        if [[ $target == redis ]]; then port=$P_REDIS pid=$PID_REDIS; else port=$P_RING pid=$PID_RING; fi
        run "$target" "$port" "$pid" c50 "$REQUESTS" -c 50
        run "$target" "$port" "$pid" c50-P16 "$PIPE_REQUESTS" -c 50 -P 16
        run "$target" "$port" "$pid" c1 "$LAT_REQUESTS" -c 1
    done
done
kill -0 "$PID_RING" 2>/dev/null || die "lb ring serve died during the runs (see its log)"

python3 - "$TMP/results" "$REPEAT" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def med(name, load, col):
    v = [float(r[col]) for r in rows if r[0] == name and r[1] == load]
    return statistics.median(v) if v else float("nan")
lines = [
    ("GET, 50 clients: req/s", "c50", 2, "{:,.0f}"),
    ("GET, 50 clients: CPU-µs/request (server)", "c50", 5, "{:.2f}"),
    ("GET, 50 clients, -P 16: req/s", "c50-P16", 2, "{:,.0f}"),
    ("GET, 50 clients, -P 16: CPU-µs/request (server)", "c50-P16", 5, "{:.3f}"),
    ("GET, 1 client: p50 latency (µs)", "c1", 3, "{:.0f}"),
    ("GET, 1 client: p99 latency (µs)", "c1", 4, "{:.0f}"),
    ("GET, 1 client: req/s", "c1", 2, "{:,.0f}"),
]
print(f"medians of {sys.argv[2]} rounds")
print("| metric | redis-server | lb ring serve | ring/redis |")
print("|---|---:|---:|---:|")
for label, load, col, fmt in lines:
    r, g = med("redis", load, col), med("ring", load, col)
    if col in (3, 4):
        r, g = r * 1000, g * 1000
    ratio = g / r if r else float("nan")
    print(f"| {label} | {fmt.format(r)} | {fmt.format(g)} | {ratio:.2f}× |")
EOF
