#!/usr/bin/env bash
# Profile-guided release build of lb-proxy: an instrumented build serves a training load on
# loopback, LLVM's profile of it guides the final build (which code is hot, how it is laid
# out, what to inline). The binary: target/pgo/release/lb-proxy.
#
# Why: lb-proxy's hot path runs through many functions (tokio, our state machines,
# httparse); laid out without a profile its code spills out of the 32 KB L1 instruction
# cache. Under callgrind's cache simulation this script's build cut instruction-cache
# misses per keep-alive request from 831 to 370 and instructions from 14,800 to 12,800
# (2026-12-03, commit 1fd6bce).
#
# Training (the instrumented binary, nginx backends answering "hello\n", wrk): keep-alive
# and new-connection loads, both over TLS too, a route that edits headers (the header-map
# path), a consistent-hash pool keyed on a header, and POSTs with a body (hyper's path).
# Paths not trained (HTTP/2 upstreams, directories, WebSocket) are built as cold code:
# as correct as in a plain build; their speed in it was not measured.
#
# Env: TRAIN (seconds per load, default 3), KEEP_TMP=1. Needs llvm-profdata of rustc's LLVM
# version (the rustup component llvm-tools, or Debian's llvm-N, installed here as root),
# nginx, wrk, openssl, python3. Loopback only; every process started is stopped by PID.
set -euo pipefail

TRAIN=${TRAIN:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=pgo.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
install_missing nginx:nginx-light wrk:wrk python3:python3 openssl:openssl

# --- llvm-profdata of rustc's LLVM --------------------------------------------------------
LLVM_MAJOR=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
[[ -n $LLVM_MAJOR ]] || die "could not read rustc's LLVM version from rustc -vV"
PROFDATA=""
for c in "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata" \
    "$(command -v "llvm-profdata-$LLVM_MAJOR" || true)"; do
    if [[ -n $c && -x $c ]]; then PROFDATA=$c; break; fi
done
if [[ -z $PROFDATA ]]; then
    install_missing "llvm-profdata-$LLVM_MAJOR:llvm-$LLVM_MAJOR"
    PROFDATA=$(command -v "llvm-profdata-$LLVM_MAJOR") \
        || die "no llvm-profdata for LLVM $LLVM_MAJOR: rustup component add llvm-tools, or install llvm-$LLVM_MAJOR"
fi
log "llvm-profdata: $PROFDATA (rustc's LLVM $LLVM_MAJOR)"

TARGET=$ROOT/target/pgo
DATA=$TMP/profiles
mkdir -p "$DATA"

# --- 1. instrumented build ----------------------------------------------------------------
log "instrumented build (target/pgo)"
# The build's default profile path is fixed, so that a second run reuses this build (the
# training sets its own path).
(cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$TARGET/profiles" CARGO_TARGET_DIR=$TARGET \
    timeout 3600 cargo build --release -j2 -p lb-proxy)
cp "$TARGET/release/lb-proxy" "$TMP/lb-proxy-instrumented"

# --- 2. training --------------------------------------------------------------------------
read -r P_B1 P_B2 P_LB P_ADMIN P_LBS < <(free_ports 5)
make_cert
write_backend_conf "$TMP/backend.conf"
write_lb_toml "$TMP/lb.toml"
cat >>"$TMP/lb.toml" <<TOML

[[listener]]
listen = "127.0.0.1:$P_LBS"
idle_timeout = "120s"
tls = { cert = "$TMP/cert.pem", key = "$TMP/key.pem" }

[pool.hashed]
strategy = "consistent"
key = "header:x-user"
backends = ["127.0.0.1:$P_B1", "127.0.0.1:$P_B2"]

[[route]]
host = "hashed.local"
pool = "hashed"

[[route]]
host = "edit.local"
pool = "web"
set_headers = { "x-edited" = "1" }
remove_headers = ["x-drop"]
TOML
# The catch-all route must come last: move it after the others.
python3 - "$TMP/lb.toml" <<'EOF'
import re, sys
p = sys.argv[1]
s = open(p).read()
catch_all = '[[route]]\nhost = "*"\npool = "web"\n'
assert catch_all in s, "write_lb_toml's route changed"
s = s.replace(catch_all, "") + "\n" + catch_all
open(p, "w").write(s)
EOF
RUST_LOG=warn "$TMP/lb-proxy-instrumented" --config "$TMP/lb.toml" --check >/dev/null || die "training lb.toml invalid"
cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 2048)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF

nginx -p "$TMP" -e "$TMP/backend.err" -c "$TMP/backend.conf" 2>>"$TMP/backend.err" &
PIDS+=("$!"); wait_port "$P_B1" "$!" backends
LLVM_PROFILE_FILE="$DATA/train-%p.profraw" RUST_LOG=warn "$TMP/lb-proxy-instrumented" \
    --config "$TMP/lb.toml" >>"$TMP/lb.log" 2>&1 &
LB_PID=$!; PIDS+=("$LB_PID")
wait_port "$P_LB" "$LB_PID" lb-proxy; wait_port "$P_LBS" "$LB_PID" "lb-proxy (TLS)"

train() { # label, wrk args...
    local label=$1 out
    shift
    out=$(timeout $((TRAIN + 30)) wrk -t1 -d"${TRAIN}s" "$@") || die "training load '$label' failed"
    log "trained: $label, $(grep -oE '[0-9]+ requests in' <<<"$out" | cut -d' ' -f1) requests"
}
plain=http://127.0.0.1:$P_LB/
train "keep-alive" -c64 "$plain"
train "new connection" -c32 -H "Connection: close" "$plain"
train "TLS keep-alive" -c64 "https://127.0.0.1:$P_LBS/"
train "TLS new connection" -c32 -H "Connection: close" "https://127.0.0.1:$P_LBS/"
train "header edits" -c16 -H "Host: edit.local" -H "X-Drop: 1" "$plain"
train "consistent hash on a header" -c16 -H "Host: hashed.local" -H "X-User: u-42" "$plain"
train "POST with a body" -c16 -s "$TMP/post.lua" "$plain"

# The profile is written as the process exits (SIGTERM: drain, exit 0).
kill -TERM "$LB_PID"
for _ in $(seq 300); do kill -0 "$LB_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$LB_PID" 2>/dev/null && die "lb-proxy did not exit on SIGTERM within 30 s"
wait "$LB_PID" 2>/dev/null || true
compgen -G "$DATA/train-*.profraw" >/dev/null || die "no profile written (see $TMP/lb.log)"
"$PROFDATA" merge -o "$TARGET/merged.profdata" "$DATA"/train-*.profraw
log "profile: $TARGET/merged.profdata, $(du -h "$TARGET/merged.profdata" | cut -f1)"

# --- 3. the build the profile guides ------------------------------------------------------
log "profile-guided build (target/pgo)"
(cd "$ROOT" && RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$TARGET/merged.profdata" \
    CARGO_TARGET_DIR=$TARGET timeout 3600 cargo build --release -j2 -p lb-proxy)
log "done: $TARGET/release/lb-proxy"
log "compare it: LB_PROXY_BIN=$TARGET/release/lb-proxy BASELINE_BIN=$ROOT/target/release/lb-proxy bash benches/load.sh"
