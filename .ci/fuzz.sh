#!/usr/bin/env bash
# A short AFL++ run of every fuzz target (stable toolchain, cargo-afl): builds each target,
# fuzzes it for FUZZ_SECONDS (default 20) from its seeds in a temporary output directory,
# and fails if any run finds a crash or a hang. Targets: fuzz/ (ClientHello, RESP, PROXY
# header, config loader) and, when present, crates/lb-proxy/fuzz (HTTP/1 codec).
# The long runs and the planted-bug checks are described in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${FUZZ_SECONDS:-20}
# Instrumented builds apart from the normal ones (cargo-afl sets its own RUSTFLAGS).
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$root/target/afl}
export CARGO_INCREMENTAL=0

start=$SECONDS
if ! cargo afl --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-afl"
  cargo install cargo-afl --locked
fi
# AFL++ itself, built once per rustc version; a second build is refused as "already built".
if ! out=$(cargo afl config --build 2>&1); then
  if ! grep -q "already built" <<<"$out"; then
    echo "$out" >&2
    exit 1
  fi
fi
echo "fuzz: cargo-afl ready after $((SECONDS - start)) s"

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

built=()
for t in "${targets[@]}"; do
  read -r dir _ _ <<<"$t"
  case " ${built[*]} " in *" $dir "*) continue ;; esac
  (cd "$dir" && cargo afl build --release -j2)
  built+=("$dir")
done
echo "fuzz: targets built after $((SECONDS - start)) s"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A container's CPU frequency and core-dump settings are not ours to change; the runs are
# short and share the machine, so no core binding; -t 5000: a generous per-input limit on
# a loaded machine (a real hang still trips it).
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
  AFL_NO_AFFINITY=1
failed=0
for t in "${targets[@]}"; do
  read -r _ name seeds <<<"$t"
  out="$work/$name"
  echo "fuzz: $name for ${secs} s"
  cargo afl fuzz -i "$seeds" -o "$out" -V "$secs" -t 5000 \
    "$CARGO_TARGET_DIR/release/$name" >"$work/$name.log" 2>&1 || {
    tail -20 "$work/$name.log" >&2
    echo "fuzz: $name: afl-fuzz failed" >&2
    failed=1
    continue
  }
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
echo "fuzz: done after $((SECONDS - start)) s"
exit "$failed"
