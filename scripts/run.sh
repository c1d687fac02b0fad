#!/usr/bin/env bash
# Sets up, builds, and runs the flagship log-analyzer job on its built-in generator.
# Extra arguments go to `weir run` (e.g. --set source.logs.rate=20000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
bash scripts/setup.sh
bash scripts/build-plugins.sh
cargo build --quiet --release -p weir-host
exec "$WEIR_BIN" run plugins/log-analyzer/job.toml "$@"
