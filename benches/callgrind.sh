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
#      PROXY=nginx (count nginx as the proxy instead), CLOSE=1 (each request on a new
#      connection with "Connection: close", CONNS of them in flight: the new-connection
#      load of load.sh), VG_EXTRA (more valgrind options, e.g. --cache-sim=yes for
#      simulated cache misses in the dump), CG_OUT (keep the dump), KEEP_TMP=1.
# Loopback only; every process started here is stopped by PID on exit.
set -euo pipefail
REQS=${REQS:-20000}
CONNS=${CONNS:-64}
CLOSE=${CLOSE:-0}
WARM=${WARM:-2000}
VG_EXTRA=${VG_EXTRA:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LB=${LB_PROXY_BIN:-$ROOT/target/release/lb-proxy}
PATH=$PATH:/usr/sbin:/sbin
for t in valgrind callgrind_annotate callgrind_control nginx python3; do
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
threads = 1
[admin]
listen = "127.0.0.1:$P_ADMIN"
[log]
access = "off"
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
if [[ ${PROXY:-lb-proxy} == nginx ]]; then
    valgrind --tool=callgrind $VG_EXTRA --callgrind-out-file="$TMP/cg.out" \
        nginx -p "$TMP" -e "$TMP/nginx-proxy.err" -c "$TMP/nginx-proxy.conf" >"$TMP/lb.log" 2>&1 &
else
    RUST_LOG=warn valgrind --tool=callgrind $VG_EXTRA --callgrind-out-file="$TMP/cg.out" \
        "$LB" --config "$TMP/lb.toml" >"$TMP/lb.log" 2>&1 &
fi
VG=$!; PIDS+=("$VG")
cat >"$TMP/client.py" <<'PY'
import selectors, socket, sys, time
port, conns, total, close = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
req = b"GET / HTTP/1.1\r\nHost: bench.local\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
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
    s.send(req); sent += 1
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
            if sent < total and not close: s.send(req); sent += 1
for s in socks: s.close()
print(done)
PY
timeout 900 python3 "$TMP/client.py" "$P_LB" "$CONNS" "$WARM" "$CLOSE" >/dev/null
timeout 60 callgrind_control -z "$VG" >/dev/null
START=$(date +%s)
timeout 1800 python3 "$TMP/client.py" "$P_LB" "$CONNS" "$REQS" "$CLOSE" >/dev/null
timeout 60 callgrind_control -d "$VG" >/dev/null
echo "load of $REQS requests took $(( $(date +%s) - START )) s under callgrind" >&2
DUMP=$(ls -t "$TMP"/cg.out.* | head -1)
TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
echo "Ir total $TOTAL over $REQS requests: $((TOTAL / REQS)) Ir/request (CONNS=$CONNS CLOSE=$CLOSE)"
# --threshold=100 lists every function; the frames above main (100 %) are dropped.
top() { callgrind_annotate --threshold=100 --auto=no "$@" "$DUMP" 2>/dev/null |
    sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \(' | grep -v '(100.0%)' | head -30 |
    sed 's|/root/.cargo/registry/src/index.crates.io-[0-9a-f]*/||; s|/rustc/[0-9a-f]*/||' | cut -c1-180 ||
    true; }  # head closes the pipe early: not a failure
echo "--- top self (Ir over all $REQS requests)"; top
echo "--- top inclusive"; top --inclusive=yes
[[ -n ${CG_OUT:-} ]] && cp "$DUMP" "$CG_OUT"
exit 0
