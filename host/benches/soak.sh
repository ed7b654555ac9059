#!/usr/bin/env bash
# A soak of the demo (issue 21): every role in one process, one data dir,
# sampled every minute: RSS, the data dir's size, and from the grid's
# /metrics its store (file, stored, free bytes), tick log bytes, and ticks.
# Writes CSV to OUT (default host/benches/results/soak.csv);
# host/benches/soak_report.py draws it. The grid listens on 127.0.0.1:4555.
#
# Usage: host/benches/soak.sh [SECONDS] [OUT] [-- demo options...]
# e.g.   host/benches/soak.sh 1800 host/benches/results/soak.csv -- --consumers 1000 --producers 10 --time-scale 60 --keep-ms 3600000
set -euo pipefail
seconds=${1:-3600}
out=${2:-host/benches/results/soak.csv}
shift 2 || true
[ "${1:-}" = "--" ] && shift
bin=${POWERPLUG_BIN:-target/release/powerplug}
data=$(mktemp -d /tmp/powerplug-soak.XXXXXX)
chmod 700 "$data"
grid=http://127.0.0.1:4555
"$bin" demo --listen 127.0.0.1:4555 --data-dir "$data/d" --duration "$seconds" --json "$@" > "$data/summary.json" 2> "$data/log" &
pid=$!
metric() { awk -v n="$1" '$1 == n {print $2}' "$data/metrics" 2>/dev/null | head -1; }
echo "elapsed_s,rss_kib,data_bytes,grid_file_bytes,grid_stored_bytes,grid_free_bytes,grid_tick_log_bytes,grid_ticks" > "$out"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  bytes=$(du -sb "$data/d" 2>/dev/null | cut -f1 || echo 0)
  curl -s -m 20 "$grid/metrics" > "$data/metrics" || true
  ticks=$(curl -s -m 20 "$grid/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"].get("ticks", 0))' 2>/dev/null || echo 0)
  echo "$now,${rss:-0},${bytes:-0},$(metric powerplug_store_file_bytes),$(metric powerplug_store_stored_bytes),$(metric powerplug_store_free_bytes),$(metric powerplug_tick_log_bytes),${ticks:-0}" >> "$out"
  sleep 60
done
wait "$pid" && echo "demo: ok" || echo "demo: exit $?"
echo "summary: $data/summary.json, log: $data/log"
