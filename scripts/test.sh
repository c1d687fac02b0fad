#!/usr/bin/env bash
# Sets up and runs every check CI runs: formatting, clippy, the host's unit and end-to-end
# tests (real binary, real components, Flink conformance cases), the SDKs' tests (Rust,
# Python, JavaScript, C) and the plugins' native unit tests.
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
bash scripts/setup.sh --test-broker --languages --browser
echo "== format"
cargo fmt --all -- --check
cargo fmt --all --manifest-path plugins/Cargo.toml -- --check
echo "== plugins (wasm32-wasip2; Rust, Python, JavaScript, C)"
bash scripts/build-plugins.sh --languages
echo "== plugins: native unit tests"
cargo test --quiet --release --manifest-path plugins/Cargo.toml --target-dir "$HOME/.cache/weir/plugins-native" 2>&1 | tee -a "$log"
echo "== SDKs and plugins in Python (pytest), JavaScript (node --test), C (native, ASan), Go (go test)"
python3 -m pytest -q -p no:cacheprovider guest-sdk/python/tests
(cd guest-sdk/js && node --test test/)
json_test=$(mktemp)
cc -std=c11 -Wall -Wextra -Werror -fsanitize=address,undefined -I guest-sdk/c guest-sdk/c/tests/json_test.c guest-sdk/c/weir.c guest-sdk/c/weir_testing.c -o "$json_test"
"$json_test"
rm -f "$json_test"
(cd guest-sdk/go && GOTOOLCHAIN=local GOPROXY=off PATH="$HOME/.cache/weir/tools/go/go/bin:$PATH" go vet ./...)
for t in plugins/examples/{python,js,c,go}/*/test.sh; do
  echo "-- $t"
  bash "$t"
done
echo "== clippy"
cargo clippy --quiet --release --workspace --all-targets -- -D warnings
cargo clippy --quiet --release --all-targets --manifest-path plugins/Cargo.toml --target-dir "$HOME/.cache/weir/plugins-native" -- -D warnings
echo "== host, SDK and end-to-end tests"
cargo test --release --workspace 2>&1 | tee -a "$log"
# The cache outlives clones, and every build hash leaves its test and bench executables
# (0.1-0.5 GB each) behind until the disk is full: one session left 36 GB. Of each
# executable only the newest build stays; cargo relinks an older one if it is wanted again.
for d in "$CARGO_TARGET_DIR"/release/{deps,examples} "$HOME/.cache/weir/plugins-native"/release/{deps,examples}; do
  [ -d "$d" ] || continue
  (cd "$d" && ls -t | while read -r f; do
    if [ -f "$f" ] && [ -x "$f" ]; then case "$f" in *.so | *.rlib | *.rmeta | *.d) ;; *) echo "$f" ;; esac; fi
  done | awk '{ name = $0; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $0 }' | xargs -r rm -f)
done
# One closing line for the whole suite.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "weir: %d passed, %d failed\n", p, f; exit (f > 0) }' "$log"
