#!/usr/bin/env python3
"""Turns criterion's estimates from `cargo bench -p powerplug --bench tick` into the
tables and the SVG chart that BENCHMARKS.md shows. Ratios are taken within one run.

Usage: python3 host/benches/report.py [target/criterion] > /tmp/tables.md
Writes host/benches/results/grid_tick.svg beside this script.
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
here = os.path.dirname(os.path.abspath(__file__))


def est(*path):
    """Mean and 95% CI of one benchmark, in ns."""
    with open(os.path.join(root, *path, "new", "estimates.json")) as f:
        mean = json.load(f)["mean"]
    ci = mean["confidence_interval"]
    return mean["point_estimate"], ci["lower_bound"], ci["upper_bound"]


def fmt_ns(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"


sizes = [10, 1000, 100000]
rows = []
for n in sizes:
    wasm, native, js = (est("grid_tick", v, str(n))[0] for v in ("wasm", "native", "json"))
    rows.append((n, wasm, native, js))

print("| consumers | native | wasm (all limits) | json core module | wasm / native | json / wasm | wasm ns per consumer |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, wasm, native, js in rows:
    print(f"| {n:,} | {fmt_ns(native)} | {fmt_ns(wasm)} | {fmt_ns(js)} | {wasm / native:.2f}× | {js / wasm:.1f}× | {wasm / n:.0f} |")
print()

fixed = est("fixed_cost_empty_tick")
print("| fixed cost | mean | 95% CI |")
print("| --- | ---: | ---: |")
print(f"| empty tick (instantiate + call) | {fmt_ns(fixed[0])} | {fmt_ns(fixed[1])} – {fmt_ns(fixed[2])} |")
print()

print("| plugin | compile | load from cache | compile / cached |")
print("| --- | ---: | ---: | ---: |")
for name in ("basic-grid-strategy", "basic-producer-strategy"):
    compile_ns, cached_ns = est("load", "compile", name)[0], est("load", "cached", name)[0]
    print(f"| {name} | {fmt_ns(compile_ns)} | {fmt_ns(cached_ns)} | {compile_ns / cached_ns:.0f}× |")

# Chart: ns per consumer, log scale, one group of bars per grid size.
width, height, left, top, bottom = 640, 300, 70, 40, 50
plot_h = height - top - bottom
series = [("native", "#4c78a8", 2), ("wasm", "#f58518", 1), ("json", "#e45756", 3)]
import math

values = [r[i] / r[0] for r in rows for _, _, i in series]
lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))


def y(v):
    return top + plot_h * (1 - (math.log10(v) - lo) / (hi - lo))


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">basic grid tick: ns per consumer (log scale, lower is better)</text>']
for e in range(lo, hi + 1):
    svg.append(f'<line x1="{left}" x2="{width - 10}" y1="{y(10 ** e):.1f}" y2="{y(10 ** e):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 6}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
group_w = (width - left - 10) / len(rows)
bar_w = group_w / (len(series) + 1)
for g, row in enumerate(rows):
    x0 = left + g * group_w + bar_w / 2
    for s, (name, colour, i) in enumerate(series):
        v = row[i] / row[0]
        svg.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{y(v):.1f}" width="{bar_w - 2:.1f}" height="{top + plot_h - y(v):.1f}" fill="{colour}"><title>{name}: {v:.1f} ns</title></rect>')
    svg.append(f'<text x="{x0 + 1.5 * bar_w:.1f}" y="{height - bottom + 18}" text-anchor="middle">{row[0]:,} consumers</text>')
for s, (name, colour, _) in enumerate(series):
    svg.append(f'<rect x="{left + s * 150}" y="{height - 18}" width="12" height="12" fill="{colour}"/><text x="{left + s * 150 + 16}" y="{height - 8}">{name}</text>')
svg.append("</svg>")
os.makedirs(os.path.join(here, "results"), exist_ok=True)
with open(os.path.join(here, "results", "grid_tick.svg"), "w") as f:
    f.write("\n".join(svg) + "\n")
