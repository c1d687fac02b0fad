#!/usr/bin/env bash
# Sets up and runs every check CI runs: formatting, clippy, the host's unit and end-to-end
# tests (real binary, real components, Flink conformance cases), the SDK's tests and the
# plugins' native unit tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
bash scripts/setup.sh
rustup component list --installed | grep -q rustfmt || rustup component add rustfmt clippy
echo "== format"
cargo fmt --all -- --check
cargo fmt --all --manifest-path plugins/Cargo.toml -- --check
echo "== plugins (wasm32-wasip2)"
bash scripts/build-plugins.sh
echo "== plugins: native unit tests"
cargo test --quiet --release --manifest-path plugins/Cargo.toml --target-dir "$HOME/.cache/weir/plugins-native"
echo "== clippy"
cargo clippy --quiet --release --workspace --all-targets -- -D warnings
cargo clippy --quiet --release --all-targets --manifest-path plugins/Cargo.toml --target-dir "$HOME/.cache/weir/plugins-native" -- -D warnings
echo "== host, SDK and end-to-end tests"
cargo test --release --workspace
