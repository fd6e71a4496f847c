#!/usr/bin/env bash
# Instructions per keep-alive request of lb-proxy, under valgrind's callgrind.
#
# The machine is noisy; instruction counts are not. One nginx (two ports) answers
# "hello\n"; lb-proxy (threads = 1, round-robin over both) runs under callgrind; a bounded
# python client sends WARM requests, the counters are zeroed, then REQS keep-alive requests
# over CONNS connections (lock-step per connection, all connections in flight), and the
# counters are dumped. Prints Ir/request and the top functions (inclusive and self).
#
# Compare two builds by running it twice with LB_PROXY_BIN set to each binary.
#
# Env: REQS (default 20000), CONNS (default 64), WARM (default 2000), LB_PROXY_BIN,
#      PROXY=nginx (count nginx as the proxy instead), MODE=get|post|mixed (default get;
#      post: a 1 KiB body with Content-Length per request, head and body in one send, as
#      wrk sends load.sh's POST load; mixed: GET and that POST in turn from one counter,
#      as load.sh's mixed load), CLOSE=1 (each request on a new
#      connection with "Connection: close", CONNS of them in flight: the new-connection
#      load of load.sh), TOOL=callgrind|strace (default callgrind; strace: the proxy runs
#      natively and `strace -c -f` attaches after the warm-up, for syscalls per request;
#      STRACE_LOG=FILE: the full trace in FILE instead),
#      THREADS (lb-proxy's `threads`, default 1; 2 runs the multi-threaded runtime,
#      whose threads valgrind runs one at a time: its instructions, not its contention),
#      VG_EXTRA (more valgrind options, e.g. --cache-sim=yes for
#      simulated cache misses in the dump), CG_OUT (keep the dump), KEEP_TMP=1,
#      ACCESS (lb-proxy's `[log] access`: default "off"; "stdout" writes to the log file
#      of the run), ACCESS_FORMAT (text or json, default text).
# Under callgrind it also prints calls per request of allocator functions and syscall
# wrappers (from the dump's call counts).
# Loopback only; every process started here is stopped by PID on exit.
set -euo pipefail
REQS=${REQS:-20000}
ACCESS=${ACCESS:-off}
ACCESS_FORMAT=${ACCESS_FORMAT:-text}
CONNS=${CONNS:-64}
CLOSE=${CLOSE:-0}
MODE=${MODE:-get}
TOOL=${TOOL:-callgrind}
[[ $MODE =~ ^(get|post|mixed)$ ]] || { echo "callgrind.sh: MODE takes get, post or mixed, not $MODE" >&2; exit 2; }
[[ $TOOL =~ ^(callgrind|strace)$ ]] || { echo "callgrind.sh: TOOL takes callgrind or strace, not $TOOL" >&2; exit 2; }
WARM=${WARM:-2000}
VG_EXTRA=${VG_EXTRA:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LB=${LB_PROXY_BIN:-$ROOT/target/release/lb-proxy}
PATH=$PATH:/usr/sbin:/sbin
NEEDS="valgrind callgrind_annotate callgrind_control nginx python3"
[[ $TOOL == strace ]] && NEEDS="strace nginx python3"
for t in $NEEDS; do
    command -v $t >/dev/null || { echo "callgrind.sh: needs $t" >&2; exit 1; }
done
[[ -x $LB ]] || { echo "callgrind.sh: no lb-proxy at $LB (cargo build --release -p lb-proxy -j2)" >&2; exit 1; }
NAME=callgrind.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
read -r P_B1 P_B2 P_LB P_ADMIN < <(free_ports 4)
USER_LINE=""; [[ $(id -u) == 0 ]] && USER_LINE="user root;"
cat >"$TMP/backend.conf" <<CONF
$USER_LINE
worker_processes 1;
daemon off;
pid $TMP/backend.pid;
error_log $TMP/backend.err warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/body; proxy_temp_path $TMP/proxy; fastcgi_temp_path $TMP/fcgi;
    uwsgi_temp_path $TMP/uwsgi; scgi_temp_path $TMP/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server { listen 127.0.0.1:$P_B1; location / { return 200 "hello\n"; } }
    server { listen 127.0.0.1:$P_B2; location / { return 200 "hello\n"; } }
}
CONF
cat >"$TMP/lb.toml" <<CONF
threads = ${THREADS:-1}
[admin]
listen = "127.0.0.1:$P_ADMIN"
[log]
access = "$ACCESS"
format = "$ACCESS_FORMAT"
[[listener]]
listen = "127.0.0.1:$P_LB"
idle_timeout = "120s"
[pool.web]
strategy = "round-robin"
backends = ["127.0.0.1:$P_B1", "127.0.0.1:$P_B2"]
[[route]]
host = "*"
pool = "web"
CONF
# PROXY=nginx: nginx as the proxy under callgrind instead (the configuration of load.sh,
# one process: master_process off), for a count to set lb-proxy's beside.
cat >"$TMP/nginx-proxy.conf" <<CONF
$(nginx_main nginx-proxy)
master_process off;
http {
    access_log off;
    $(nginx_temp_paths nginx-proxy-tmp)
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    $(nginx_upstream "$P_B1" "$P_B2")
    server {
        listen 127.0.0.1:$P_LB;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" 2>>"$TMP/backend.err" &
PIDS+=("$!")
VG_CMD=()
# shellcheck disable=SC2206 # VG_EXTRA is a list of options
[[ $TOOL == callgrind ]] && VG_CMD=(valgrind --tool=callgrind $VG_EXTRA --callgrind-out-file="$TMP/cg.out")
if [[ ${PROXY:-lb-proxy} == nginx ]]; then
    "${VG_CMD[@]}" nginx -p "$TMP" -e "$TMP/nginx-proxy.err" -c "$TMP/nginx-proxy.conf" >"$TMP/lb.log" 2>&1 &
else
    RUST_LOG=warn "${VG_CMD[@]}" "$LB" --config "$TMP/lb.toml" >"$TMP/lb.log" 2>&1 &
fi
VG=$!; PIDS+=("$VG")
cat >"$TMP/client.py" <<'PY'
import selectors, socket, sys, time
port, conns, total, close, mode = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
conn_close = b"Connection: close\r\n" if close else b""
get = b"GET / HTTP/1.1\r\nHost: bench.local\r\n" + conn_close + b"\r\n"
# As wrk sends load.sh's POST: Content-Length, the head and the 1 KiB body in one send.
post = (b"POST / HTTP/1.1\r\nHost: bench.local\r\n" + conn_close +
        b"Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n" + b"x" * 1024)
n = 0
def request():
    # mixed: one counter for all connections, as load.sh's mixed.lua.
    global n
    n += 1
    if mode == "post" or (mode == "mixed" and n % 2 == 0): return post
    return get
deadline = time.monotonic() + 600
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
    except OSError:
        if time.monotonic() > deadline - 540: sys.exit("lb-proxy not listening")
        time.sleep(0.2)
sel = selectors.DefaultSelector()
socks, sent, done = [], 0, 0
def start():
    global sent
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, bytearray())
    s.sendall(request()); sent += 1
for _ in range(min(conns, total)):
    start()
while done < total:
    if time.monotonic() > deadline: sys.exit(f"timed out after {done} responses")
    for key, _ in sel.select(timeout=5):
        s, buf = key.fileobj, key.data
        chunk = s.recv(65536)
        if not chunk:
            if not close: sys.exit("connection closed by lb-proxy")
            sel.unregister(s); s.close()
            if sent < total: start()
            continue
        buf += chunk
        while True:
            i = buf.find(b"hello\n")
            if i < 0: break
            if not buf.startswith(b"HTTP/1.1 200"): sys.exit(f"bad response {bytes(buf[:200])!r}")
            del buf[:i + 6]; done += 1
            if sent < total and not close: s.sendall(request()); sent += 1
for s in socks: s.close()
print(done)
PY
client() { timeout 1800 python3 "$TMP/client.py" "$P_LB" "$CONNS" "$1" "$CLOSE" "$MODE" >/dev/null; }
client "$WARM"
if [[ $TOOL == strace ]]; then
    if [[ -n ${STRACE_LOG:-} ]]; then
        timeout 1900 strace -f -o "$STRACE_LOG" -p "$VG" 2>/dev/null &
    else
        timeout 1900 strace -c -f -o "$TMP/strace.txt" -p "$VG" 2>/dev/null &
    fi
    ST=$!
    PIDS+=("$ST")
    sleep 1
    client "$REQS"
    sleep 0.5
    kill -INT "$ST" 2>/dev/null || true
    wait "$ST" 2>/dev/null || true
    [[ -n ${STRACE_LOG:-} ]] && { echo "full trace in $STRACE_LOG" >&2; exit 0; }
    python3 - "${PROXY:-lb-proxy}" "$REQS" "$TMP/strace.txt" "$MODE" <<'EOF'
import sys
proxy, reqs, path, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
print(f"{proxy} ({mode}): {total / reqs:.2f} syscalls per request ({total} over {reqs})")
for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
    print(f"  {name:<16} {n / reqs:6.2f}")
EOF
    exit 0
fi
timeout 60 callgrind_control -z "$VG" >/dev/null
START=$(date +%s)
client "$REQS"
timeout 60 callgrind_control -d "$VG" >/dev/null
echo "load of $REQS requests took $(( $(date +%s) - START )) s under callgrind" >&2
DUMP=$(ls -t "$TMP"/cg.out.* | head -1)
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "Ir total $TOTAL over $REQS requests: $((TOTAL / REQS)) Ir/request (MODE=$MODE CONNS=$CONNS CLOSE=$CLOSE ACCESS=$ACCESS)"
# --threshold=100 lists every function; the frames above main (100 %) are dropped.
top() { callgrind_annotate --threshold=100 --auto=no "$@" "$DUMP" 2>/dev/null |
    sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \(' | grep -v '(100.0%)' | head -30 |
    sed 's|/root/.cargo/registry/src/index.crates.io-[0-9a-f]*/||; s|/rustc/[0-9a-f]*/||' | cut -c1-180 ||
    true; }  # head closes the pipe early: not a failure
echo "--- top self (Ir over all $REQS requests)"; top
echo "--- top inclusive"; top --inclusive=yes
# Calls per request of the allocator and the syscall wrappers: the dump's call counts
# (`calls=` lines) summed per called function, whoever called it.
echo "--- calls per request"
python3 - "$DUMP" "$REQS" <<'EOF'
import re, sys
path, reqs = sys.argv[1], int(sys.argv[2])
names, calls, cfn = {}, {}, None
def name(spec):
    m = re.match(r"\((\d+)\)(?: (.*))?", spec)
    if not m: return spec
    if m.group(2) is not None: names[m.group(1)] = m.group(2)
    return names.get(m.group(1), spec)
for line in open(path, errors="replace"):
    if line.startswith(("fn=", "cfn=")):
        key, _, spec = line.rstrip("\n").partition("=")
        n = name(spec)
        if key == "cfn": cfn = n
    elif line.startswith("calls=") and cfn is not None:
        calls[cfn] = calls.get(cfn, 0) + int(line[6:].split()[0])
# lb-proxy allocates with mimalloc (mi_malloc_aligned, mi_free, ...), nginx with glibc.
want = re.compile(r"^(malloc|free|realloc|calloc|posix_memalign|aligned_alloc|memalign|mi_\w*(alloc|free)\w*|"
                  r"read|write|writev|readv|recv|recvfrom|send|sendto|sendmsg|recvmsg|epoll_wait|"
                  r"epoll_ctl|accept4|close|shutdown|clock_gettime|syscall)$")
for n, c in sorted(calls.items(), key=lambda kv: -kv[1]):
    if want.match(n): print(f"  {n:<16} {c / reqs:6.2f}")
EOF
[[ -n ${CG_OUT:-} ]] && cp "$DUMP" "$CG_OUT"
exit 0
