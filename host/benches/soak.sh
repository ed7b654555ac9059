#!/usr/bin/env bash
# A soak of the demo (issue 21): every role in one process, one data dir,
# sampled every minute for RSS and the data dir's size. Writes CSV lines
# `elapsed_s,rss_kib,data_bytes,grid_ticks` to OUT (default
# host/benches/results/soak.csv); host/benches/soak_report.py draws them.
#
# Usage: host/benches/soak.sh [SECONDS] [OUT] [-- demo options...]
# e.g.   host/benches/soak.sh 3600 host/benches/results/soak.csv -- --consumers 2000 --producers 10 --time-scale 60 --keep-ms 21600000
set -euo pipefail
seconds=${1:-3600}
out=${2:-host/benches/results/soak.csv}
shift 2 || true
[ "${1:-}" = "--" ] && shift
bin=${POWERPLUG_BIN:-target/release/powerplug}
data=$(mktemp -d /tmp/powerplug-soak.XXXXXX)
chmod 700 "$data"
"$bin" demo --data-dir "$data/d" --duration "$seconds" --json "$@" > "$data/summary.json" 2> "$data/log" &
pid=$!
echo "elapsed_s,rss_kib,data_bytes" > "$out"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  bytes=$(du -sb "$data/d" 2>/dev/null | cut -f1 || echo 0)
  echo "$now,${rss:-0},${bytes:-0}" >> "$out"
  sleep 60
done
wait "$pid" && echo "demo: ok" || echo "demo: exit $?"
echo "summary: $data/summary.json, log: $data/log"
