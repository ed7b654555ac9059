#!/usr/bin/env bash
# Installs the pinned tools that turn Python and JavaScript strategies into
# components, into target/kits (or $POWERPLUG_KITS):
#
#   python  componentize-py (kits/python/requirements.txt) in a virtualenv
#   js      componentize-qjs, QuickJS (kits/js/package.json + package-lock.json) with npm ci
#   c       wit-bindgen's C generator and wasm-tools (kits/c/tools.txt) with
#           cargo install, beside Debian's clang-19, lld-19 and wasi-libc (installed
#           with apt-get when missing and this runs as root; else it says how)
#
#   kits/install.sh             # python and js
#   kits/install.sh python c    # only these
#
# Idempotent and quick: a kit whose pins (and interpreter) have not changed since
# it was installed is left alone, so every build script calls this first. Only an
# install needs the network; builds after it run offline. Nothing is installed
# into the global Python or Node.js.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
dest="${POWERPLUG_KITS:-$(dirname "$here")/target/kits}"
mkdir -p "$dest"

# One install of a kit at a time: parallel test threads and builds may all
# call this. Each kit has its own lock, so that a build waits only for its own.
lock() {
    exec 9>"$dest/.lock-$1"
    flock 9
}

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

# Debian's packages the C kit compiles and links with: clang for the wasm32-wasi
# target, its builtins, wasm-ld and wasi-libc (malloc and string.h, no I/O: the
# component imports nothing from WASI).
C_PACKAGES=(clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32)

c_toolchain_ready() {
    command -v clang-19 >/dev/null && [[ -x /usr/lib/llvm-19/bin/wasm-ld ]] &&
        [[ -f /usr/lib/wasm32-wasi/libc.a ]] &&
        compgen -G "/usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null
}

install_c() {
    local dir="$dest/c" want crate version features
    if ! c_toolchain_ready; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "kits: installing ${C_PACKAGES[*]} from Debian" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${C_PACKAGES[@]}" >&2 ||
                { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${C_PACKAGES[@]}" >&2; }
        fi
        c_toolchain_ready || { echo "kits: the C kit needs Debian's ${C_PACKAGES[*]}: sudo apt-get install ${C_PACKAGES[*]}" >&2; return 1; }
    fi
    command -v cargo >/dev/null || { echo "kits: cargo (rustup.rs) is needed to install the C kit's wit-bindgen and wasm-tools" >&2; return 1; }
    SHELL_TOOL_VERSION="$(clang-19 --version | head -1)"
    want="$(fingerprint "$here/c/tools.txt")"
    if installed "$dir" "$want" && [[ -x "$dir/bin/wit-bindgen" && -x "$dir/bin/wasm-tools" ]]; then return 0; fi
    echo "kits: installing the C kit into $dir (cargo install: a few minutes, once)" >&2
    rm -rf "$dir"
    # One target directory for both: they share most of their crates. A debug
    # build without debug info compiles in a quarter of the time (~1.5 min on
    # 2 cores, not 6), and the tools take milliseconds on a strategy either
    # way: same output.
    while read -r crate version features; do
        [[ -z "$crate" || "$crate" == \#* ]] && continue
        CARGO_TARGET_DIR="$dir/build" CARGO_PROFILE_DEV_DEBUG=false CARGO_INCREMENTAL=0 cargo install --quiet --locked --debug "$crate@$version" \
            --no-default-features --features "$features" --root "$dir" >&2
    done <"$here/c/tools.txt"
    rm -rf "$dir/build"
    echo "$want" >"$dir/.installed"
}

kits=("$@")
[[ ${#kits[@]} -gt 0 ]] || kits=(python js)
for kit in "${kits[@]}"; do
    [[ "$kit" =~ ^(python|js|c)$ ]] && lock "$kit"
    case "$kit" in
        python) install_python ;;
        js) install_js ;;
        c) install_c ;;
        *) echo "kits: unknown kit '$kit' (python, js, c)" >&2; exit 2 ;;
    esac
done
