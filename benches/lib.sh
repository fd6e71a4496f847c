# Shared by the benchmark scripts in benches/: logging, a temp dir with cleanup of every
# process started (by PID), free loopback ports, waiting for a listener, CPU ticks of a
# process tree. Source it after setting NAME (the script's name for log lines).
# shellcheck shell=bash

log() { printf '[%s %s] %s\n' "$NAME" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# install_missing CMD:PACKAGE ...: installs the packages of missing commands with apt-get
# (as root), or dies naming them.
install_missing() {
    local pair cmd pkg need=()
    for pair in "$@"; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        if [[ $cmd == /* ]]; then [[ -e $cmd ]] || need+=("$pkg"); else command -v "$cmd" >/dev/null || need+=("$pkg"); fi
    done
    ((${#need[@]})) || return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${need[*]} with apt-get"
        timeout 600 apt-get update -qq
        DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "${need[@]}"
    else
        die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run this script as root"
    fi
}

# A temp dir in $TMP; every PID appended to PIDS is stopped (TERM, then KILL) on exit.
TMP=$(mktemp -d "/tmp/lb-$NAME.XXXXXX")
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_ports N: N free loopback ports (bound to port 0, then released), on one line.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
}

wait_port() { # port pid name
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || die "$3 exited at start (see $TMP)"
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$3 not listening on $1 after 10 s"
}

# tree_pids PID: the process and its direct children (nginx workers).
tree_pids() {
    local t
    echo "$1"
    for t in /proc/"$1"/task/*/children; do cat "$t" 2>/dev/null; done | tr ' ' '\n' | sed '/^$/d'
}

# tree_ticks PID: "utime stime" in clock ticks, summed over tree_pids.
tree_ticks() {
    local p u=0 s=0 a b
    for p in $(tree_pids "$1"); do
        read -r a b < <(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
        u=$((u + a)); s=$((s + b))
    done
    echo "$u $s"
}

CLK_TCK=$(getconf CLK_TCK)

# Workers of every proxy under test (lb: `threads`, nginx: `worker_processes`, HAProxy:
# `nbthread`); the backends keep BACKEND_WORKERS (1). wrk runs WRK_THREADS threads
# (default: WORKERS). LB_ENV: environment for the lb process (e.g. LB_REUSEPORT=1, see
# benches/README.md), BASELINE_ENV the same for the BASELINE_BIN process.
WORKERS=${WORKERS:-1}
BACKEND_WORKERS=${BACKEND_WORKERS:-1}
WRK_THREADS=${WRK_THREADS:-$WORKERS}
LB_ENV=${LB_ENV:-}
BASELINE_ENV=${BASELINE_ENV:-}
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive number, not '$WORKERS'"
export WORKERS WRK_THREADS
PATH=$PATH:/usr/sbin:/sbin

# PIN=1: the proxy under test on CPU 1, the load generator and the backends on CPU 0
# (taskset), so a proxy's latency tail is its own and not the scheduler's placing it beside
# wrk. One worker only, on a machine of two or more CPUs. ON_PROXY and ON_LOAD are the
# command prefixes (empty without PIN).
PIN=${PIN:-0}
ON_PROXY=() ON_LOAD=()
if [[ $PIN == 1 ]]; then
    ((WORKERS == 1)) || die "PIN=1 pins one worker; WORKERS is $WORKERS"
    (($(nproc) >= 2)) || die "PIN=1 needs two CPUs"
    command -v taskset >/dev/null || die "PIN=1 needs taskset (util-linux)"
    ON_PROXY=(taskset -c 1) ON_LOAD=(taskset -c 0)
elif [[ $PIN != 0 ]]; then
    die "PIN is 0 or 1, not '$PIN'"
fi

# write_lb_toml FILE: the lb config both benchmarks use (lb-proxy and lb-sni read the same
# shape): WORKERS workers (`threads`), one listener on $P_LB, the admin API on $P_ADMIN, a
# round-robin pool of the backends on $P_B1 and $P_B2, one catch-all route.
write_lb_toml() {
    cat >"$1" <<TOML
threads = $WORKERS

[admin]
listen = "127.0.0.1:$P_ADMIN"

# nginx and HAProxy run without access logs here; so does lb (its default is stdout).
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
TOML
}

# check_configs LB_BIN: backend.conf, nginx.conf, haproxy.cfg and lb.toml in $TMP are valid.
check_configs() {
    log "checking configs"
    nginx -t -q -p "$TMP" -e "$TMP/check.err" -c "$TMP/backend.conf" || die "backend.conf invalid"
    nginx -t -q -p "$TMP" -e "$TMP/check.err" -c "$TMP/nginx.conf" || die "nginx.conf invalid"
    haproxy -c -q -f "$TMP/haproxy.cfg" || die "haproxy.cfg invalid"
    RUST_LOG=warn "$1" --config "$TMP/lb.toml" --check >/dev/null || die "lb.toml invalid"
}

# write_baseline_toml BIN OLD:NEW... : $TMP/baseline.toml, a copy of $TMP/lb.toml for a
# second build (BASELINE_BIN) run beside the first, with each listen port OLD (a listener,
# the admin API) moved to NEW; checked with BIN's --check.
write_baseline_toml() {
    local bin=$1 pair args=()
    shift
    for pair in "$@"; do
        args+=(-e "s/127.0.0.1:${pair%%:*}\"/127.0.0.1:${pair#*:}\"/")
    done
    sed "${args[@]}" "$TMP/lb.toml" >"$TMP/baseline.toml"
    RUST_LOG=warn "$bin" --config "$TMP/baseline.toml" --check >/dev/null || die "baseline.toml invalid for $bin"
}

# Run nginx as root's own user when root (its workers read $TMP).
USER_LINE=""
[[ $(id -u) == 0 ]] && USER_LINE="user root;"

# nginx_main NAME [WORKERS]: the main-context lines of an nginx config: WORKERS worker
# processes (default 1), not a daemon, its pid and error log in $TMP/NAME.pid and
# $TMP/NAME.err.
nginx_main() {
    cat <<CONF
$USER_LINE
worker_processes ${2:-1};
worker_rlimit_nofile 16384;
daemon off;
pid $TMP/$1.pid;
error_log $TMP/$1.err warn;
events { worker_connections 8192; }
CONF
}

# nginx_upstream PORT1 PORT2: the upstream block of nginx as a proxy (load.sh, callgrind.sh):
# both backends, round-robin, 64 idle keep-alive connections kept.
nginx_upstream() {
    cat <<CONF
upstream backends {
        server 127.0.0.1:$1;
        server 127.0.0.1:$2;
        keepalive 64;
        keepalive_requests 10000000;
    }
CONF
}

# nginx_temp_paths DIR: the temp paths nginx would otherwise put under /var/lib/nginx.
nginx_temp_paths() {
    local d=$TMP/$1
    mkdir -p "$d"
    echo "client_body_temp_path $d/body; proxy_temp_path $d/proxy; fastcgi_temp_path $d/fcgi;"
    echo "uwsgi_temp_path $d/uwsgi; scgi_temp_path $d/scgi;"
}

# write_backend_conf FILE: the backends of load.sh and pgo.sh: one nginx answering
# "hello\n" on $P_B1 and $P_B2, keep-alive without limits, no access log.
write_backend_conf() {
    cat >"$1" <<EOF
$(nginx_main backend "$BACKEND_WORKERS")
http {
    access_log off;
    $(nginx_temp_paths backend-tmp)
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server { listen 127.0.0.1:$P_B1; location / { return 200 "hello\n"; } }
    server { listen 127.0.0.1:$P_B2; location / { return 200 "hello\n"; } }
}
EOF
}

# write_haproxy_sni_cfg FILE PORT: HAProxy as a TCP router on the TLS SNI (sni.sh,
# sni-conn.sh): $WORKERS threads listening on PORT, the ClientHello awaited (up to 5 s),
# round-robin over $P_B1 and $P_B2.
write_haproxy_sni_cfg() {
    cat >"$1" <<EOF
global
    nbthread $WORKERS
    maxconn 8000
    pidfile $TMP/haproxy.pid
defaults
    mode tcp
    timeout connect 2s
    timeout client 120s
    timeout server 120s
frontend fe
    bind 127.0.0.1:$2
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend be if { req.ssl_sni -m found }
    default_backend be
backend be
    balance roundrobin
    server b1 127.0.0.1:$P_B1
    server b2 127.0.0.1:$P_B2
EOF
}

# make_cert: a self-signed ECDSA P-256 certificate for bench.local, in $TMP/cert.pem and
# $TMP/key.pem.
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=bench.local -addext subjectAltName=DNS:bench.local \
        -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null || die "openssl req failed"
}

# rotated ROUND ITEM... : the items, rotated left by ROUND-1 (ROUND counts from 1), one per
# line. The scripts measure their servers in this order: the one measured first after
# the warm-up comes out worse (2026-12-03, load.sh: a build that runs 13 % fewer
# instructions, measured first in every round, read 1.06x another measured last), so the
# first place moves each round, and with REPEAT a multiple of the number of servers each
# one takes every place equally often.
rotated() {
    local round=$1
    shift
    local n=$# k
    k=$(((round - 1) % n))
    printf '%s\n' "${@:k+1}" "${@:1:k}"
}
