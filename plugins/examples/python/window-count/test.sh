#!/usr/bin/env bash
# This operator's unit tests on CPython (pytest), without weir and without Wasm.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here" && PYTHONPATH="$here/../../../../guest-sdk/python" python3 -m pytest -q -p no:cacheprovider
