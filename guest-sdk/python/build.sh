#!/usr/bin/env bash
# Builds a Python operator into a weir component with componentize-py (0.25):
#   bash build.sh WORLD PLUGIN_DIR OUT.wasm
# WORLD is the operator's world (`%map`, `filter`, `flat-map`, `key-selector`, `process`;
# `map` needs its `%`). PLUGIN_DIR holds `app.py`, whose `WitWorld` the component exports.
# WEIR_WIT names the WIT folder (default: ../../wit from here).
set -euo pipefail
sdk=$(cd "$(dirname "$0")" && pwd)
world=$1 dir=$2 out=$3
wit=${WEIR_WIT:-$sdk/../../wit}
componentize-py -d "$wit" -w "$world" componentize -p "$sdk" -p "$dir" app -o "$out" >/dev/null
