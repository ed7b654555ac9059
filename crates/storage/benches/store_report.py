#!/usr/bin/env python3
"""Turns criterion's estimates from `cargo bench -p powerplug-storage --bench store`
into the table BENCHMARKS.md shows (PostgreSQL against redb, same run) and a chart,
host/benches/results/store.svg (log scale).

Usage: python3 crates/storage/benches/store_report.py [target/criterion]
"""
import json
import math
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../host/benches/results/store.svg")
rows = []
for group in ["tick", "read"]:
    for n in [1000, 10000]:
        ms = {}
        for store in ["redb", "postgres"]:
            with open(os.path.join(root, group, store, str(n), "new", "estimates.json")) as f:
                ms[store] = json.load(f)["mean"]["point_estimate"] / 1e6
        rows.append((group, n, ms["redb"], ms["postgres"]))

print("| work | consumers | redb | PostgreSQL | PostgreSQL ÷ redb | PostgreSQL per consumer |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for group, n, r, p in rows:
    print(f"| {group} | {n:,} | {r:,.2f} ms | {p:,.1f} ms | {p / r:,.1f}× | {p * 1000 / n:,.0f} µs |")

width, left, bar_h, top = 820, 170, 26, 40
height = top + bar_h * 2 * len(rows) + 50
lo, hi = 0.1, 10 ** math.ceil(math.log10(max(p for *_, p in rows)))
x = lambda v: left + (width - left - 160) * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">The store\'s share of a tick: redb against PostgreSQL (ms, log scale, one run)</text>']
for e in range(int(math.log10(lo)), int(math.log10(hi)) + 1):
    svg.append(f'<line x1="{x(10 ** e):.1f}" x2="{x(10 ** e):.1f}" y1="{top}" y2="{height - 40}" stroke="#ddd"/>')
    svg.append(f'<text x="{x(10 ** e):.1f}" y="{height - 26}" text-anchor="middle">{10 ** e:g}</text>')
y = top
for group, n, r, p in rows:
    for store, v, colour in [("redb", r, "#4c78a8"), ("PostgreSQL", p, "#e45756")]:
        svg.append(f'<rect x="{x(lo):.1f}" y="{y + 3}" width="{x(v) - x(lo):.1f}" height="{bar_h - 6}" fill="{colour}"/>')
        svg.append(f'<text x="{left - 8}" y="{y + bar_h / 2 + 4}" text-anchor="end">{group} {n:,}: {store}</text>')
        label = f"{v:,.2f} ms" + (f" ({p / r:,.1f}×)" if store != "redb" else "")
        svg.append(f'<text x="{x(v) + 4:.1f}" y="{y + bar_h / 2 + 4}">{label}</text>')
        y += bar_h
svg.append("</svg>")
with open(out, "w") as f:
    f.write("\n".join(svg) + "\n")
