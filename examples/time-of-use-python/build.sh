#!/bin/sh
# Builds the strategy into a component: bindings for the WIT world, the tests
# run natively, then componentize-py (pinned by Powerplug's Python kit, which is
# installed on first use) with every WASI import stubbed out.
#
#   ./build.sh [OUT.wasm]      (default: build/time-of-use.wasm)
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/time-of-use.wasm}")"
cd "$(dirname "$0")"
checkout="${POWERPLUG_CHECKOUT:-$(cd ../.. && pwd)}"
kit="${POWERPLUG_KITS:-$checkout/target/kits}/python"
wit="$checkout/wit"
world=grid-strategy

"$checkout/kits/install.sh" python
rm -rf build/bindings
mkdir -p build "$(dirname "$out")"
"$kit/bin/componentize-py" -d "$wit" -w "$world" bindings build/bindings
PYTHONPATH=build/bindings "$kit/bin/python" -m unittest -q test_strategy
"$kit/bin/componentize-py" -d "$wit" -w "$world" componentize strategy --stub-wasi -o "$out"
# Declare the books format (what the state and cell words mean; the host hands
# this strategy only books of the same format): a `powerplug:books` custom
# section appended to the component (every size fits one byte).
books="time-of-use@1"
printf "\\000\\$(printf %03o $((16 + ${#books})))\\017powerplug:books%s" "$books" >>"$out"
