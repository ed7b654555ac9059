#!/usr/bin/env python3
"""Tables and chart for BENCHMARKS.md's "Strategies in other languages (issue 6)",
from one run of `cargo bench -p powerplug --bench languages`: criterion's estimates
(target/criterion/languages) and the one-shot figures the bench wrote to
host/benches/results/languages.json. Every ratio is against the Rust plugin
(rust-basic-plugin) or the Rust template of the same rules (rust-flat-template) in
that same run.

Usage: python3 host/benches/languages_report.py [target/criterion] > tables.md
Writes host/benches/results/languages.svg beside this script.
"""
import json
import math
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "target", "criterion")
BASE, SAME_RULES = "rust-basic-plugin", "rust-flat-template"
SIZES = [1_000, 100_000]
BUDGET = 2_000_000_000  # Limits::DEFAULT.fuel


def mean_ns(*path):
    with open(os.path.join(root, "languages", *path, "new", "estimates.json")) as f:
        return json.load(f)["mean"]["point_estimate"]


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"


def fmt_bytes(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


with open(os.path.join(here, "results", "languages.json")) as f:
    measured = json.load(f)
labels = [m["label"] for m in measured]
tick = {(l, n): mean_ns(f"tick_{l}", str(n)) for l in labels for n in SIZES}
empty = {l: mean_ns("empty_tick", l) for l in labels}
by = {m["label"]: m for m in measured}

print("| strategy | language | component | compile | load from cache | empty tick (instantiate + call) | empty tick / Rust plugin |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for m in measured:
    l = m["label"]
    print(f"| {l} | {m['lang']} | {fmt_bytes(m['bytes'])} | {m['compile_ms'] / 1e3:.2f} s | {m['cached_load_ms']:.1f} ms "
          f"| {fmt_time(empty[l])} | {empty[l] / empty[BASE]:.1f}× |")
print()

print("| strategy | consumers | tick | / Rust plugin | / Rust, same rules | ns per consumer | fuel per consumer | fuel / default budget |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for l in labels:
    for i, n in enumerate(SIZES):
        t = tick[(l, n)]
        fuel = by[l]["fuel_per_consumer"][i]
        same = f"{t / tick[(SAME_RULES, n)]:.1f}×" if "flat" in l else "—"
        print(f"| {l} | {n:,} | {fmt_time(t)} | {t / tick[(BASE, n)]:.1f}× | {same} | {t / n:,.0f} "
              f"| {fuel:,.0f} | {fuel * n / BUDGET:.0%} |")
print()

print("| strategy | largest grid billed in one tick (default limits) | next size up stopped by | / Rust plugin |")
print("| --- | ---: | --- | ---: |")
for m in measured:
    print(f"| {m['label']} | {m['largest']:,} consumers | {m['stopped_by']} | {m['largest'] / by[BASE]['largest']:.3f}× |")
print()

# Chart: ns per consumer at each size (log scale), one group per strategy.
width, height, left, right, top, bottom = 860, 420, 70, 20, 50, 110
plot_w, plot_h = width - left - right, height - top - bottom
values = [tick[(l, n)] / n for l in labels for n in SIZES]
lo, hi = 10 ** math.floor(math.log10(min(values))), 10 ** math.ceil(math.log10(max(values)))
y = lambda v: top + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
colors = {1_000: "#4e79a7", 100_000: "#f28e2b"}
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">grid tick, ns per consumer, by strategy (log scale, lower is better)</text>']
decade = lo
while decade <= hi:
    svg.append(f'<line x1="{left}" x2="{width - right}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{decade:,.0f}</text>')
    decade *= 10
group = plot_w / len(labels)
bar = group / 3
for i, l in enumerate(labels):
    for j, n in enumerate(SIZES):
        v = tick[(l, n)] / n
        x = left + i * group + bar / 2 + j * bar
        svg.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar - 2:.1f}" height="{top + plot_h - y(v):.1f}" fill="{colors[n]}"/>')
        svg.append(f'<text x="{x + bar / 2 - 1:.1f}" y="{y(v) - 4:.1f}" text-anchor="middle" font-size="10">{v:,.0f}</text>')
    cx = left + i * group + group / 2
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{l}</text>')
    svg.append(f'<text x="{cx:.1f}" y="{top + plot_h + 32}" text-anchor="middle" fill="#555">largest: {by[l]["largest"]:,}</text>')
for j, n in enumerate(SIZES):
    x = left + j * 170
    svg.append(f'<rect x="{x}" y="{height - 30}" width="12" height="12" fill="{colors[n]}"/>')
    svg.append(f'<text x="{x + 18}" y="{height - 20}">{n:,} consumers</text>')
svg.append(f'<text x="{left + 360}" y="{height - 20}" fill="#555">largest: consumers billed in one tick under the default limits</text>')
svg.append("</svg>")
with open(os.path.join(here, "results", "languages.svg"), "w") as f:
    f.write("\n".join(svg) + "\n")
