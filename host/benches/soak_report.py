#!/usr/bin/env python3
"""Draws a soak's samples (host/benches/soak.sh's CSV) as an SVG chart: RSS,
the data dir's size and the grid store's stored bytes against minutes; and
prints a Markdown table of every fifth minute with each figure as a ratio to
its value at BASELINE_MINUTE (after the retention period: the run's own
baseline).

Usage: python3 host/benches/soak_report.py CSV OUT.svg BASELINE_MINUTE
"""
import csv
import sys


def main():
    path, out, base_min = sys.argv[1], sys.argv[2], float(sys.argv[3])
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            stored = int(r.get("grid_stored_bytes") or 0) / 2**20
            rows.append((int(r["elapsed_s"]) / 60, int(r["rss_kib"]) / 1024, int(r["data_bytes"]) / 2**20, stored))
    rows = [r for r in rows if r[1] > 0]
    base = min(rows, key=lambda r: abs(r[0] - base_min))
    ratio = lambda v, b: f"{v / b:.2f}" if b else "–"
    print("| minute | RSS MiB | × | data dir MiB | × | grid stored MiB | × |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        m, rss, data, stored = r
        if round(m) % 5 == 0 or r == rows[-1]:
            print(f"| {m:.0f} | {rss:,.0f} | {ratio(rss, base[1])} | {data:,.0f} | {ratio(data, base[2])} | {stored:,.0f} | {ratio(stored, base[3])} |")
    w, h, pad = 720, 320, 50
    tmax = max(r[0] for r in rows) or 1
    ymax = max(max(r[1:]) for r in rows) * 1.1 or 1
    x = lambda t: pad + (w - 2 * pad) * t / tmax
    y = lambda v: h - pad - (h - 2 * pad) * v / ymax
    line = lambda i: " ".join(f"{x(r[0]):.1f},{y(r[i]):.1f}" for r in rows)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{pad}" y="20">Soak: RSS (red), data dir (blue), grid stored (green), MiB against minutes; dashed: baseline minute {base[0]:.0f}</text>',
           f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="black"/>',
           f'<line x1="{x(base[0]):.1f}" y1="{pad}" x2="{x(base[0]):.1f}" y2="{h - pad}" stroke="gray" stroke-dasharray="4"/>']
    for frac in (0, 0.25, 0.5, 0.75, 1):
        v = ymax * frac
        svg.append(f'<text x="5" y="{y(v) + 4:.1f}">{v:,.0f}</text>')
        t = tmax * frac
        svg.append(f'<text x="{x(t) - 8:.1f}" y="{h - pad + 16}">{t:.0f}</text>')
    svg.append(f'<polyline fill="none" stroke="#c33" stroke-width="2" points="{line(1)}"/>')
    svg.append(f'<polyline fill="none" stroke="#36c" stroke-width="2" points="{line(2)}"/>')
    svg.append(f'<polyline fill="none" stroke="#393" stroke-width="2" points="{line(3)}"/>')
    svg.append(f'<text x="{w - 280}" y="40" fill="#c33">RSS</text><text x="{w - 240}" y="40" fill="#36c">data dir</text><text x="{w - 170}" y="40" fill="#393">grid stored</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


main()
