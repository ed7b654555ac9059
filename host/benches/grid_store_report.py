#!/usr/bin/env python3
"""Turns host/benches/results/grid_store.json (`cargo bench -p powerplug --bench
grid_store`) into the table BENCHMARKS.md shows (a grid on PostgreSQL against the
same grid on redb, same run) and a chart, host/benches/results/grid_store.svg:
p50 bars, p90 whiskers, log scale.

Usage: python3 host/benches/grid_store_report.py
"""
import json
import math
import os

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "results/grid_store.json")) as f:
    result = json.load(f)

rows = []
for n, stores in sorted(result["consumers"].items(), key=lambda kv: int(kv[0])):
    for what in ["ingest", "tick"]:
        r, p = stores["redb"][what], stores["postgres"][what]
        rows.append((what, int(n), r, p))

print("| work | consumers | redb p50 (p90) | PostgreSQL p50 (p90) | PostgreSQL ÷ redb (p50) |")
print("| --- | ---: | ---: | ---: | ---: |")
for what, n, r, p in rows:
    print(f"| {what} | {n:,} | {r['p50_ms']:,.0f} ms ({r['p90_ms']:,.0f}) | "
          f"{p['p50_ms']:,.0f} ms ({p['p90_ms']:,.0f}) | {p['p50_ms'] / r['p50_ms']:.1f}× |")

width, left, bar_h, top = 860, 190, 26, 40
height = top + bar_h * 2 * len(rows) + 50
lo = 10.0
hi = 10 ** math.ceil(math.log10(max(p["max_ms"] for *_, p in rows)))
x = lambda v: left + (width - left - 170) * (math.log10(max(v, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">A grid on redb and on PostgreSQL: p50 (bar) and p90 (whisker), ms, log scale, one run</text>']
for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1):
    svg.append(f'<line x1="{x(10 ** e):.1f}" x2="{x(10 ** e):.1f}" y1="{top}" y2="{height - 40}" stroke="#ddd"/>')
    svg.append(f'<text x="{x(10 ** e):.1f}" y="{height - 26}" text-anchor="middle">{10 ** e:g}</text>')
y = top
for what, n, r, p in rows:
    for store, s, colour in [("redb", r, "#4c78a8"), ("PostgreSQL", p, "#e45756")]:
        svg.append(f'<rect x="{x(lo):.1f}" y="{y + 3}" width="{x(s["p50_ms"]) - x(lo):.1f}" height="{bar_h - 6}" fill="{colour}"/>')
        svg.append(f'<line x1="{x(s["p50_ms"]):.1f}" x2="{x(s["p90_ms"]):.1f}" y1="{y + bar_h / 2}" y2="{y + bar_h / 2}" stroke="black"/>')
        svg.append(f'<line x1="{x(s["p90_ms"]):.1f}" x2="{x(s["p90_ms"]):.1f}" y1="{y + 7}" y2="{y + bar_h - 7}" stroke="black"/>')
        svg.append(f'<text x="{left - 8}" y="{y + bar_h / 2 + 4}" text-anchor="end">{what} {n:,}: {store}</text>')
        label = f'{s["p50_ms"]:,.0f} ms' + (f' ({s["p50_ms"] / r["p50_ms"]:.1f}×)' if store != "redb" else "")
        svg.append(f'<text x="{x(s["p90_ms"]) + 6:.1f}" y="{y + bar_h / 2 + 4}">{label}</text>')
        y += bar_h
svg.append("</svg>")
with open(os.path.join(here, "results/grid_store.svg"), "w") as f:
    f.write("\n".join(svg) + "\n")
