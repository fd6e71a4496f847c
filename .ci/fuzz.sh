#!/usr/bin/env bash
# A short AFL++ run of every fuzz target (stable toolchain, cargo-afl): builds each target,
# fuzzes it for FUZZ_SECONDS (default 20) from its seeds in a temporary output directory,
# and fails if any run finds a crash or a hang. Targets: fuzz/ (ClientHello, RESP, PROXY
# header, config loader) and, when present, crates/lb-proxy/fuzz (HTTP/1 codec).
# The long runs and the planted-bug checks are described in fuzz/README.md.
#
# `.ci/fuzz.sh build` installs cargo-afl if missing and builds the targets; `.ci/fuzz.sh
# run` fuzzes the built targets; no argument does both. .ci/run starts the build at the
# lowest priority beside the tests and the runs at the end, and builds at
# AFL_OPT_LEVEL=1 (cargo-afl's default is 3): 216 s against 310 s for fuzz/ here, for
# about a third fewer executions a second, which a 20-second run can spare.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
phase=${1:-all}
secs=${FUZZ_SECONDS:-20}
# Runs at once: one a core. afl-fuzz is single-threaded.
jobs=${FUZZ_JOBS:-2}
# Instrumented builds apart from the normal ones (cargo-afl sets its own RUSTFLAGS).
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$root/target/afl}
export CARGO_INCREMENTAL=0

# crate dir | target | seeds dir
targets=(
  "fuzz client_hello fuzz/seeds/client_hello"
  "fuzz resp fuzz/seeds/resp"
  "fuzz proxy_protocol fuzz/seeds/proxy_protocol"
  "fuzz config fuzz/seeds/config"
)
if [ -f crates/lb-proxy/fuzz/Cargo.toml ]; then
  targets+=("crates/lb-proxy/fuzz http1 crates/lb-proxy/fuzz/seeds")
fi

build() {
  local start=$SECONDS
  if ! cargo afl --version >/dev/null 2>&1; then
    # A debug build of the cargo-afl command itself: it only sets flags and runs cargo
    # and afl-fuzz, and builds in about two thirds of the time of a release build
    # (154 s against 232 s here, most of the rest being AFL++'s own C build, which the
    # install runs).
    echo "fuzz: installing cargo-afl"
    cargo install cargo-afl --locked --debug
  fi
  # AFL++ itself, built once per rustc version (the install above already did); a
  # second build is refused as "already built".
  local out
  if ! out=$(cargo afl config --build 2>&1); then
    if ! grep -q "already built" <<<"$out"; then
      echo "$out" >&2
      exit 1
    fi
  fi
  echo "fuzz: cargo-afl ready after $((SECONDS - start)) s"

  local built=() t dir
  for t in "${targets[@]}"; do
    read -r dir _ _ <<<"$t"
    case " ${built[*]} " in *" $dir "*) continue ;; esac
    (cd "$dir" && cargo afl build --release -j2)
    built+=("$dir")
  done
  echo "fuzz: targets built after $((SECONDS - start)) s"
}

# fuzz_one NAME SEEDS OUT: one run; its log in OUT.log.
fuzz_one() {
  cargo afl fuzz -i "$2" -o "$3" -V "$secs" -t 5000 \
    "$CARGO_TARGET_DIR/release/$1" >"$3.log" 2>&1
}

work=
run() {
  local start=$SECONDS
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # A container's CPU frequency and core-dump settings are not ours to change; no core
  # binding (the runs share the machine); -t 5000: a generous per-input limit on a loaded
  # machine (a real hang still trips it).
  export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
    AFL_NO_AFFINITY=1
  local pids=() names=() t name seeds i
  for t in "${targets[@]}"; do
    read -r _ name seeds <<<"$t"
    # At most $jobs at once: wait for the oldest before starting another.
    if [ ${#pids[@]} -ge "$jobs" ]; then
      wait "${pids[0]}" || echo "fuzz: ${names[0]}: afl-fuzz exited non-zero" >"$work/${names[0]}.failed"
      pids=("${pids[@]:1}")
      names=("${names[@]:1}")
    fi
    echo "fuzz: $name for ${secs} s"
    fuzz_one "$name" "$seeds" "$work/$name" &
    pids+=($!)
    names+=("$name")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || echo "fuzz: ${names[$i]}: afl-fuzz exited non-zero" >"$work/${names[$i]}.failed"
  done

  local failed=0 out stats kind f keep
  for t in "${targets[@]}"; do
    read -r _ name _ <<<"$t"
    out="$work/$name"
    if [ -e "$out.failed" ]; then
      tail -20 "$out.log" >&2
      cat "$out.failed" >&2
      failed=1
      continue
    fi
    stats="$out/default/fuzzer_stats"
    get() { awk -F' *: *' -v k="$1" '$1 == k { print $2 }' "$stats"; }
    echo "fuzz: $name: $(get execs_done) executions, $(get corpus_count) paths," \
      "$(get edges_found)/$(get total_edges) edges, $(get saved_crashes) crashes," \
      "$(get saved_hangs) hangs"
    for kind in crashes hangs; do
      for f in "$out/default/$kind"/id:*; do
        [ -e "$f" ] || continue
        keep="$CARGO_TARGET_DIR/fuzz-findings/$name/$kind"
        mkdir -p "$keep" && cp "$f" "$keep/"
        echo "fuzz: $name: $kind: $keep/$(basename "$f") (replay: $CARGO_TARGET_DIR/release/$name < FILE)" >&2
        od -An -c "$f" | head -8 >&2
        failed=1
      done
    done
  done
  echo "fuzz: runs done after $((SECONDS - start)) s"
  return "$failed"
}

case $phase in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *)
    echo "usage: .ci/fuzz.sh [build|run]" >&2
    exit 2
    ;;
esac
