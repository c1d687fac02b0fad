#!/usr/bin/env bash
# Builds this operator into a component: bash build.sh [OUT.wasm]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../../../../guest-sdk/go/build.sh" "$here" "${1:-$here/detect.wasm}"
