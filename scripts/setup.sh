#!/usr/bin/env bash
# Installs what weir needs on a fresh Debian machine with Rust: the wasm32-wasip2 target
# and the C toolchain pieces some crates build with. Safe to run again.
set -euo pipefail
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi
for component in rustfmt clippy; do
  rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done
need=()
# clang/libclang-dev: RocksDB's bindings; make, pkg-config, zlib1g-dev: librdkafka, which
# rdkafka builds from source with its own configure and make.
for pkg in clang libclang-dev make pkg-config zlib1g-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi
# The Kafka-compatible broker the tests start on loopback (tansu 0.6 with its in-memory
# storage; later releases are renamed `nisshi`). About 10 minutes to build the first time,
# cached under ~/.cache/weir/tansu after that.
# Only the tests need it: `scripts/test.sh` asks with --test-broker.
TANSU_ROOT="$HOME/.cache/weir/tansu"
if [ "${1:-}" = "--test-broker" ] && [ ! -x "$TANSU_ROOT/bin/tansu" ]; then
  echo "setup: building the test broker (tansu 0.6) into $TANSU_ROOT, once"
  # In a build folder of its own (removed after), not weir's cache.
  env -u CARGO_TARGET_DIR cargo install tansu --version 0.6.0 --locked --features dynostore --root "$TANSU_ROOT" --quiet
fi
