#!/usr/bin/env python3
"""Draws host/benches/results/pairs.json (ticks of two builds of the million
bench run in turn, every round) as host/benches/results/pairs.svg: one row
per change and size, each round a dot, the medians marked, so that a change
is read against the spread between rounds and not a single number.

Usage: python3 host/benches/pairs_report.py
"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "results/pairs.json")) as f:
    pairs = json.load(f)["pairs"]



def median(xs):
    xs = sorted(xs)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


rows = [(p["change"], s) for p in pairs for s in p["sizes"]]
width, left, right, row_h, top = 860, 330, 80, 56, 50
height = top + row_h * len(rows) + 40
print("| change | size | before, ms (median) | after, ms (median) | after ÷ before |")
print("| --- | --- | ---: | ---: | ---: |")
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Tick time, every round: before (grey) and after (red)</text>']
for k, (change, s) in enumerate(rows):
    b, a = median(s["before"]), median(s["after"])
    print(f"| {change} | {s['label']} | {b:,.0f} | {a:,.0f} | {a / b:.2f}× |")
    scale = max(s["before"] + s["after"])
    x = lambda v: left + (width - left - right) * v / scale
    y0 = top + row_h * k
    svg.append(f'<text x="8" y="{y0 + 16}">{change[:48]}</text>')
    svg.append(f'<text x="8" y="{y0 + 32}" fill="#555">{s["label"]}: {a / b:.2f}× (medians)</text>')
    svg.append(f'<line x1="{left}" x2="{width - right}" y1="{y0 + 24}" y2="{y0 + 24}" stroke="#ddd"/>')
    for values, colour, dy in [(s["before"], "#888", 16), (s["after"], "#d62728", 32)]:
        for v in values:
            svg.append(f'<circle cx="{x(v):.1f}" cy="{y0 + dy}" r="4" fill="{colour}" fill-opacity="0.7"/>')
        m = median(values)
        svg.append(f'<line x1="{x(m):.1f}" x2="{x(m):.1f}" y1="{y0 + dy - 8}" y2="{y0 + dy + 8}" stroke="{colour}" stroke-width="2"/>')
        svg.append(f'<text x="{x(m) + 6:.1f}" y="{y0 + dy - 6}" fill="{colour}" font-size="10">{m:,.0f} ms</text>')
svg.append(f'<text x="{left}" y="{height - 12}" fill="#555">dots: rounds; bars: medians; each row from 0 to its slowest round</text>')
svg.append("</svg>")
with open(os.path.join(here, "results/pairs.svg"), "w") as f:
    f.write("\n".join(svg))
