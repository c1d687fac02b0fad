# Shared settings of the scripts: a persistent cargo target directory outside the clone,
# so repeated builds (and CI on the same machine) reuse compiled dependencies.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}
export WEIR_PLUGIN_TARGET_DIR=${WEIR_PLUGIN_TARGET_DIR:-$HOME/.cache/weir/plugins-target}
export WEIR_BIN="$CARGO_TARGET_DIR/release/weir"
