#!/usr/bin/env python3
"""Draws host/benches/rss.sh's samples (label,seconds,rss_kib) as an SVG chart,
one line per label, and prints a Markdown table: RSS at each minute and its
ratio to the first label's at the same time (the run's own baseline).

Usage: python3 host/benches/memory_report.py CSV OUT.svg
"""
import csv
import sys

COLOURS = ["#c0392b", "#2471a3", "#229954", "#7d3c98"]


def main():
    path, out = sys.argv[1], sys.argv[2]
    runs = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            runs.setdefault(r["label"], {})[int(r["seconds"])] = int(r["rss_kib"]) / 1024
    labels = list(runs)
    base = runs[labels[0]]
    print("| seconds | " + " | ".join(f"{l} MiB | ×" for l in labels) + " |")
    print("| ---: |" + " ---: | ---: |" * len(labels))
    for t in sorted(base):
        if t % 60 == 0 and t > 0:
            cells = []
            for l in labels:
                v = runs[l].get(t)
                cells.append(f"{v:,.0f} | {v / base[t]:.2f}" if v else "– | –")
            print(f"| {t} | " + " | ".join(cells) + " |")
    w, h, pad = 720, 320, 50
    tmax = max(max(r) for r in runs.values()) or 1
    ymax = max(max(r.values()) for r in runs.values()) * 1.1 or 1
    x = lambda t: pad + (w - 2 * pad) * t / tmax
    y = lambda v: h - pad - (h - 2 * pad) * v / ymax
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{pad}" y="20">RSS of a 1,000-consumer demo (MiB) against seconds, per malloc setting</text>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
           f'<text x="{w - pad}" y="{h - pad + 30}" text-anchor="end">{tmax} s</text>',
           f'<text x="{pad - 5}" y="{pad}" text-anchor="end">{ymax:,.0f}</text>']
    for i, l in enumerate(labels):
        c = COLOURS[i % len(COLOURS)]
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in sorted(runs[l].items()))
        svg.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>')
        svg.append(f'<text x="{pad + 10}" y="{pad + 16 * i}" fill="{c}">{l}</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
