#!/usr/bin/env bash
# This operator's unit tests on Node.js (node --test), without weir and without Wasm.
set -euo pipefail
cd "$(dirname "$0")" && node --test
