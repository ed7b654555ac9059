#!/usr/bin/env python3
"""Turns host/benches/results/million.json (`cargo bench -p powerplug --bench
million`) into the table BENCHMARKS.md shows and a chart,
host/benches/results/million.svg: per size, µs of grid work per reading
(ingest) and per payment request (tick), against the machine's signature
limits, log scale.

Usage: python3 host/benches/million_report.py
"""
import json
import math
import os

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "results/million.json")) as f:
    result = json.load(f)

limit = result["limit"]
cores = result["cores"]
sign_us = 1e6 / limit["signs_per_s_per_core"]
verify_us = 1e6 / limit["verifies_per_s_per_core"]
median = lambda xs: sorted(xs)[len(xs) // 2]

print(f"Physical limit on this machine: one core signs {limit['signs_per_s_per_core']:,.0f} "
      f"and verifies {limit['verifies_per_s_per_core']:,.0f} Ed25519 signatures a second "
      f"({sign_us:.1f} and {verify_us:.1f} µs); {cores} cores.\n")
print("| consumers | reporting | registered in | ingest, readings/s (median of 3) | ingest ÷ 1 core's verify rate | "
      "tick, ms (median) | µs per request | ÷ 1 core's signing | `GET /status` (median; slowest of 20) | the store's figures taken (balances summed) | quiet poll round | RSS after, MiB | peak RSS, MiB |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
rows = []
for s in result["sizes"]:
    rate = median([r["readings_per_s"] for r in s["rounds"]])
    tick = median([r["tick_ms"] for r in s["rounds"]])
    per = tick * 1e3 / s["reporting"]
    rows.append((s, rate, tick, per))
    print(f"| {s['consumers']:,} | {s['reporting']:,} | {s['register_ms'] / 1e3:,.0f} s | {rate:,.0f} | "
          f"{rate / limit['verifies_per_s_per_core']:.2f}× | {tick:,.0f} | {per:.1f} | {per / sign_us:.2f}× | "
          f"{s['status_ms']:.2f} ms; {s.get('status_max_ms', float('nan')):.1f} ms | "
          f"{s.get('figures_ms', float('nan')):,.0f} ms ({s.get('held_scan_ms', float('nan')):,.0f} ms) | {s['quiet_poll_ms']:.3f} ms | {s['rss_mib']:,.0f} | {s['peak_rss_mib']:,.0f} |")

# Chart: µs per reading (ingest) and per request (tick) by size, with the
# one-core signature costs as reference lines.
width, height, left, top, bottom = 760, 360, 80, 40, 50
series = [("ingest: µs per reading", [1e6 / r for _, r, _, _ in rows], "#1f77b4"),
          ("tick: µs per payment request", [p for *_, p in rows], "#d62728")]
values = [v for _, vs, _ in series for v in vs] + [sign_us, verify_us]
lo = 10 ** math.floor(math.log10(min(values)))
hi = 10 ** math.ceil(math.log10(max(values)))
sizes = [s["consumers"] for s, *_ in rows]
xs = lambda i: left + (width - left - 200) * (i / max(1, len(sizes) - 1))
y = lambda v: top + (height - top - bottom) * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Grid work per reading and per payment request, µs (log scale), one run</text>']
for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1):
    svg.append(f'<line x1="{left}" x2="{width - 200}" y1="{y(10 ** e):.1f}" y2="{y(10 ** e):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 8}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
for i, n in enumerate(sizes):
    svg.append(f'<text x="{xs(i):.1f}" y="{height - bottom + 18}" text-anchor="middle">{n:,} consumers</text>')
for label, v, colour in [(f"1 core: verify ({verify_us:.0f} µs)", verify_us, "#888"), (f"1 core: sign ({sign_us:.0f} µs)", sign_us, "#bbb")]:
    svg.append(f'<line x1="{left}" x2="{width - 200}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{colour}" stroke-dasharray="5,4"/>')
    svg.append(f'<text x="{width - 195}" y="{y(v) + 4:.1f}" fill="{colour}">{label}</text>')
for k, (label, vs, colour) in enumerate(series):
    pts = " ".join(f"{xs(i):.1f},{y(v):.1f}" for i, v in enumerate(vs))
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for i, v in enumerate(vs):
        svg.append(f'<circle cx="{xs(i):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>')
        svg.append(f'<text x="{xs(i) + 6:.1f}" y="{y(v) - 6:.1f}" fill="{colour}">{v:.1f}</text>')
    svg.append(f'<text x="{width - 195}" y="{top + 20 + 18 * k}" fill="{colour}">{label}</text>')
svg.append("</svg>")
with open(os.path.join(here, "results/million.svg"), "w") as f:
    f.write("\n".join(svg))
