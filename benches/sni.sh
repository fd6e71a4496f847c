#!/usr/bin/env bash
# Side-by-side TLS passthrough benchmark: lb-sni vs HAProxy (mode tcp, req.ssl_sni) vs
# nginx stream (ssl_preread). See benches/README.md.
#
# Method: one nginx terminates TLS on two loopback ports (self-signed certificate) and
# answers "hello\n" on / and a BIG_MB file on /big. Each router (WORKERS workers/threads
# each, default 1) reads the ClientHello, matches its SNI against one route and splices to
# the two backends round-robin, without terminating TLS. For each router, wrk
# -t$WRK_THREADS (default WORKERS) runs:
#   keepalive  -c64, HTTPS keep-alive requests through one TLS session per connection;
#   close      -c32, "Connection: close": a new TCP+TLS connection per request;
#   bulk       -c4 on /big: bulk throughput.
# Recorded: req/s (bulk: MB/s), p99, and the router's CPU time (utime+stime from
# /proc/PID/stat, summed over its processes) per request, per connection and per GB; and
# the whole path's: the router, the backend nginx and wrk together (the router's effect
# on the others shows here, e.g. smaller reads and writes it makes them do); and the
# machine's: every CPU's busy time over the run (/proc/stat), which also counts the
# kernel's network work that no process of the path is charged for (softirq time alone
# was 14 % of the machine's busy time in one bulk run on loopback).
# Each figure is the median of REPEAT rounds; inside a round each load runs on every router
# in turn (the runs a ratio compares are next to each other in time), in
# an order that rotates by one each round (`rotated` in lib.sh).
#
# Env: DURATION (s, default 10), REPEAT (default 1), BIG_MB (default 256),
#      MODES (the loads, any of keepalive, close, bulk; default all three),
#      LB_SNI_BIN (skip the cargo build), KEEP_TMP=1,
#      BASELINE_BIN (another lb-sni build, measured in the same rounds as a fourth router
#      "baseline": a change compared side by side, not against a figure from another run),
#      WORKERS (default 1: lb-sni threads, nginx worker_processes, HAProxy nbthread),
#      PIN=1 (one worker only: the proxy on CPU 1, wrk and the backends on CPU 0),
#      WRK_THREADS (default WORKERS), BACKEND_WORKERS (default 1), LB_ENV / BASELINE_ENV
#      (environment of the lb-sni / baseline process, e.g. BASELINE_ENV=LB_REUSEPORT=1:
#      per-worker SO_REUSEPORT listeners beside the shared one; see benches/README.md).
# Loopback only; every process started here is stopped by PID on exit.
set -euo pipefail

DURATION=${DURATION:-10}
REPEAT=${REPEAT:-1}
BIG_MB=${BIG_MB:-256}
MODES=${MODES:-keepalive close bulk}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

NAME=sni.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
install_missing nginx:nginx /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream \
    haproxy:haproxy wrk:wrk openssl:openssl curl:curl python3:python3
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [[ -n ${LB_SNI_BIN:-} ]]; then
    LB=$LB_SNI_BIN
else
    log "building lb-sni (release)"
    (cd "$ROOT" && timeout 1800 cargo build --release -j2 -p lb-sni)
    LB=$ROOT/target/release/lb-sni
fi
[[ -x $LB ]] || die "lb-sni binary not found at $LB"

read -r P_B1 P_B2 P_LB P_NG P_HA P_ADMIN P_BL P_BLADMIN < <(free_ports 8)
BASELINE=${BASELINE_BIN:-}
[[ -z $BASELINE || -x $BASELINE ]] || die "BASELINE_BIN $BASELINE is not an executable"

# The URL host is an IP literal (wrk cannot be pointed at a name without DNS), which
# clients may or may not send as SNI: every router parses the ClientHello and sends any
# name (and none) to the pool through a catch-all route.
NAME=127.0.0.1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$NAME" -addext "subjectAltName=IP:$NAME" \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
mkdir -p "$TMP/www"
echo hello >"$TMP/www/index.txt"
head -c "$((BIG_MB << 20))" /dev/zero >"$TMP/www/big"

cat >"$TMP/backend.conf" <<EOF
$(nginx_main backend "$BACKEND_WORKERS")
http {
    access_log off;
    $(nginx_temp_paths backend-tmp)
    sendfile on;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_session_cache shared:SSL:10m;
    server {
        listen 127.0.0.1:$P_B1 ssl; listen 127.0.0.1:$P_B2 ssl;
        root $TMP/www;
        location = / { return 200 "hello\n"; }
    }
}
EOF

cat >"$TMP/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
$(nginx_main nginx "$WORKERS")
stream {
    map \$ssl_preread_server_name \$pool {
        default backends;
    }
    upstream backends { server 127.0.0.1:$P_B1; server 127.0.0.1:$P_B2; }
    server {
        listen 127.0.0.1:$P_NG;
        ssl_preread on;
        proxy_pass \$pool;
        proxy_connect_timeout 2s;
        proxy_timeout 120s;
    }
}
EOF

write_haproxy_sni_cfg "$TMP/haproxy.cfg" "$P_HA"

write_lb_toml "$TMP/lb.toml"
check_configs "$LB"
[[ -z $BASELINE ]] || write_baseline_toml "$BASELINE" "$P_LB:$P_BL" "$P_ADMIN:$P_BLADMIN"

"${ON_LOAD[@]}" nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" 2>>"$TMP/backend.err" &
PID_BACKEND=$!; PIDS+=("$PID_BACKEND")
wait_port "$P_B1" "$PID_BACKEND" backends

ROUTERS=(lb-sni haproxy nginx)
[[ -n $BASELINE ]] && ROUTERS+=(baseline)
declare -A PORT=([lb-sni]=$P_LB [nginx]=$P_NG [haproxy]=$P_HA [baseline]=$P_BL)
declare -A MAINPID=()
case ${ROUTERS_ONLY:-} in "") ;; *) read -r -a ROUTERS <<<"$ROUTERS_ONLY" ;; esac

start_router() {
    case $1 in
    nginx) "${ON_PROXY[@]}" nginx -p "$TMP" -e "$TMP/nginx.err" -c "$TMP/nginx.conf" 2>>"$TMP/nginx.err" & ;;
    haproxy) "${ON_PROXY[@]}" haproxy -db -f "$TMP/haproxy.cfg" >>"$TMP/haproxy.log" 2>&1 & ;;
    lb-sni) "${ON_PROXY[@]}" env $LB_ENV RUST_LOG=warn "$LB" --config "$TMP/lb.toml" >>"$TMP/lb.log" 2>&1 & ;;
    baseline) "${ON_PROXY[@]}" env $BASELINE_ENV RUST_LOG=warn "$BASELINE" --config "$TMP/baseline.toml" >>"$TMP/baseline.log" 2>&1 & ;;
    esac
    MAINPID[$1]=$!
    PIDS+=("$!")
    wait_port "${PORT[$1]}" "${MAINPID[$1]}" "$1"
}
for r in "${ROUTERS[@]}"; do start_router "$r"; done

cpu_ticks() { tree_ticks "${MAINPID[$1]}"; }
# Busy CPU ticks of the whole machine (every CPU's user, nice, system, irq and softirq
# time, /proc/stat): the path's full cost, with the kernel's network work that is
# charged to no process of the path (softirq time, for one).
busy_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat; }
# CPU seconds of the backend nginx and of this shell's finished children (wrk).
path_secs() {
    local u s
    read -r u s < <(tree_ticks "$PID_BACKEND")
    times >"$TMP/times"
    python3 -c 'import re, sys
t = [float(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", open(sys.argv[1]).readlines()[1])]
print(f"{(int(sys.argv[2]) / int(sys.argv[3])) + sum(t):.3f}")' "$TMP/times" $((u + s)) "$CLK_TCK"
}

# Sanity: every router passes TLS through to the backend's certificate.
for r in "${ROUTERS[@]}"; do
    out=$(curl -sS --max-time 5 --cacert "$TMP/cert.pem" "https://$NAME:${PORT[$r]}/") || die "curl through $r failed"
    [[ $out == hello ]] || die "unexpected answer through $r: $out"
done

RESULTS=$TMP/results.tsv
: >"$RESULTS"
run_wrk() { # router mode round
    local r=$1 mode=$2 round=$3 args url out u0 s0 u1 s1 m0 m1 w0 w1
    url="https://$NAME:${PORT[$r]}/"
    case $mode in
    keepalive) args=(-t"$WRK_THREADS" -c64) ;;
    close) args=(-t"$WRK_THREADS" -c32 -H "Connection: close") ;;
    # A whole file per request: its time is the transfer's, so wrk's 2 s default
    # timeout would count slow transfers as errors (they finish; only the count is wrong).
    bulk) args=(-t"$WRK_THREADS" -c4 --timeout 30s); url="${url}big" ;;
    esac
    read -r u0 s0 < <(cpu_ticks "$r")
    m0=$(path_secs)
    w0=$(busy_ticks)
    out=$(timeout $((DURATION + 30)) "${ON_LOAD[@]}" wrk "${args[@]}" -d"${DURATION}s" --latency "$url") || die "wrk failed against $r"
    w1=$(busy_ticks)
    m1=$(path_secs)
    read -r u1 s1 < <(cpu_ticks "$r")
    echo "$out" >"$TMP/wrk-$r-$mode-$round.txt"
    python3 - "$r" "$mode" "$round" $((u1 - u0)) $((s1 - s0)) "$CLK_TCK" "$TMP/wrk-$r-$mode-$round.txt" "$BIG_MB" $(python3 -c "print($m1 - $m0)") $((w1 - w0)) <<'EOF' >>"$RESULTS"
import re, sys
r, mode, rnd, du, ds, tck, path, big = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7], int(sys.argv[8])
path_s = float(sys.argv[9]) + (du + ds) / tck
machine_s = int(sys.argv[10]) / tck
out = open(path).read()
reqs = int(re.search(r"(\d+) requests in", out).group(1))
secs = float(re.search(r"requests in ([\d.]+)s", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
m = re.search(r"requests in [\d.]+\w+, ([\d.]+)([KMGT]?B) read", out)
nbytes = float(m.group(1)) * {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}[m.group(2)]
errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errs += int(m.group(1)) if m else 0
cpu_s = (du + ds) / tck
if mode == "bulk":
    # rate: MB/s; cpu: CPU-seconds per GB moved.
    rate = nbytes / secs / 2**20
    cpu = cpu_s / (nbytes / 2**30) if nbytes else 0.0
    mcpu = path_s / (nbytes / 2**30) if nbytes else 0.0
    wcpu = machine_s / (nbytes / 2**30) if nbytes else 0.0
else:
    rate = rps
    cpu = cpu_s * 1e6 / max(reqs, 1)
    mcpu = path_s * 1e6 / max(reqs, 1)
    wcpu = machine_s * 1e6 / max(reqs, 1)
kshare = ds / (du + ds) if du + ds else 0.0
print(f"{r}\t{mode}\t{rnd}\t{rate:.1f}\t{p99:.3f}\t{cpu:.3f}\t{kshare:.3f}\t{errs}\t{mcpu:.3f}\t{wcpu:.3f}")
EOF
    log "$(tail -n1 "$RESULTS")"
}

LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
for r in "${ROUTERS[@]}"; do timeout 30 wrk -t"$WRK_THREADS" -c16 -d1s "https://$NAME:${PORT[$r]}/" >/dev/null || die "warm-up failed against $r"; done
for round in $(seq "$REPEAT"); do
    log "round $round/$REPEAT"
    # Each load runs on every router in turn, so the runs a ratio compares are next to
    # each other in time; the order of the routers rotates by one each round.
    for m in $MODES; do
        for r in $(rotated "$round" "${ROUTERS[@]}"); do run_wrk "$r" "$m" "$round"; done
    done
done

PYTHONPATH="$ROOT/benches" python3 - "$RESULTS" "$DURATION" "$REPEAT" "$LOADAVG" "${ROUTERS[@]}" <<'EOF'
import os, statistics, sys
import paired
res, dur, rep, load = sys.argv[1:5]
wrk_t, workers = os.environ["WRK_THREADS"], os.environ["WORKERS"]
R = sys.argv[5:]
vals = {}
rounds = {}
for line in open(res):
    r, mode, rnd, rate, p99, cpu, ks, errs, mcpu, wcpu = line.split("\t")
    for k, v in (("rate", rate), ("p99", p99), ("cpu", cpu), ("ks", ks), ("errs", errs), ("mcpu", mcpu), ("wcpu", wcpu)):
        vals.setdefault((r, mode, k), []).append(float(v))
    rounds.setdefault((mode, int(rnd)), {})[r] = (float(cpu), float(rate), float(p99))
med = lambda r, m, k: statistics.median(vals[(r, m, k)])
rows = [
    ("TLS keep-alive -c64: req/s", "keepalive", "rate", "{:,.0f}"),
    ("TLS keep-alive -c64: p99 (ms)", "keepalive", "p99", "{:.2f}"),
    ("TLS keep-alive -c64: **CPU-µs/request**", "keepalive", "cpu", "{:.1f}"),
    ("TLS keep-alive -c64: path CPU-µs/request (router+backend+wrk)", "keepalive", "mcpu", "{:.1f}"),
    ("TLS keep-alive -c64: machine CPU-µs/request (all CPUs busy)", "keepalive", "wcpu", "{:.1f}"),
    ("new TLS conn/request -c32: conn/s", "close", "rate", "{:,.0f}"),
    ("new TLS conn/request -c32: p99 (ms)", "close", "p99", "{:.2f}"),
    ("new TLS conn/request -c32: **CPU-µs/connection**", "close", "cpu", "{:.1f}"),
    ("new TLS conn/request -c32: kernel share of CPU", "close", "ks", "{:.0%}"),
    ("new TLS conn/request -c32: path CPU-µs/connection", "close", "mcpu", "{:.1f}"),
    ("new TLS conn/request -c32: machine CPU-µs/connection", "close", "wcpu", "{:.1f}"),
    ("bulk -c4: MB/s", "bulk", "rate", "{:,.0f}"),
    ("bulk -c4: **CPU-s/GB**", "bulk", "cpu", "{:.3f}"),
    ("bulk -c4: kernel share of CPU", "bulk", "ks", "{:.0%}"),
    ("bulk -c4: path CPU-s/GB (router+backend+wrk)", "bulk", "mcpu", "{:.3f}"),
    ("bulk -c4: machine CPU-s/GB (all CPUs busy)", "bulk", "wcpu", "{:.3f}"),
]
rows = [row for row in rows if (R[0], row[1], row[2]) in vals]
print(f"\nDURATION={dur}s REPEAT={rep} (medians), wrk -t{wrk_t}, workers {workers}, loadavg at start {load}\n")
others = R[1:]
print("| metric | " + " | ".join(R) + " | " + " | ".join(f"{R[0]}/{o}" for o in others) + " |")
print("|---|" + "---:|" * (len(R) + len(others)))
for label, m, k, fmt in rows:
    v = [med(r, m, k) for r in R]
    ratios = [f"{v[0] / x:.2f}×" if x else "–" for x in v[1:]]
    print(f"| {label} | " + " | ".join(fmt.format(x) for x in v) + " | " + " | ".join(ratios) + " |")
errs = [int(sum(sum(vals.get((r, m, "errs"), [])) for m in ("keepalive", "close", "bulk"))) for r in R]
print("| wrk errors + non-2xx (all runs) | " + " | ".join(map(str, errs)) + " |" + " |" * len(others))
# Per round, side by side: a median hides how often one router came out ahead.
metrics = lambda m: ((0, "CPU", True), (1, "MB/s" if m == "bulk" else "req/s", False), (2, "p99", True))
for other in R[1:2] + [r for r in R[2:] if r == "baseline"]:
    paired.compare(rounds, ("keepalive", "close", "bulk"), R[0], other, metrics)
EOF
