#!/bin/sh
# Builds {{name}} into a component: a check that the module exports what the
# world needs, the first tests natively in Node.js, then componentize-qjs
# (QuickJS) makes a synchronous component with every WASI import stubbed out
# (it resolves the import of the kit's library, kit/js/powerplug.mjs).
# The tools come from Powerplug's JavaScript kit: its
# installer and pins are in kit/ (written by `powerplug strategy new`), and it
# installs once, on first use, into a user cache shared by your projects
# (POWERPLUG_KITS to put it elsewhere).
#
#   ./build.sh [OUT.wasm]      (default: build/{{name}}.wasm)
#   powerplug strategy check build/{{name}}.wasm
set -eu
out="$(realpath -m "${1:-$(dirname "$0")/build/{{name}}.wasm}")"
cd "$(dirname "$0")"
export POWERPLUG_KITS="${POWERPLUG_KITS:-${XDG_CACHE_HOME:-$HOME/.cache}/powerplug/kits}"
kit="$POWERPLUG_KITS/js"
world={{world}}
# What the strategy's state and cell words mean, by name and version: the host
# hands it only books of the same format. Change the version when you change
# their meaning (also in strategy.js's header).
books="{{name}}@1"

kit/install.sh js
mkdir -p build "$(dirname "$out")"
node kit/js/exports.mjs strategy.js "$world"
node test.mjs >build/test.log 2>&1 || { cat build/test.log >&2; exit 1; }
"$kit/node_modules/.bin/componentize-qjs" --wit wit --world "$world" --js strategy.js \
    --sync --stub-wasi -o "$out"
# The declaration: a `powerplug:books` custom section appended to the component
# (section id 0, size, name length 15, name, format; every size fits one byte).
printf "\\000\\$(printf %03o $((16 + ${#books})))\\017powerplug:books%s" "$books" >>"$out"
