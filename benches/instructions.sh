#!/usr/bin/env bash
# Instructions per keep-alive request of lb-proxy binaries, counted by callgrind: a
# measure that, unlike CPU time, does not move when other work shares the 2 cores.
#
# One nginx backend on loopback answers "hello\n"; each binary runs under
# `valgrind --tool=callgrind` with `threads = 1`; a python client sends N1 and then (in a
# second run) N2 GETs with four headers on one keep-alive connection; the figure is
# (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up and shutdown cancel out.
#
#   bash benches/instructions.sh [BIN ...]        (default: target/release/lb-proxy)
#   env: N1 (default 500), N2 (default 2500), KEEP_TMP=1
# Loopback only; every process started here is stopped by PID on exit.
set -euo pipefail
N1=${N1:-500}; N2=${N2:-2500}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BINS=("$@"); ((${#BINS[@]})) || BINS=("$ROOT/target/release/lb-proxy")
for t in valgrind nginx python3; do command -v $t >/dev/null || PATH=$PATH:/usr/sbin command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done
PATH=$PATH:/usr/sbin
T=$(mktemp -d /tmp/lb-instr.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [[ ${KEEP_TMP:-0} == 1 ]] || rm -rf "$T"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PB=$(free_port); PL=$(free_port); PA=$(free_port)
[[ $(id -u) == 0 ]] && USER_LINE="user root;" || USER_LINE=""
cat >"$T/backend.conf" <<C
$USER_LINE
worker_processes 1;
daemon off;
pid $T/backend.pid;
error_log $T/backend.err warn;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path $T/b; proxy_temp_path $T/p; fastcgi_temp_path $T/f;
  uwsgi_temp_path $T/u; scgi_temp_path $T/s; keepalive_requests 10000000; keepalive_timeout 120s;
  server { listen 127.0.0.1:$PB; location / { return 200 "hello\n"; } } }
C
cat >"$T/lb.toml" <<C
threads = 1
[admin]
listen = "127.0.0.1:$PA"
[[listener]]
listen = "127.0.0.1:$PL"
[pool.web]
backends = ["127.0.0.1:$PB"]
[[route]]
host = "*"
pool = "web"
C
cat >"$T/client.py" <<'C'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
req = b"GET / HTTP/1.1\r\nHost: web.test\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\n\r\n"
buf = b""
for _ in range(n):
    s.sendall(req)
    while True:
        h = buf.find(b"\r\n\r\n")
        if h >= 0:
            head = buf[:h].decode()
            cl = int([l.split(":")[1] for l in head.split("\r\n") if l.lower().startswith("content-length")][0])
            if len(buf) >= h + 4 + cl:
                assert head.startswith("HTTP/1.1 200"), head
                buf = buf[h + 4 + cl:]
                break
        d = s.recv(65536)
        assert d, "closed"
        buf += d
C
nginx -p "$T" -e "$T/backend.err" -c "$T/backend.conf" & PIDS+=($!)
sleep 0.5
ir() { # bin requests -> instructions of the whole run
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$T/cg.$2" "$1" --config "$T/lb.toml" >"$T/cg.log" 2>&1 &
  local pid=$!; PIDS+=($pid)
  for _ in $(seq 150); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$PL))" 2>/dev/null && break; sleep 0.2; done
  python3 "$T/client.py" "$PL" "$2" >/dev/null
  kill -TERM $pid; wait $pid 2>/dev/null || true
  grep -o 'Collected : [0-9]*' "$T/cg.log" | awk '{print $3}'
}
for bin in "${BINS[@]}"; do
  a=$(ir "$bin" "$N1"); b=$(ir "$bin" "$N2")
  echo "$bin: $(( (b - a) / (N2 - N1) )) instructions per keep-alive request (Ir $a @ $N1, $b @ $N2)"
done
