#!/usr/bin/env bash
# Builds {{name}}.wasm with clang + wasi-libc, wit-bindgen c and wasm-tools (see weir/build.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rm -f "$here/{{name}}.wasm"
WEIR_WIT="$here/wit" bash "$here/weir/build.sh" "$here/{{name}}.wasm" "$here/{{module}}.c" 2>&1 | grep -v '^Generating' || true
[ -f "$here/{{name}}.wasm" ]
