#!/bin/sh
# Tests {{name}} natively, then builds it into a component with
# `powerplug strategy build` (wasm32-unknown-unknown, wrapped so that its only
# import is Powerplug's `log`).
#
#   ./build.sh [OUT_DIR]      (default: build/, the component is {{crate}}.wasm)
#   powerplug strategy check build/{{crate}}.wasm
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build}")"
cd "$(dirname "$0")"
checkout="${POWERPLUG_CHECKOUT:-{{checkout}}}"

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
cargo test --quiet
cargo run --quiet --release --manifest-path "$checkout/Cargo.toml" -p powerplug -- \
    strategy build . --out "$out"
