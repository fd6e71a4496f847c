#!/usr/bin/env bash
# What one new TLS connection costs lb-sni (or HAProxy): syscalls per connection
# (strace -c -f) and instructions per connection (valgrind's callgrind). Neither figure
# moves with the neighbours' load, so they compare two builds, or lb-sni and HAProxy, on
# a shared machine; wall-clock figures are sni.sh's.
#
# One nginx terminates TLS on two loopback ports (self-signed certificate for
# bench.local) and answers "hello\n" with Connection: close. The router (threads = 1 /
# nbthread 1, the configuration of sni.sh) reads the ClientHello and splices to both
# backends round-robin. A python client makes CONNS connections, PAR at a time, each a
# new TCP connection and a resumed TLS session (SNI bench.local) carrying one
# `GET / Connection: close`, read to EOF. WARM connections first, then the counters are
# reset (strace attaches; callgrind_control -z), CONNS connections, and the counts are
# divided by CONNS.
#
# Env: CONNS (default 2000; callgrind: 1000), PAR (default 8), WARM (default 200),
#      TOOL=strace|callgrind (default strace), PROXY=lb-sni|haproxy (default lb-sni),
#      LB_SNI_BIN (default target/release/lb-sni: cargo build --release -j2 -p lb-sni),
#      STRACE_LOG=FILE (strace: the full trace of the CONNS connections in FILE instead of
#      the counts, to see the calls of one connection in order),
#      CG_OUT (keep the callgrind dump), KEEP_TMP=1.
# Loopback only; every process started here is stopped by PID on exit; the client and
# each tool are bounded by `timeout`.
set -euo pipefail
TOOL=${TOOL:-strace}
PROXY=${PROXY:-lb-sni}
PAR=${PAR:-8}
WARM=${WARM:-200}
if [[ $TOOL == callgrind ]]; then CONNS=${CONNS:-1000}; else CONNS=${CONNS:-2000}; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LB=${LB_SNI_BIN:-$ROOT/target/release/lb-sni}
NAME=sni-conn.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
install_missing nginx:nginx haproxy:haproxy openssl:openssl python3:python3 strace:strace \
    valgrind:valgrind
[[ $PROXY == haproxy || -x $LB ]] || die "no lb-sni at $LB (cargo build --release -j2 -p lb-sni)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

read -r P_B1 P_B2 P_LB P_ADMIN < <(free_ports 4)
make_cert
cat >"$TMP/backend.conf" <<EOF
$(nginx_main backend)
http {
    access_log off;
    $(nginx_temp_paths backend-tmp)
    keepalive_timeout 0;
    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_session_cache shared:SSL:10m;
    server {
        listen 127.0.0.1:$P_B1 ssl; listen 127.0.0.1:$P_B2 ssl;
        location = / { return 200 "hello\n"; }
    }
}
EOF
write_lb_toml "$TMP/lb.toml"
write_haproxy_sni_cfg "$TMP/haproxy.cfg" "$P_LB"

nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" 2>>"$TMP/backend.err" &
PIDS+=("$!")
wait_port "$P_B1" "$!" backends

VG=()
[[ $TOOL == callgrind ]] && VG=(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out")
case $PROXY in
lb-sni) RUST_LOG=warn "${VG[@]}" "$LB" --config "$TMP/lb.toml" >"$TMP/router.log" 2>&1 & ;;
haproxy) "${VG[@]}" haproxy -db -f "$TMP/haproxy.cfg" >"$TMP/router.log" 2>&1 & ;;
*) die "PROXY is lb-sni or haproxy, not $PROXY" ;;
esac
ROUTER=$!
PIDS+=("$ROUTER")
wait_port "$P_LB" "$ROUTER" "$PROXY"

cat >"$TMP/client.py" <<'PY'
import socket, ssl, sys, threading
port, total, par, ca = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
req = b"GET / HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n"
left, lock, failed = [total], threading.Lock(), []
def worker():
    session = None
    while True:
        with lock:
            if left[0] == 0 or failed: return
            left[0] -= 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
                with ctx.wrap_socket(raw, server_hostname="bench.local", session=session) as s:
                    s.sendall(req)
                    body = b""
                    while chunk := s.recv(4096):
                        body += chunk
                    if not body.endswith(b"hello\n"):
                        raise RuntimeError(f"bad answer {body[:100]!r}")
                    session = s.session
        except Exception as e:
            failed.append(e)
threads = [threading.Thread(target=worker) for _ in range(par)]
for t in threads: t.start()
for t in threads: t.join()
if failed: sys.exit(f"client failed: {failed[0]!r}")
PY
client() { timeout 1800 python3 "$TMP/client.py" "$P_LB" "$1" "$PAR" "$TMP/cert.pem" || die "client failed"; }

client "$WARM"
if [[ $TOOL == strace ]]; then
    if [[ -n ${STRACE_LOG:-} ]]; then
        timeout 1900 strace -f -o "$STRACE_LOG" -p "$ROUTER" 2>/dev/null &
    else
        timeout 1900 strace -c -f -o "$TMP/strace.txt" -p "$ROUTER" 2>/dev/null &
    fi
    ST=$!
    PIDS+=("$ST")
    sleep 1
    client "$CONNS"
    sleep 0.5
    kill -INT "$ST" 2>/dev/null || true
    wait "$ST" 2>/dev/null || true
    [[ -n ${STRACE_LOG:-} ]] && { log "full trace in $STRACE_LOG"; exit 0; }
    python3 - "$PROXY" "$CONNS" "$TMP/strace.txt" <<'EOF'
import sys
proxy, conns, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls[f[-1]] = int(f[3])
total = sum(calls.values())
print(f"{proxy}: {total / conns:.2f} syscalls per connection ({total} over {conns})")
for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
    print(f"  {name:<16} {n / conns:6.2f}")
EOF
else
    timeout 60 callgrind_control -z "$ROUTER" >/dev/null
    client "$CONNS"
    timeout 60 callgrind_control -d "$ROUTER" >/dev/null
    DUMP=$(ls -t "$TMP"/cg.out.* | head -1)
    TOTAL=$(callgrind_annotate "$DUMP" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')
    echo "$PROXY: $((TOTAL / CONNS)) Ir per connection ($TOTAL over $CONNS)"
    top() { callgrind_annotate --threshold=100 --auto=no "$@" "$DUMP" 2>/dev/null |
        sed -n '/file:function/,$p' | grep -E '^ *[0-9,]+ \(' | grep -v '(100.0%)' | head -30 |
        sed 's|/root/.cargo/registry/src/index.crates.io-[0-9a-f]*/||; s|/rustc/[0-9a-f]*/||' | cut -c1-180 ||
        true; }  # head closes the pipe early: not a failure
    echo "--- top self (Ir over all $CONNS connections)"; top
    echo "--- top inclusive"; top --inclusive=yes
    [[ -n ${CG_OUT:-} ]] && cp "$DUMP" "$CG_OUT"
fi
exit 0
