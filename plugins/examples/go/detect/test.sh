#!/usr/bin/env bash
# This operator's unit tests natively (go test, with weir/weirtest), without weir and Wasm.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="${WEIR_TOOLS:-$HOME/.cache/weir/tools}/go/go/bin:$PATH" GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod
go vet ./... && go test ./...
