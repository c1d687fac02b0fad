#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-js 0.23
# (npm install --prefix ~/.cache/weir/js @bytecodealliance/componentize-js@0.23.0).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cjs=${COMPONENTIZE_JS:-$HOME/.cache/weir/js/node_modules/.bin/componentize-js}
# componentize-js reads only below its working folder: the WIT is in wit/ here.
cd "$here" && "$cjs" component.js --wit wit -n process -o {{name}}.wasm -d http -d fetch-event >/dev/null
