#!/usr/bin/env bash
# Builds this operator into a component: bash build.sh [OUT.wasm]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/../../../../guest-sdk/js/build.sh" aggregate "$here" "${1:-$here/window-count.wasm}"
