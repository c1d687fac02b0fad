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
# With --languages, the plugins in other languages too, each by its own build.sh, as
# plugins/dist/LANG_NAME.wasm (python_detect.wasm, js_detect.wasm, c_detect.wasm,
# go_detect.wasm, ...);
# they need the toolchains of `scripts/setup.sh --languages`.
if [[ " $* " == *" --languages "* ]]; then
  for build in "$root"/plugins/examples/{python,js,c,go}/*/build.sh; do
    dir=$(dirname "$build")
    name="$(basename "$(dirname "$dir")")_$(basename "$dir")"
    out="$root/plugins/dist/${name//-/_}.wasm"
    # Rebuilt only when a source (or the SDK) is newer than the component.
    if [ -f "$out" ] && [ -z "$(find "$dir" "$root/guest-sdk" "$root/wit" -newer "$out" -type f -print -quit)" ]; then
      continue
    fi
    bash "$build" "$out" 2>&1 | grep -v '^Generating' || true
    [ -f "$out" ] || { echo "build-plugins: $build made no $out" >&2; exit 1; }
  done
fi
