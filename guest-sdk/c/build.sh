#!/usr/bin/env bash
# Builds a C process operator into a weir component:
#   bash build.sh OUT.wasm SOURCE.c...
# with Debian's clang and wasi-libc (packages clang, lld, wasi-libc,
# libclang-rt-14-dev-wasm32), bindings from `wit-bindgen c` (crate wit-bindgen-cli) and
# `wasm-tools component new` with the WASI reactor adapter (scripts/setup.sh --languages
# installs all of them). WEIR_WIT names the WIT folder (default: ../../wit from here).
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
out=$1
shift
wit=${WEIR_WIT:-$sdk/../../wit}
tools=${WEIR_TOOLS:-$HOME/.cache/weir/tools}
export PATH="$tools/bin:$PATH"
adapter=${WEIR_WASI_ADAPTER:-$tools/wasi_snapshot_preview1.reactor.wasm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen c "$wit" --world process --out-dir "$work/gen" >/dev/null
clang --target=wasm32-wasi --sysroot=/usr -std=c11 -O2 -Wall -Wextra -Werror -mexec-model=reactor \
  -I "$sdk" -I "$work/gen" -o "$work/core.wasm" \
  "$@" "$sdk/weir.c" "$sdk/weir_wasm.c" "$work/gen/process.c" "$work/gen/process_component_type.o"
wasm-tools component new "$work/core.wasm" --adapt "wasi_snapshot_preview1=$adapter" -o "$out"
