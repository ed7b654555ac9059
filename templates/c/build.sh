#!/bin/sh
# Builds {{name}} into a component: C bindings for the WIT world, the first
# test compiled and run natively, then clang for wasm32-wasi (a reactor: no
# main) and wasm-tools to wrap the core module into a component. Only malloc and
# string.h come from wasi-libc, so the component imports nothing from WASI. The
# tools come from Powerplug's C kit: its installer and pins are in kit/ (written
# by `powerplug strategy new`), and it installs once, on first use, into a user
# cache shared by your projects (POWERPLUG_KITS to put it elsewhere).
#
#   ./build.sh [OUT.wasm]      (default: build/{{name}}.wasm)
#   powerplug strategy check build/{{name}}.wasm
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/{{name}}.wasm}")"
cd "$(dirname "$0")"
export POWERPLUG_KITS="${POWERPLUG_KITS:-${XDG_CACHE_HOME:-$HOME/.cache}/powerplug/kits}"
kit="$POWERPLUG_KITS/c"
world={{world}}
bindings=build/bindings
# What the strategy's state and cell words mean, by name and version: the host
# hands it only books of the same format. Change the version when you change
# their meaning (also in strategy.c's header).
books="{{name}}@1"

kit/install.sh c
rm -rf "$bindings"
mkdir -p build "$(dirname "$out")"
"$kit/bin/wit-bindgen" c wit --world "$world" --out-dir "$bindings" >/dev/null
warnings="-std=c11 -Wall -Wextra -Werror -Wno-unknown-attributes"
clang-19 $warnings -g -fsanitize=address,undefined -I"$bindings" -Ikit/c \
    "$bindings"/*.c strategy.c test.c -o build/test
# Leaks are not bugs here: each tick's instance is thrown away after it.
ASAN_OPTIONS=detect_leaks=0 build/test
clang-19 --target=wasm32-wasi -mexec-model=reactor -O2 $warnings -I"$bindings" -Ikit/c \
    -fuse-ld=lld -Wl,--strip-debug "$bindings"/*.c "$bindings"/*_component_type.o strategy.c \
    -o build/core.wasm
"$kit/bin/wasm-tools" component new build/core.wasm -o "$out"
# The declaration: a `powerplug:books` custom section appended to the component
# (section id 0, size, name length 15, name, format; every size fits one byte).
printf "\\000\\$(printf %03o $((16 + ${#books})))\\017powerplug:books%s" "$books" >>"$out"
