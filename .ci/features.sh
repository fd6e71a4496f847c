#!/usr/bin/env bash
# lb-core's cargo features, each built alone: an embedder who turns off the defaults gets a
# crate that compiles, and its tests pass without them. `cargo test` only for the smallest
# build (no features); `cargo check --all-targets` (lib, tests, benches, examples) for
# each feature alone, which catches a missing `cfg` or dependency without linking.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs="${CARGO_BUILD_JOBS:-2}"
features=(runtime http tls config admin discovery server tower)

echo "features: lb-core --no-default-features (test)"
cargo test -q -j"$jobs" -p lb-core --no-default-features --lib --tests

for f in "${features[@]}"; do
  echo "features: lb-core --no-default-features --features $f (check)"
  cargo check -q -j"$jobs" -p lb-core --no-default-features --features "$f" --all-targets
done

# The docs build without warnings (broken links, missing docs); the doctests themselves
# run in the workspace's `cargo test`.
echo "features: lb-core docs (RUSTDOCFLAGS=-Dwarnings)"
RUSTDOCFLAGS=-Dwarnings cargo doc -q -j"$jobs" -p lb-core --no-deps
echo "features: ok"
