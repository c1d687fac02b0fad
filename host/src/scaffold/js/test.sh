#!/usr/bin/env bash
# {{name}}'s unit tests on Node.js.
set -euo pipefail
cd "$(dirname "$0")" && node --test
