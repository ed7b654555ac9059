#!/usr/bin/env bash
# Installs the pinned tools that turn Python and JavaScript strategies into
# components, into target/kits (or $POWERPLUG_KITS):
#
#   python  componentize-py (kits/python/requirements.txt) in a virtualenv
#   js      componentize-qjs, QuickJS (kits/js/package.json + package-lock.json) with npm ci
#
#   kits/install.sh             # python and js
#   kits/install.sh python      # only these
#
# Idempotent and quick: a kit whose pins (and interpreter) have not changed since
# it was installed is left alone, so every build script calls this first. Only an
# install needs the network; builds after it run offline. Nothing is installed
# into the global Python or Node.js.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="${POWERPLUG_KITS:-$(dirname "$here")/target/kits}"
mkdir -p "$dest"

# One install at a time: parallel test threads and builds may all call this.
exec 9>"$dest/.lock"
flock 9

# What an installed kit was installed from: if this changes, it is reinstalled.
fingerprint() {
    { cat "$@"; echo "$SHELL_TOOL_VERSION"; } | sha256sum | cut -c1-16
}

installed() { [[ -f "$1/.installed" && "$(cat "$1/.installed")" == "$2" ]]; }

install_python() {
    local dir="$dest/python" want
    command -v python3 >/dev/null || { echo "kits: python3 (3.11 or newer: the generated bindings use typing.Self) is needed for the Python kit" >&2; return 1; }
    SHELL_TOOL_VERSION="$(python3 --version 2>&1)"
    want="$(fingerprint "$here/python/requirements.txt")"
    if installed "$dir" "$want" && [[ -x "$dir/bin/componentize-py" ]]; then return 0; fi
    echo "kits: installing the Python kit into $dir" >&2
    rm -rf "$dir"
    python3 -m venv "$dir" || { echo "kits: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2; return 1; }
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
    echo "$want" >"$dir/.installed"
}

install_js() {
    local dir="$dest/js" want
    command -v npm >/dev/null || { echo "kits: Node.js 18 or newer with npm is needed for the JavaScript kit" >&2; return 1; }
    SHELL_TOOL_VERSION="$(node --version)"
    want="$(fingerprint "$here/js/package.json" "$here/js/package-lock.json")"
    if installed "$dir" "$want" && [[ -x "$dir/node_modules/.bin/componentize-qjs" ]]; then return 0; fi
    echo "kits: installing the JavaScript kit into $dir" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$here/js/package.json" "$here/js/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$dir/.installed"
}

kits=("$@")
[[ ${#kits[@]} -gt 0 ]] || kits=(python js)
for kit in "${kits[@]}"; do
    case "$kit" in
        python) install_python ;;
        js) install_js ;;
        *) echo "kits: unknown kit '$kit' (python, js)" >&2; exit 2 ;;
    esac
done
