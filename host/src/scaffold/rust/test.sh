#!/usr/bin/env bash
# {{name}}'s unit tests, natively, with weir_sdk::testing (no weir, no Wasm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cargo test --quiet --manifest-path "$here/Cargo.toml"
