#!/usr/bin/env python3
"""Turns host/benches/results/failover.json (`cargo bench -p powerplug --bench
failover`) into the table BENCHMARKS.md shows and a chart,
host/benches/results/failover.svg: each kill's time to the next committed tick,
against one and two lease periods.

Usage: python3 host/benches/failover_report.py
"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "results/failover.json")) as f:
    result = json.load(f)

print("| lease | kills | kill → next tick p50 | p99 | max | p99 ÷ lease | tick gap, nobody killed (p50) | p50 ÷ tick gap |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in result["runs"]:
    f, g = r["failover"], r["tick_gap"]
    print(f"| {r['lease_ms']:,} ms | {f['n']} | {f['p50_ms']:,.0f} ms | {f['p99_ms']:,.0f} ms | "
          f"{f['max_ms']:,.0f} ms | {f['p99_ms'] / r['lease_ms']:.2f} | {g['p50_ms']:,.0f} ms | "
          f"{f['p50_ms'] / g['p50_ms']:.0f}× |")

width, left, row_h, top = 860, 120, 60, 44
runs = result["runs"]
height = top + row_h * len(runs) + 50
hi = 2.2 * max(r["lease_ms"] for r in runs)
x = lambda v: left + (width - left - 30) * v / hi
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Kill of the leading grid → next committed tick, ms (dots: kills; bar: p50; dashes: 1 and 2 lease periods)</text>']
step = 500
for v in range(0, int(hi) + 1, step):
    svg.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{height - 40}" stroke="#eee"/>')
    svg.append(f'<text x="{x(v):.1f}" y="{height - 26}" text-anchor="middle">{v}</text>')
y = top
for r in runs:
    f, lease = r["failover"], r["lease_ms"]
    mid = y + row_h / 2
    svg.append(f'<text x="{left - 8}" y="{mid + 4}" text-anchor="end">lease {lease:,} ms</text>')
    for k in (1, 2):
        svg.append(f'<line x1="{x(k * lease):.1f}" x2="{x(k * lease):.1f}" y1="{y + 6}" y2="{y + row_h - 6}" stroke="#e45756" stroke-dasharray="4 3"/>')
    for i, v in enumerate(f["samples_ms"]):
        jitter = (i % 5 - 2) * 4
        svg.append(f'<circle cx="{x(v):.1f}" cy="{mid + jitter:.1f}" r="3" fill="#4c78a8" fill-opacity="0.7"/>')
    svg.append(f'<line x1="{x(f["p50_ms"]):.1f}" x2="{x(f["p50_ms"]):.1f}" y1="{y + 10}" y2="{y + row_h - 10}" stroke="black" stroke-width="2"/>')
    svg.append(f'<text x="{x(f["p99_ms"]) + 8:.1f}" y="{y + 14}">p50 {f["p50_ms"]:,.0f}, p99 {f["p99_ms"]:,.0f} ms</text>')
    y += row_h
svg.append("</svg>")
with open(os.path.join(here, "results/failover.svg"), "w") as f:
    f.write("\n".join(svg) + "\n")
