#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py 0.25 (pip install componentize-py==0.25.1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
componentize-py -d "$here/wit" -w process componentize -p "$here" app -o "$here/{{name}}.wasm" >/dev/null
