# Shared settings of the scripts: a persistent cargo target directory outside the clone,
# so repeated builds (and CI on the same machine) reuse compiled dependencies.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}
export WEIR_PLUGIN_TARGET_DIR=${WEIR_PLUGIN_TARGET_DIR:-$HOME/.cache/weir/plugins-target}
# The tests' build (profile `release`) and the one users run and benchmarks time (`dist`:
# link-time optimized; see Cargo.toml).
export WEIR_BIN="$CARGO_TARGET_DIR/release/weir"
export WEIR_DIST_BIN="$CARGO_TARGET_DIR/dist/weir"
