#!/usr/bin/env bash
# Sets up and runs every check CI runs: formatting, clippy, the host's unit and end-to-end
# tests (real binary, real components, Flink conformance cases), the SDK's tests and the
# plugins' native unit tests.
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
bash scripts/setup.sh
echo "== format"
cargo fmt --all -- --check
cargo fmt --all --manifest-path plugins/Cargo.toml -- --check
echo "== plugins (wasm32-wasip2)"
bash scripts/build-plugins.sh
echo "== plugins: native unit tests"
cargo test --quiet --release --manifest-path plugins/Cargo.toml --target-dir "$HOME/.cache/weir/plugins-native" 2>&1 | tee -a "$log"
echo "== clippy"
cargo clippy --quiet --release --workspace --all-targets -- -D warnings
cargo clippy --quiet --release --all-targets --manifest-path plugins/Cargo.toml --target-dir "$HOME/.cache/weir/plugins-native" -- -D warnings
echo "== host, SDK and end-to-end tests"
cargo test --release --workspace 2>&1 | tee -a "$log"
# The cache outlives clones, and executables of older builds (other hashes: 0.1-0.5 GB each)
# pile up in it until the disk is full. Those not rebuilt for a week go; cargo relinks any
# that is still wanted.
for d in "$CARGO_TARGET_DIR"/release/{deps,examples} "$HOME/.cache/weir/plugins-native"/release/{deps,examples}; do
  if [ -d "$d" ]; then find "$d" -maxdepth 1 -type f -executable ! -name '*.so' -mtime +7 -delete; fi
done
# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "weir: %d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
