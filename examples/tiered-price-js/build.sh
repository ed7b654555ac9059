#!/bin/sh
# Builds the strategy into a component: the tests run natively in Node.js,
# then componentize-qjs (QuickJS, pinned by Powerplug's JavaScript kit, which
# is installed on first use) makes a synchronous component with every WASI
# import stubbed out.
#
#   ./build.sh [OUT.wasm]      (default: build/tiered-price.wasm)
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/tiered-price.wasm}")"
cd "$(dirname "$0")"
checkout="${POWERPLUG_CHECKOUT:-$(cd ../.. && pwd)}"
kit="${POWERPLUG_KITS:-$checkout/target/kits}/js"
wit="$checkout/wit"
world=grid-strategy

"$checkout/kits/install.sh" js
mkdir -p build "$(dirname "$out")"
node "$checkout/kits/js/exports.mjs" strategy.js "$world"
node test.mjs >build/test.log 2>&1 || { cat build/test.log >&2; exit 1; }
"$kit/node_modules/.bin/componentize-qjs" --wit "$wit" --world "$world" --js strategy.js \
    --sync --stub-wasi -o "$out"
# Declare the books format (what the state and cell words mean; the host hands
# this strategy only books of the same format): a `powerplug:books` custom
# section appended to the component (every size fits one byte).
books="tiered-price@1"
printf "\\000\\$(printf %03o $((16 + ${#books})))\\017powerplug:books%s" "$books" >>"$out"
