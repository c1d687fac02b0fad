#!/usr/bin/env bash
# Sets up, builds, and runs the flagship log-analyzer job on its built-in generator.
# Extra arguments go to `weir run` (e.g. --set source.logs.rate=20000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source scripts/env.sh
bash scripts/setup.sh
# Each stage says what it builds and what it costs the first time (2 cores); cargo shows its
# own progress. Later runs take seconds: everything is cached under ~/.cache/weir.
echo "run: building the plugins (Rust, wasm32-wasip2; the first time about 3 minutes)" >&2
bash scripts/build-plugins.sh
echo "run: building weir (the first time about 30 minutes: wasmtime, RocksDB and librdkafka are compiled from source, then the whole program optimized at link time)" >&2
cargo build --profile dist -p weir-host
echo "run: starting plugins/log-analyzer/job.toml" >&2
exec "$WEIR_DIST_BIN" run plugins/log-analyzer/job.toml "$@"
