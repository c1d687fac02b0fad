#!/usr/bin/env bash
# Builds a JavaScript operator into a weir component with componentize-js (0.23):
#   bash build.sh WORLD PLUGIN_DIR OUT.wasm
# WORLD is the operator's world (`map`, `filter`, `flat-map`, `key-selector`, `process`).
# PLUGIN_DIR holds `component.js`, the entry that exports the world, and the modules it
# imports (weir.js among them). componentize-js reads only below its working folder, so the
# sources and the WIT are copied to a scratch folder first. WEIR_WIT names the WIT folder
# (default: ../../wit from here); WEIR_JS_TOOLS the npm prefix where componentize-js is
# installed (default: ~/.cache/weir/js, where scripts/setup.sh --languages puts it).
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
world=$1 dir=$2 out=$3
wit=${WEIR_WIT:-$sdk/../../wit}
tools=${WEIR_JS_TOOLS:-$HOME/.cache/weir/js}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -L "$dir"/*.js "$work/"
cp -r "$wit" "$work/wit"
(cd "$work" && "$tools/node_modules/.bin/componentize-js" component.js --wit wit -n "$world" -o "$out" -d http -d fetch-event >/dev/null)
