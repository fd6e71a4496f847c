#!/usr/bin/env bash
# Side-by-side HTTP load benchmark: lb-proxy vs nginx vs HAProxy (see benches/README.md).
#
# Method (the same for every proxy, so the figures compare): two nginx backends on loopback answer "hello\n";
# each proxy (WORKERS workers/threads each, default 1) balances them round-robin. For each
# proxy, wrk -t$WRK_THREADS (default WORKERS)
# runs a keep-alive load (-c64) and a new-connection-per-request load (-c32,
# "Connection: close"), then a keep-alive POST load (-c64, a 1 KiB body per request) and
# a mixed keep-alive load (-c64, GET and POST with a 1 KiB body in turn, so every
# connection carries both: the client that mixes reads and writes); we record req/s, p99 latency and the proxy's CPU time per request
# (utime+stime from /proc/PID/stat over the run, summed over the proxy's processes, divided
# by wrk's request count). Then a python client opens IDLE_CONNS idle keep-alive connections
# (one request each, kept open) and we record (VmRSS after - VmRSS before) / IDLE_CONNS.
# lb's allocator (mimalloc) asks for transparent huge pages, so its RSS grows in 2 MiB
# steps: at 1,000 connections one step more or less is 2 KiB per connection, at 5,000
# (the default) 0.4 KiB.
# Each figure is the median of REPEAT rounds; inside a round each load runs on every proxy
# in turn (the runs a ratio compares are next to each other in time), in
# an order that rotates by one each round.
# With TLS=1 (the default) each proxy also terminates TLS on a second port with the same
# ECDSA P-256 certificate (TLS 1.2 and 1.3 offered, so wrk negotiates 1.3 everywhere;
# session caches on; HTTP/1.1 as wrk speaks no ALPN), and
# the two wrk loads run again over HTTPS.
#
# Env: DURATION (s, default 10), REPEAT (default 1), IDLE_CONNS (default 5000; 0 skips the
#      idle-connection test), TLS (1/0), MODES (the loads, any of keepalive, close, post
#      and mixed; default all four; with TLS=1 each also runs over HTTPS),
#      LB_PROXY_BIN (skip the cargo build), STRACE=1 (syscalls per request, keep-alive
#      and new connection, 3 s each under strace -c -f; separate from the measured
#      runs), SEGS=1 (TCP segments per request, from /proc/net/snmp's OutSegs over a
#      separate 3 s run per proxy and load), KEEP_TMP=1,
#      BASELINE_BIN (another lb-proxy build, e.g. of an older commit, measured in the same
#      rounds as a fourth proxy "baseline": a change compared side by side, not against
#      a figure from another run).
#      NOISE=cpu|mem (a controlled neighbour beside every timed wrk run: a shell busy
#      loop, or python copying a 32 MiB buffer over and over, which also evicts the
#      caches; it runs for the wrk run only and is stopped by PID),
#      PERF=1 (where each proxy's CPU goes, kernel included: perf record -e cpu-clock
#      on the proxy's processes during separate 3 s keep-alive and new-connection runs;
#      top PERF_TOP symbols, default 25),
#      WORKERS (default 1: lb-proxy threads, nginx worker_processes, HAProxy nbthread),
#      PIN=1 (one worker only: the proxy on CPU 1, wrk and the backends on CPU 0),
#      WRK_THREADS (default WORKERS), BACKEND_WORKERS (default 1), LB_ENV / BASELINE_ENV
#      (environment of the lb-proxy / baseline process, e.g. BASELINE_ENV=LB_REUSEPORT=1:
#      per-worker SO_REUSEPORT listeners beside the shared one; see benches/README.md).
# Loopback only; every process started here is stopped by PID on exit.
set -euo pipefail

DURATION=${DURATION:-10}
REPEAT=${REPEAT:-1}
IDLE_CONNS=${IDLE_CONNS:-5000}
MODES=${MODES:-keepalive close post mixed}
NOISE=${NOISE:-}
[[ -z $NOISE || $NOISE == cpu || $NOISE == mem ]] || { echo "load.sh: NOISE is cpu or mem, not $NOISE" >&2; exit 2; }
for m in $MODES; do [[ $m =~ ^(keepalive|close|post|mixed)$ ]] || { echo "load.sh: MODES takes keepalive, close, post and mixed, not $m" >&2; exit 2; }; done
STRACE=${STRACE:-0}
SEGS=${SEGS:-0}
TLS=${TLS:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

NAME=load.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
install_missing nginx:nginx-light haproxy:haproxy wrk:wrk python3:python3 openssl:openssl
PERF=${PERF:-0}
[[ $PERF == 1 ]] && ! command -v perf >/dev/null && die "PERF=1 needs perf (apt-get install linux-perf)"
[[ $STRACE == 1 ]] && ! command -v strace >/dev/null && die "STRACE=1 needs strace"

# --- lb-proxy binary ------------------------------------------------------------------
if [[ -n ${LB_PROXY_BIN:-} ]]; then
    LB=$LB_PROXY_BIN
else
    log "building lb-proxy (release)"
    (cd "$ROOT" && timeout 1800 cargo build --release -j2 -p lb-proxy)
    LB=$ROOT/target/release/lb-proxy
fi
[[ -x $LB ]] || die "lb-proxy binary not found at $LB"

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) >= IDLE_CONNS * 2 + 256)) || die "open-files limit $(ulimit -n) too low for IDLE_CONNS=$IDLE_CONNS"

read -r P_B1 P_B2 P_LB P_NG P_HA P_ADMIN P_LBS P_NGS P_HAS P_BL P_BLS P_BLADMIN < <(free_ports 12)
BASELINE=${BASELINE_BIN:-}
[[ -z $BASELINE || -x $BASELINE ]] || die "BASELINE_BIN $BASELINE is not an executable"

# --- one certificate for the three TLS listeners --------------------------------------
make_cert
cat "$TMP/cert.pem" "$TMP/key.pem" >"$TMP/combined.pem"


# --- backends: one nginx, two ports ---------------------------------------------------
write_backend_conf "$TMP/backend.conf"

# --- nginx as proxy -------------------------------------------------------------------
cat >"$TMP/nginx.conf" <<EOF
$(nginx_main nginx "$WORKERS")
http {
    access_log off;
    $(nginx_temp_paths nginx-tmp)
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    $(nginx_upstream "$P_B1" "$P_B2")
    ssl_session_cache shared:SSL:10m;
    # nginx 1.22 leaves TLS 1.3 out by default; lb-proxy and HAProxy offer it, and wrk
    # takes it. With 1.2 only, nginx would resume every session by id while the others
    # do full TLS 1.3 handshakes (wrk does not resume TLS 1.3 sessions).
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$P_NG;
        listen 127.0.0.1:$P_NGS ssl;
        ssl_certificate $TMP/cert.pem;
        ssl_certificate_key $TMP/key.pem;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

# --- HAProxy --------------------------------------------------------------------------
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 8000
    pidfile $TMP/haproxy.pid
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
frontend fe
    bind 127.0.0.1:$P_HA
    bind 127.0.0.1:$P_HAS ssl crt $TMP/combined.pem
    default_backend be
backend be
    balance roundrobin
    server b1 127.0.0.1:$P_B1
    server b2 127.0.0.1:$P_B2
EOF

write_lb_toml "$TMP/lb.toml"
if [[ $TLS == 1 ]]; then
    cat >>"$TMP/lb.toml" <<TOML

[[listener]]
listen = "127.0.0.1:$P_LBS"
idle_timeout = "120s"
tls = { cert = "$TMP/cert.pem", key = "$TMP/key.pem" }
TOML
fi
check_configs "$LB"
[[ -z $BASELINE ]] || write_baseline_toml "$BASELINE" "$P_LBS:$P_BLS" "$P_LB:$P_BL" "$P_ADMIN:$P_BLADMIN"

# --- start everything -----------------------------------------------------------------
"${ON_LOAD[@]}" nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" 2>>"$TMP/backend.err" &
PID_BACKEND=$!; PIDS+=("$PID_BACKEND")
wait_port "$P_B1" "$PID_BACKEND" backends; wait_port "$P_B2" "$PID_BACKEND" backends

PROXIES=(lb-proxy nginx haproxy)
[[ -n $BASELINE ]] && PROXIES+=(baseline)
declare -A PORT=([lb-proxy]=$P_LB [nginx]=$P_NG [haproxy]=$P_HA [baseline]=$P_BL)
declare -A TLS_PORT=([lb-proxy]=$P_LBS [nginx]=$P_NGS [haproxy]=$P_HAS [baseline]=$P_BLS)
declare -A MAINPID=()

start_proxy() { # name; a fresh process, listening
    case $1 in
    nginx) "${ON_PROXY[@]}" nginx -p "$TMP" -e "$TMP/nginx.err" -c "$TMP/nginx.conf" 2>>"$TMP/nginx.err" & ;;
    haproxy) "${ON_PROXY[@]}" haproxy -db -f "$TMP/haproxy.cfg" >>"$TMP/haproxy.log" 2>&1 & ;;
    lb-proxy) "${ON_PROXY[@]}" env $LB_ENV RUST_LOG=warn "$LB" --config "$TMP/lb.toml" >>"$TMP/lb.log" 2>&1 & ;;
    baseline) "${ON_PROXY[@]}" env $BASELINE_ENV RUST_LOG=warn "$BASELINE" --config "$TMP/baseline.toml" >>"$TMP/baseline.log" 2>&1 & ;;
    esac
    MAINPID[$1]=$!
    PIDS+=("$!")
    wait_port "${PORT[$1]}" "${MAINPID[$1]}" "$1"
}
forget_pid() { # pid; a process that has ended leaves PIDS (cleanup must not signal its number)
    local q keep=()
    for q in "${PIDS[@]}"; do [[ $q == "$1" ]] || keep+=("$q"); done
    PIDS=("${keep[@]}")
}
stop_proxy() { # name; by PID, waits until it is gone
    local p=${MAINPID[$1]}
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    forget_pid "$p"
}
for p in "${PROXIES[@]}"; do start_proxy "$p"; done
if [[ $TLS == 1 ]]; then
    for p in "${PROXIES[@]}"; do
        wait_port "${TLS_PORT[$p]}" "${MAINPID[$p]}" "$p (TLS)"
        # The same protocol and cipher everywhere, or the TLS rows compare different work.
        log "$p TLS: $(echo | timeout 10 openssl s_client -connect "127.0.0.1:${TLS_PORT[$p]}" 2>/dev/null | grep -m1 -E '^(New|Reused),')"
    done
fi

# All PIDs of a proxy (nginx workers included), and their CPU ticks.
proc_pids() { tree_pids "${MAINPID[$1]}"; }
cpu_ticks() { tree_ticks "${MAINPID[$1]}"; }

# wrk run; appends one TSV row: proxy mode round rps p99_ms cpu_us_per_req kernel_share errors
# p50_ms p90_ms
RESULTS=$TMP/results.tsv
: >"$RESULTS"
# The request bodies of the POST and mixed loads: 1 KiB each. wrk sends `Content-Length`.
# post.lua sets one request, which wrk builds once; mixed.lua makes each request in turn
# (wrk calls `request` for every request when a script defines it), from one counter, so
# each connection gets GETs and POSTs, about half each.
cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
cat >"$TMP/mixed.lua" <<'EOF'
local body = string.rep("x", 1024)
local get, post
local n = 0
function init(args)
    get = wrk.format("GET", nil, nil, nil)
    post = wrk.format("POST", nil, { ["Content-Type"] = "application/octet-stream" }, body)
end
function request()
    n = n + 1
    if n % 2 == 0 then return post end
    return get
end
EOF
# load_args MODE: wrk's connections and script for a load, in the array ARGS: 64
# keep-alive ones (GET, POST or both in turn), or 32 asking for a new connection per
# request.
load_args() {
    case $1 in
    keepalive | tls-keepalive) ARGS=(-t"$WRK_THREADS" -c64) ;;
    post | tls-post) ARGS=(-t"$WRK_THREADS" -c64 -s "$TMP/post.lua") ;;
    mixed | tls-mixed) ARGS=(-t"$WRK_THREADS" -c64 -s "$TMP/mixed.lua") ;;
    *) ARGS=(-t"$WRK_THREADS" -c32 -H "Connection: close") ;;
    esac
}
run_wrk() { # proxy mode round
    local proxy=$1 mode=$2 round=$3 out u0 s0 u1 s1 url
    load_args "$mode"
    case $mode in
    tls-*) url="https://127.0.0.1:${TLS_PORT[$proxy]}/" ;;
    *) url="http://127.0.0.1:${PORT[$proxy]}/" ;;
    esac
    local noise=
    case $NOISE in
    cpu) timeout $((DURATION + 5)) sh -c 'while :; do :; done' & noise=$! ;;
    mem) timeout $((DURATION + 5)) python3 -c 'b = bytearray(32 << 20)
while True: bytes(b)' & noise=$! ;;
    esac
    [[ -z $noise ]] || PIDS+=("$noise")
    read -r u0 s0 < <(cpu_ticks "$proxy")
    out=$(timeout $((DURATION + 30)) "${ON_LOAD[@]}" wrk "${ARGS[@]}" -d"${DURATION}s" --latency "$url") \
        || die "wrk failed against $proxy ($mode)"
    read -r u1 s1 < <(cpu_ticks "$proxy")
    if [[ -n $noise ]]; then
        kill -TERM "$noise" 2>/dev/null || true
        wait "$noise" 2>/dev/null || true
        forget_pid "$noise"
    fi
    echo "$out" >"$TMP/wrk-$proxy-$mode-$round.txt"
    python3 - "$proxy" "$mode" "$round" $((u1 - u0)) $((s1 - s0)) "$CLK_TCK" \
        "$TMP/wrk-$proxy-$mode-$round.txt" <<'EOF' >>"$RESULTS"
import re, sys
proxy, mode, rnd, du, ds, tck = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
out = open(sys.argv[7]).read()
reqs = int(re.search(r"(\d+) requests in", out).group(1))
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
def pct(n):
    m = re.search(rf"^\s+{n}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
p50, p90, p99 = pct(50), pct(90), pct(99)
errs = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
errs += int(m.group(1)) if m else 0
cpu_us = (du + ds) * 1e6 / tck / max(reqs, 1)
kshare = ds / (du + ds) if du + ds else 0.0
print(f"{proxy}\t{mode}\t{rnd}\t{rps:.0f}\t{p99:.3f}\t{cpu_us:.2f}\t{kshare:.3f}\t{errs}\t{p50:.3f}\t{p90:.3f}")
EOF
    log "$(tail -n1 "$RESULTS")"
}

# Idle keep-alive connections: (sum VmRSS after - before) / n over proc_pids.
cat >"$TMP/idle.py" <<'EOF'
import socket, sys, time
port, n, pids = int(sys.argv[1]), int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
def rss():
    total = 0
    for p in pids:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total
deadline = time.monotonic() + 60
req = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"
# Warm-up: 20 requests on one connection, so one-time allocations are not counted.
w = socket.create_connection(("127.0.0.1", port), timeout=5)
for _ in range(20):
    w.sendall(req)
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = w.recv(4096)
        if not chunk:
            sys.exit("warm-up connection closed")
        data += chunk
w.close()
time.sleep(0.5)
before = rss()
conns = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    data = b""
    while not data.endswith(b"hello\n"):
        chunk = s.recv(4096)
        if not chunk or time.monotonic() > deadline:
            sys.exit(f"connection {len(conns)}: bad/short response {data[:200]!r}")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        sys.exit(f"unexpected response {data[:200]!r}")
    conns.append(s)
time.sleep(1.0)
after = rss()
for s in conns:
    if s.fileno() < 0:
        sys.exit("a connection was closed")
print(f"rss before {before} after {after} over {pids}", file=sys.stderr)
print((after - before) / n)
for s in conns:
    s.close()
EOF
run_idle() { # proxy round; on a freshly started proxy, so memory freed by earlier load or
    # earlier idle connections cannot be reused and hide the cost
    local proxy=$1 round=$2 v
    stop_proxy "$proxy"
    start_proxy "$proxy"
    # shellcheck disable=SC2046
    v=$(timeout 120 python3 "$TMP/idle.py" "${PORT[$proxy]}" "$IDLE_CONNS" $(proc_pids "$proxy") 2>>"$TMP/idle.log") \
        || die "idle-connection test failed against $proxy"
    printf '%s\tidle\t%s\t%s\n' "$proxy" "$round" "$v" >>"$TMP/idle.tsv"
    log "$proxy idle: $v B/conn"
    sleep 1 # let the proxy reap the closed connections
}

# --- runs -----------------------------------------------------------------------------
warm_up() {
    local p
    for p in "${PROXIES[@]}"; do
        timeout 30 wrk -t"$WRK_THREADS" -c64 -d1s "http://127.0.0.1:${PORT[$p]}/" >/dev/null || die "warm-up failed against $p"
        if [[ $TLS == 1 ]]; then
            timeout 30 wrk -t"$WRK_THREADS" -c32 -d1s "https://127.0.0.1:${TLS_PORT[$p]}/" >/dev/null || die "TLS warm-up failed against $p"
        fi
    done
}
: >"$TMP/idle.tsv"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$REPEAT"); do
    log "round $r/$REPEAT"
    if ((IDLE_CONNS > 0)); then
        for p in "${PROXIES[@]}"; do run_idle "$p" "$r"; done
    fi
    warm_up
    # Each load runs on every proxy in turn, so the runs a ratio compares are next to each
    # other in time (this machine's speed drifts over tens of seconds); the order of the
    # proxies rotates by one each round (see `rotated` in lib.sh).
    loads=($MODES)
    [[ $TLS == 1 ]] && for m in $MODES; do loads+=("tls-$m"); done
    for m in "${loads[@]}"; do
        for p in $(rotated "$r" "${PROXIES[@]}"); do run_wrk "$p" "$m" "$r"; done
    done
done

# Syscalls per request (optional; strace slows the proxy, so this is not a timed run).
STRACE_TSV=$TMP/strace.tsv
: >"$STRACE_TSV"
if [[ $STRACE == 1 ]]; then
    for p in "${PROXIES[@]}"; do
        for mode in keepalive close; do
            load_args "$mode"
            args=()
            for q in $(proc_pids "$p"); do args+=(-p "$q"); done
            timeout 20 strace -c -f -o "$TMP/strace-$p-$mode.txt" "${args[@]}" 2>/dev/null &
            st=$!
            sleep 1
            out=$(timeout 30 wrk "${ARGS[@]}" -d3s "http://127.0.0.1:${PORT[$p]}/")
            sleep 0.5
            kill -INT "$st" 2>/dev/null || true
            wait "$st" 2>/dev/null || true
            reqs=$(grep -oE '[0-9]+ requests in' <<<"$out" | cut -d' ' -f1)
            python3 - "$p" "$mode" "$reqs" "$TMP/strace-$p-$mode.txt" <<'EOF' >>"$STRACE_TSV"
import sys
proxy, mode, reqs, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
top = sorted(calls.items(), key=lambda kv: -kv[1])[:9]
desc = ", ".join(f"{k} {v / reqs:.2f}" for k, v in top)
print(f"{proxy}\t{mode}\t{total / max(reqs, 1):.2f}\t{desc}")
EOF
            log "strace $p $mode: $(tail -n1 "$STRACE_TSV")"
        done
    done
fi

# TCP segments per request (optional): every segment the machine sent over a 3 s wrk run
# (wrk's, the proxy's and the backends'; loopback only, so the exchange's own, on an
# otherwise quiet machine), from /proc/net/snmp's OutSegs, over wrk's requests.
SEGS_TSV=$TMP/segs.tsv
: >"$SEGS_TSV"
out_segs() {
    awk '/^Tcp:/ { if (++n == 1) { for (i = 1; i <= NF; i++) if ($i == "OutSegs") c = i } else print $c }' /proc/net/snmp
}
if [[ $SEGS == 1 ]]; then
    for p in "${PROXIES[@]}"; do
        for mode in keepalive close; do
            load_args "$mode"
            s0=$(out_segs)
            out=$(timeout 30 wrk "${ARGS[@]}" -d3s "http://127.0.0.1:${PORT[$p]}/")
            s1=$(out_segs)
            reqs=$(grep -oE '[0-9]+ requests in' <<<"$out" | cut -d' ' -f1)
            printf '%s\t%s\t%s\n' "$p" "$mode" \
                "$(python3 -c "print(f'{($s1 - $s0) / max($reqs, 1):.2f}')")" >>"$SEGS_TSV"
            log "segments per request, $p $mode: $(tail -n1 "$SEGS_TSV" | cut -f3)"
        done
    done
fi

# Where the CPU goes (optional; separate runs, perf's sampling costs a little). Per load
# (keep-alive, new connection), one table: CPU-µs per request in the kernel, in user space
# (libc, the vDSO's clock reads, the rest), and in the top symbols, side by side. One run
# each, in a fixed order: a breakdown, not a comparison (that is the timed runs' job).
# Each sample is 1/PERF_HZ s of CPU (perf -e cpu-clock works in a VM without hardware
# counters; there the kernel's samples cluster where it re-enables interrupts, e.g.
# _raw_spin_unlock_irqrestore).
PERF_HZ=${PERF_HZ:-4999}
if [[ $PERF == 1 ]]; then
    for mode in keepalive close; do
        load_args "$mode"
        for p in "${PROXIES[@]}"; do
            pids=$(proc_pids "$p" | paste -sd,)
            data=$TMP/perf-$p-$mode.data
            timeout 20 perf record -q -e cpu-clock -F "$PERF_HZ" -p "$pids" -o "$data" 2>/dev/null &
            pf=$!
            sleep 0.5
            timeout 30 wrk "${ARGS[@]}" -d3s "http://127.0.0.1:${PORT[$p]}/" >"$TMP/perf-wrk-$p-$mode.txt"
            kill -INT "$pf" 2>/dev/null || true
            wait "$pf" 2>/dev/null || true
            for sort in dso sym; do
                perf report -i "$data" --stdio --no-children --sort "$sort" -F sample,"$sort" 2>/dev/null \
                    | grep -E '^ +[0-9]' >"$TMP/perf-$p-$mode-$sort.txt" || true
            done
        done
        python3 - "$TMP" "$mode" "$PERF_HZ" "${PERF_TOP:-25}" "${PROXIES[@]}" <<'EOF'
import re, sys
tmp, mode, hz, top, proxies = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
per = {}
for p in proxies:
    reqs = int(re.search(r"(\d+) requests in", open(f"{tmp}/perf-wrk-{p}-{mode}.txt").read()).group(1))
    d = {}
    for line in open(f"{tmp}/perf-{p}-{mode}-dso.txt"):
        n, dso = line.split(None, 1)
        dso = dso.strip()
        key = ("kernel" if dso.startswith("[kernel") else "libc" if dso.startswith("libc")
               else "vdso" if dso == "[vdso]" else "user, not libc")
        d[f"({key})"] = d.get(f"({key})", 0) + int(n) * 1e6 / hz / reqs
    d["(total)"] = sum(d.values())
    for line in open(f"{tmp}/perf-{p}-{mode}-sym.txt"):
        n, rest = line.split(None, 1)
        d[rest.strip()] = int(n) * 1e6 / hz / reqs
    per[p] = d
order = ["(total)", "(kernel)", "(user, not libc)", "(libc)", "(vdso)"]
syms = {}
for p in proxies:
    for k, v in per[p].items():
        if k not in order:
            syms[k] = max(syms.get(k, 0), v)
order += sorted(syms, key=lambda k: -syms[k])[:top]
print(f"\nperf, {mode}: CPU-µs per request, by where the samples fell\n")
print("| | " + " | ".join(proxies) + " |")
print("|---|" + "---:|" * len(proxies))
for k in order:
    print(f"| {k} | " + " | ".join(f"{per[p].get(k, 0):.2f}" for p in proxies) + " |")
EOF
    done
fi

# --- table ----------------------------------------------------------------------------
PYTHONPATH="$ROOT/benches" python3 - "$RESULTS" "$TMP/idle.tsv" "$STRACE_TSV" "$SEGS_TSV" "$DURATION" "$REPEAT" "$IDLE_CONNS" "$LOADAVG" "$BASELINE" "$NOISE" <<'EOF'
import os, statistics, sys
import paired
res, idle, strace, segs, dur, rep, nidle, load, baseline, noise = sys.argv[1:11]
wrk_t, workers = os.environ["WRK_THREADS"], os.environ["WORKERS"]
P = ["lb-proxy", "nginx", "haproxy"] + (["baseline"] if baseline else [])
vals = {}
# (mode, round) -> proxy -> (CPU, p99, req/s), to set lb-proxy against nginx (and the
# baseline) round by round.
rounds = {}
for line in open(res):
    p, mode, rnd, rps, p99, cpu, ks, errs, p50, p90 = line.split("\t")
    for k, v in (("rps", rps), ("p50", p50), ("p90", p90), ("p99", p99), ("cpu", cpu), ("ks", ks), ("errs", errs)):
        vals.setdefault((p, mode, k), []).append(float(v))
    rounds.setdefault((mode, rnd), {})[p] = (float(cpu), float(p99), float(rps))
for line in open(idle):
    p, _, _, v = line.split("\t")
    vals.setdefault((p, "idle", "rss"), []).append(float(v))
med = lambda p, m, k: statistics.median(vals[(p, m, k)])
rows = [
    ("keep-alive -c64: req/s", "keepalive", "rps", "{:,.0f}"),
    ("keep-alive -c64: p50 latency (ms)", "keepalive", "p50", "{:.2f}"),
    ("keep-alive -c64: p90 latency (ms)", "keepalive", "p90", "{:.2f}"),
    ("keep-alive -c64: p99 latency (ms)", "keepalive", "p99", "{:.2f}"),
    ("keep-alive -c64: **CPU-µs/request**", "keepalive", "cpu", "{:.1f}"),
    ("keep-alive -c64: kernel share of CPU", "keepalive", "ks", "{:.0%}"),
    ("new conn/request -c32: req/s", "close", "rps", "{:,.0f}"),
    ("new conn/request -c32: p50 latency (ms)", "close", "p50", "{:.2f}"),
    ("new conn/request -c32: p90 latency (ms)", "close", "p90", "{:.2f}"),
    ("new conn/request -c32: p99 latency (ms)", "close", "p99", "{:.2f}"),
    ("new conn/request -c32: **CPU-µs/request**", "close", "cpu", "{:.1f}"),
    ("new conn/request -c32: kernel share of CPU", "close", "ks", "{:.0%}"),
    ("POST 1 KiB keep-alive -c64: req/s", "post", "rps", "{:,.0f}"),
    ("POST 1 KiB keep-alive -c64: p50 latency (ms)", "post", "p50", "{:.2f}"),
    ("POST 1 KiB keep-alive -c64: p90 latency (ms)", "post", "p90", "{:.2f}"),
    ("POST 1 KiB keep-alive -c64: p99 latency (ms)", "post", "p99", "{:.2f}"),
    ("POST 1 KiB keep-alive -c64: **CPU-µs/request**", "post", "cpu", "{:.1f}"),
    ("POST 1 KiB keep-alive -c64: kernel share of CPU", "post", "ks", "{:.0%}"),
    ("mixed GET/POST keep-alive -c64: req/s", "mixed", "rps", "{:,.0f}"),
    ("mixed GET/POST keep-alive -c64: p50 latency (ms)", "mixed", "p50", "{:.2f}"),
    ("mixed GET/POST keep-alive -c64: p90 latency (ms)", "mixed", "p90", "{:.2f}"),
    ("mixed GET/POST keep-alive -c64: p99 latency (ms)", "mixed", "p99", "{:.2f}"),
    ("mixed GET/POST keep-alive -c64: **CPU-µs/request**", "mixed", "cpu", "{:.1f}"),
    ("mixed GET/POST keep-alive -c64: kernel share of CPU", "mixed", "ks", "{:.0%}"),
    (f"idle keep-alive conn ({nidle}): RSS/conn (B)", "idle", "rss", "{:,.0f}"),
    ("TLS keep-alive -c64: req/s", "tls-keepalive", "rps", "{:,.0f}"),
    ("TLS keep-alive -c64: p99 latency (ms)", "tls-keepalive", "p99", "{:.2f}"),
    ("TLS keep-alive -c64: **CPU-µs/request**", "tls-keepalive", "cpu", "{:.1f}"),
    ("TLS new conn/request -c32: req/s", "tls-close", "rps", "{:,.0f}"),
    ("TLS new conn/request -c32: p99 latency (ms)", "tls-close", "p99", "{:.2f}"),
    ("TLS new conn/request -c32: **CPU-µs/request**", "tls-close", "cpu", "{:.1f}"),
    ("TLS POST 1 KiB keep-alive -c64: p99 latency (ms)", "tls-post", "p99", "{:.2f}"),
    ("TLS POST 1 KiB keep-alive -c64: **CPU-µs/request**", "tls-post", "cpu", "{:.1f}"),
    ("TLS mixed GET/POST keep-alive -c64: p99 latency (ms)", "tls-mixed", "p99", "{:.2f}"),
    ("TLS mixed GET/POST keep-alive -c64: **CPU-µs/request**", "tls-mixed", "cpu", "{:.1f}"),
]
rows = [r for r in rows if (P[0], r[1], r[2]) in vals]
print(f"\nDURATION={dur}s REPEAT={rep} (medians), wrk -t{wrk_t}, workers {workers}, loadavg at start {load}"
      + (f", NOISE={noise}" if noise else "") + "\n")
extra = " baseline |" if baseline else ""
print("| metric | lb-proxy | nginx | HAProxy |" + extra + " lb-proxy/nginx | lb-proxy/HAProxy |" + (" lb-proxy/baseline |" if baseline else ""))
print("|---|" + "---:|" * (2 * len(P) - 1))
for label, m, k, fmt in rows:
    v = [med(p, m, k) for p in P]
    r = [f"{v[0] / x:.2f}×" if x else "–" for x in v[1:]]
    print(f"| {label} | " + " | ".join(fmt.format(x) for x in v) + " | " + " | ".join(r) + " |")
ALL_MODES = ("keepalive", "close", "post", "mixed", "tls-keepalive", "tls-close", "tls-post", "tls-mixed")
modes = [m for m in ALL_MODES if (P[0], m, "errs") in vals]
errs = {p: int(sum(sum(vals[(p, m, "errs")]) for m in modes)) for p in P}
print("| wrk socket errors + non-2xx (all runs) | " + " | ".join(str(errs[p]) for p in P) + " |" + " |" * (len(P) - 1))
metrics = lambda m: ((0, "CPU-µs/request", True), (1, "p99", True), (2, "req/s", False))
paired.compare(rounds, ALL_MODES, "lb-proxy", "nginx", metrics)
if baseline:
    paired.compare(rounds, ALL_MODES, "lb-proxy", "baseline", metrics)
    print(f"\nbaseline: {baseline}")
lines = [l.rstrip("\n").split("\t") for l in open(strace) if l.strip()]
if lines:
    print("\nSyscalls per request (3 s under strace -c -f; top calls per request):\n")
    print("| proxy | load | syscalls/request | top |")
    print("|---|---|---:|---|")
    for p, mode, n, top in lines:
        load = "keep-alive -c64" if mode == "keepalive" else "new conn -c32"
        print(f"| {p} | {load} | {n} | {top} |")
per = {}
for l in open(segs):
    if l.strip():
        p, mode, n = l.split()
        per[(p, mode)] = n
if per:
    print("\nTCP segments per request (OutSegs over 3 s, every process on loopback):\n")
    print("| load | " + " | ".join(P) + " |")
    print("|---|" + "---:|" * len(P))
    for mode, load in (("keepalive", "keep-alive -c64"), ("close", "new conn -c32")):
        print(f"| {load} | " + " | ".join(per.get((p, mode), "–") for p in P) + " |")
EOF
