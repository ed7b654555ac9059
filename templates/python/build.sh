#!/bin/sh
# Builds {{name}} into a component: bindings for the WIT world, the first test
# run natively, then componentize-py with every WASI import stubbed out. The
# tools come from Powerplug's Python kit (pinned; installed on first use).
#
#   ./build.sh [OUT.wasm]      (default: build/{{name}}.wasm)
#   powerplug strategy check build/{{name}}.wasm
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/{{name}}.wasm}")"
cd "$(dirname "$0")"
checkout="${POWERPLUG_CHECKOUT:-{{checkout}}}"
kit="${POWERPLUG_KITS:-$checkout/target/kits}/python"
world=grid-strategy

"$checkout/kits/install.sh" python
rm -rf build/bindings
mkdir -p build "$(dirname "$out")"
"$kit/bin/componentize-py" -d wit -w "$world" bindings build/bindings
PYTHONPATH=build/bindings "$kit/bin/python" -m unittest -q test_strategy
"$kit/bin/componentize-py" -d wit -w "$world" componentize strategy --stub-wasi -o "$out"
