#!/usr/bin/env bash
# Builds {{name}}.wasm (a wasm32-wasip2 component) from src/lib.rs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
target=${CARGO_TARGET_DIR:-$here/target}
cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$here/Cargo.toml" --target-dir "$target"
cp "$target/wasm32-wasip2/release/{{crate}}.wasm" "$here/{{name}}.wasm"
