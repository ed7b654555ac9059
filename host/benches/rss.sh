#!/usr/bin/env bash
# RSS of a 1,000-consumer demo every 20 s, as CSV lines LABEL,SECONDS,RSS_KIB
# (what found glibc's arenas behind the RSS growth; BENCHMARKS.md, *Memory*).
#
# Usage: host/benches/rss.sh LABEL SECONDS [VAR=VALUE...]   (the environment of the demo)
# e.g.   host/benches/rss.sh arenas-2 240 MALLOC_ARENA_MAX=2 >> host/benches/results/memory.csv
set -euo pipefail
label=$1; secs=$2; shift 2
bin=${POWERPLUG_BIN:-target/release/powerplug}
out=$(mktemp -d /tmp/powerplug-rss.XXXXXX)
env "$@" "$bin" demo --consumers 1000 --producers 10 --time-scale 60 --duration "$secs" --json > "$out/summary.json" 2> "$out/log" &
pid=$!
t=0
while kill -0 "$pid" 2>/dev/null; do
  echo "$label,$t,$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)"
  sleep 20; t=$((t + 20))
done
wait "$pid"
echo "summary: $out/summary.json" >&2
