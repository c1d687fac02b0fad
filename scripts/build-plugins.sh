#!/usr/bin/env bash
# Builds every guest component in plugins/ for wasm32-wasip2 and copies them to
# plugins/dist/NAME.wasm, the paths job files refer to.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${WEIR_PLUGIN_TARGET_DIR:-$HOME/.cache/weir/plugins-target}
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
# From inside plugins/, so that plugins/.cargo/config.toml (compiler settings) applies.
(cd "$root/plugins" && cargo build --quiet --release --target wasm32-wasip2 --target-dir "$target")
mkdir -p "$root/plugins/dist"
for f in "$target"/wasm32-wasip2/release/*.wasm; do
  cp -u "$f" "$root/plugins/dist/"
done
