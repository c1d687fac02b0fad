#!/usr/bin/env bash
# {{name}}'s unit tests on CPython (pip install pytest).
set -euo pipefail
cd "$(dirname "$0")" && python3 -m pytest -q -p no:cacheprovider
