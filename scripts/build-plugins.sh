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
# Other builds of the counter (hot-reload tests): one per feature, as counter_FEATURE.wasm
# (each build writes counter.wasm anew: copied at once).
for feature in v2 v3 trap bad-init; do
  (cd "$root/plugins" && cargo build --quiet --release --target wasm32-wasip2 --target-dir "$target" -p counter --features "$feature")
  cp "$target/wasm32-wasip2/release/counter.wasm" "$root/plugins/dist/counter_${feature//-/_}.wasm"
done
# The default build last, so counter.wasm in the target folder is v1 again.
(cd "$root/plugins" && cargo build --quiet --release --target wasm32-wasip2 --target-dir "$target" -p counter)
