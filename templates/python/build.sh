#!/bin/sh
# Builds {{name}} into a component: bindings for the WIT world, the first tests
# run natively, then componentize-py with every WASI import stubbed out (the
# kit's library, kit/python/powerplug.py, goes into the component with it). The
# tools come from Powerplug's Python kit: its installer and pins are in kit/
# (written by `powerplug strategy new`), and it installs once, on first use,
# into a user cache shared by your projects (POWERPLUG_KITS to put it elsewhere).
#
#   ./build.sh [OUT.wasm]      (default: build/{{name}}.wasm)
#   powerplug strategy check build/{{name}}.wasm
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/{{name}}.wasm}")"
cd "$(dirname "$0")"
export POWERPLUG_KITS="${POWERPLUG_KITS:-${XDG_CACHE_HOME:-$HOME/.cache}/powerplug/kits}"
kit="$POWERPLUG_KITS/python"
world={{world}}
# What the strategy's state and cell words mean, by name and version: the host
# hands it only books of the same format. Change the version when you change
# their meaning (also in strategy.py's docstring).
books="{{name}}@1"

kit/install.sh python
rm -rf build/bindings
mkdir -p build "$(dirname "$out")"
"$kit/bin/componentize-py" -d wit -w "$world" bindings build/bindings
PYTHONPATH=build/bindings:kit/python "$kit/bin/python" -m unittest -q test_strategy
"$kit/bin/componentize-py" -d wit -w "$world" componentize strategy -p . -p kit/python \
    --stub-wasi -o "$out"
# The declaration: a `powerplug:books` custom section appended to the component
# (section id 0, size, name length 15, name, format; every size fits one byte).
printf "\\000\\$(printf %03o $((16 + ${#books})))\\017powerplug:books%s" "$books" >>"$out"
