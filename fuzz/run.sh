#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 300), one after
# another, each one process on one core (the machine is shared), growing the corpora in fuzz/corpus/<target>; a crash
# leaves its input in fuzz/artifacts/<target>. Needs cargo-fuzz
# (`cargo install cargo-fuzz`) and a nightly toolchain (or stable with
# RUSTC_BOOTSTRAP=1). Not part of CI: see docs/fuzzing.md.
#
#   fuzz/run.sh            # every target, 300 s each
#   fuzz/run.sh 60 decision envelope
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-300}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(envelope storage_key json_bodies decision)
fi
toolchain=+nightly
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=""
    export RUSTC_BOOTSTRAP=1
fi
# No sanitizer: the code under test is safe Rust, so a panic or a failed
# assertion is the oracle, and an ASan build of wasmtime takes hours here.
cargo $toolchain fuzz build -O -s none
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    mkdir -p "artifacts/$target"
    cargo $toolchain fuzz run -O -s none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/"
done
