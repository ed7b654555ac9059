#!/usr/bin/env python3
"""Turns host/benches/results/million-soak.json (the million bench's 1M size
run for 12 rounds, once per malloc setting) into the table BENCHMARKS.md
shows and host/benches/results/million-soak.svg: RSS after each round.

Usage: python3 host/benches/million_soak_report.py
"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "results/million-soak.json")) as f:
    result = json.load(f)
runs = result["runs"]
names = list(runs)
base = names[-1]  # the setting the binary runs with: the ratios' baseline

rounds = max(len(r["rounds"]) for r in runs.values())
print("| after | " + " | ".join(f"{n}: RSS MiB" for n in names) + " | × |")
print("| --- |" + " ---: |" * (len(names) + 1))
row = lambda r, i: r["rounds"][i]["rss_mib"] if i < len(r["rounds"]) else None
print("| registering | " + " | ".join(f"{r['rss_registered_mib']:,}" for r in runs.values())
      + f" | {runs[names[0]]['rss_registered_mib'] / runs[base]['rss_registered_mib']:.2f} |")
for i in range(rounds):
    cells = [row(r, i) for r in runs.values()]
    ratio = f"{cells[0] / cells[-1]:.2f}" if None not in cells else "—"
    print(f"| round {i} | " + " | ".join("—" if c is None else f"{c:,}" for c in cells) + f" | {ratio} |")
for n, r in runs.items():
    ticks = sorted(x["tick_ms"] for x in r["rounds"])
    rates = sorted(x["readings_per_s"] for x in r["rounds"])
    print(f"\n{n}: tick median {ticks[len(ticks) // 2]:,} ms, ingest median {rates[len(rates) // 2]:,} readings/s")

width, height, left, top, bottom = 720, 340, 70, 40, 50
hi = max(max(x["rss_mib"] for x in r["rounds"]) for r in runs.values())
hi = (hi // 500 + 1) * 500
xs = lambda i: left + (width - left - 220) * i / max(1, rounds - 1)
y = lambda v: top + (height - top - bottom) * (1 - v / hi)
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">RSS after each round of 250,000 readings, 1,000,000 consumers</text>']
for v in range(0, hi + 1, 500):
    svg.append(f'<line x1="{left}" x2="{width - 220}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    svg.append(f'<text x="{left - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v} MiB</text>')
for i in range(rounds):
    svg.append(f'<text x="{xs(i):.1f}" y="{height - bottom + 18}" text-anchor="middle">{i}</text>')
svg.append(f'<text x="{(left + width - 220) / 2}" y="{height - 10}" text-anchor="middle">round</text>')
for k, (n, colour) in enumerate(zip(names, ["#d62728", "#1f77b4", "#2ca02c"])):
    pts = " ".join(f"{xs(x['round']):.1f},{y(x['rss_mib']):.1f}" for x in runs[n]["rounds"])
    svg.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
    svg.append(f'<line x1="{width - 210}" x2="{width - 190}" y1="{60 + 20 * k}" y2="{60 + 20 * k}" stroke="{colour}" stroke-width="2"/>')
    svg.append(f'<text x="{width - 185}" y="{64 + 20 * k}">{n.split(" (")[0]}</text>')
svg.append("</svg>")
with open(os.path.join(here, "results/million-soak.svg"), "w") as f:
    f.write("\n".join(svg))
