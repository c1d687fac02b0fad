#!/usr/bin/env bash
# Runs weir's benchmarks (see BENCHMARKS.md and scripts/bench.py for the options).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
source "$root/scripts/env.sh"
exec python3 "$root/scripts/bench.py" "$@"
