# The common loops, one word each. Every target uses the scripts in scripts/.
.PHONY: build plugins run test lint fmt

build: plugins
	. scripts/env.sh && cargo build --release -p weir-host

plugins:
	bash scripts/build-plugins.sh

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh

lint:
	. scripts/env.sh && cargo fmt --all -- --check && cargo clippy --release --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all && cargo fmt --all --manifest-path plugins/Cargo.toml

