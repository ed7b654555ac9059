#!/bin/sh
# Builds the strategy into a component: C bindings for the WIT world, the test
# compiled and run natively (with the address and undefined-behaviour
# sanitizers), then clang for wasm32-wasi and wasm-tools to wrap it, all pinned
# by Powerplug's C kit (installed on first use).
#
#   ./build.sh [OUT.wasm]      (default: build/weekend-rate.wasm)
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/weekend-rate.wasm}")"
cd "$(dirname "$0")"
checkout="${POWERPLUG_CHECKOUT:-$(cd ../.. && pwd)}"
kit="${POWERPLUG_KITS:-$checkout/target/kits}/c"
world=grid-strategy
bindings=build/bindings

"$checkout/kits/install.sh" c
rm -rf "$bindings"
mkdir -p build "$(dirname "$out")"
"$kit/bin/wit-bindgen" c "$checkout/wit" --world "$world" --out-dir "$bindings" >/dev/null
warnings="-std=c11 -Wall -Wextra -Werror -Wno-unknown-attributes"
clang-19 $warnings -g -fsanitize=address,undefined -I"$bindings" \
    "$bindings"/*.c strategy.c test.c -o build/test
# Leaks are not bugs here: each tick's instance is thrown away after it.
ASAN_OPTIONS=detect_leaks=0 build/test
clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 $warnings -I"$bindings" \
    -fuse-ld=lld -Wl,--strip-debug "$bindings"/*.c "$bindings"/*_component_type.o strategy.c \
    -o build/core.wasm
"$kit/bin/wasm-tools" component new build/core.wasm -o "$out"
# Declare the books format (what the state and cell words mean; the host hands
# this strategy only books of the same format): a `powerplug:books` custom
# section appended to the component (every size fits one byte).
books="weekend-rate@1"
printf "\\000\\$(printf %03o $((16 + ${#books})))\\017powerplug:books%s" "$books" >>"$out"
