#!/usr/bin/env python3
"""Turns criterion's estimates from `cargo bench -p powerplug --bench tick` into the
tables and the SVG chart that BENCHMARKS.md shows. Ratios are taken within one run.

Usage: python3 host/benches/report.py [target/criterion] > /tmp/tables.md
Writes host/benches/results/grid_tick.svg beside this script.

       python3 host/benches/report.py --channels [target/criterion] > /tmp/tables.md
does the same for `cargo bench -p powerplug --bench channels` and the demo runs
recorded in host/benches/results/demo.json, and writes host/benches/results/channels.svg.
"""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))


def channels_report(root):
    """`cargo bench -p powerplug --bench channels` and the demo runs of
    results/demo.json (issue 3): tables on stdout, results/channels.svg."""
    import math

    def bench(*path):
        """Mean and 95% CI in messages/s (CI bounds swap: a longer time is fewer messages)."""
        base = os.path.join(root, "channels", *path, "new")
        with open(os.path.join(base, "estimates.json")) as f:
            mean = json.load(f)["mean"]
        with open(os.path.join(base, "benchmark.json")) as f:
            n = json.load(f)["throughput"]["Elements"]
        ci = mean["confidence_interval"]
        per_s = lambda ns: n / ns * 1e9
        return per_s(mean["point_estimate"]), per_s(ci["upper_bound"]), per_s(ci["lower_bound"]), n

    rows = [
        ("raw verify + decrypt (`ChannelReader::poll`, memory) — baseline", ("verify_decrypt", "memory")),
        ("seal (`ChannelWriter::prepare`)", ("seal",)),
        ("read back from redb (`ChannelReader::poll`, embedded)", ("read", "embedded")),
        ("ingest: seal + `put_many` ×256 + read back", ("ingest", "batched_256")),
        ("ingest: seal + one `put` per message + read back", ("ingest", "put_each")),
    ]
    figures = [(label, bench(*path)) for label, path in rows]
    base = figures[0][1][0]
    print("| path | messages per iteration | messages/s | 95% CI | µs per message | / raw verify+decrypt |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, (m, lo, hi, n) in figures:
        print(f"| {label} | {n:,} | {m:,.0f} | {lo:,.0f} – {hi:,.0f} | {1e6 / m:.1f} | {m / base:.3f}× |")
    print()

    with open(os.path.join(here, "results", "demo.json")) as f:
        demo = json.load(f)
    # ticks and real_s: the trading window, from the first progress line (every
    # entity registered) to the last one, where grid ticks reached --ticks.
    # summary_ticks / summary_s: the summary's "N grid ticks … in S s", the
    # trading window plus settling. wall_s: /usr/bin/time, with set-up and
    # registration. A grid that keeps up ticks time_scale / 15 times a real second.
    # A row with "before": true was measured at an earlier commit whose demo had
    # no trading window (its ticks and real_s are its summary's, from the grid's start).
    small = demo[0]
    print("| demo run | commit | consumers | producers × sources | time scale | grid ticks | real s | ticks/s | of nominal | summary: ticks in s | wall s | max RSS | RSS / baseline | checks |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for d in demo:
        tps = d["ticks"] / d["real_s"]
        mark = "*" if d.get("before") else ""
        print(f"| {d['label']} | `{d['commit']}` | {d['consumers']:,} | {d['producers']} × {d['sources_per_producer']} | ×{d['time_scale']} "
              f"| {d['ticks']}{mark} | {d['real_s']:.1f}{mark} | {tps:.2f} | {tps / (d['time_scale'] / 15):.0%} "
              f"| {d['summary_ticks']} in {d['summary_s']:.1f} | {d['wall_s']:.1f} "
              f"| {d['max_rss_kb'] / 1024:.0f} MiB | {d['max_rss_kb'] / small['max_rss_kb']:.1f}× "
              f"| {d['checks_held']}/{d['checks']} {'✓' if d['checks_held'] == d['checks'] else '✗'} |")
    print()

    # Chart: two panels, messages/s (log) and the demo runs (ticks/s, max RSS).
    width, height, top, bottom = 840, 580, 40, 24
    left, right = 300, 210
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">channel messages per second, restricted channel, 76-byte usage command (log scale, higher is better)</text>']
    values = [f[1][0] for f in figures]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    plot_w = width - left - right
    x = lambda v: left + plot_w * (math.log10(v) - lo) / (hi - lo)
    panel_h = 250
    for e in range(lo, hi + 1):
        svg.append(f'<line x1="{x(10 ** e):.1f}" x2="{x(10 ** e):.1f}" y1="{top}" y2="{top + panel_h}" stroke="#ddd"/>')
        svg.append(f'<text x="{x(10 ** e):.1f}" y="{top + panel_h + 14}" text-anchor="middle">{10 ** e:,.0f}</text>')
    colours = ["#4c78a8", "#9ecae9", "#72b7b2", "#f58518", "#e45756"]
    bar_h = panel_h / len(figures)
    short = ["raw verify + decrypt (baseline)", "seal", "read back from redb", "ingest, put_many ×256", "ingest, one put per message"]
    for i, ((label, (m, _, _, _)), colour) in enumerate(zip(figures, colours)):
        y0 = top + i * bar_h + 4
        x0 = x(10 ** lo)
        svg.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x(m) - x0:.1f}" height="{bar_h - 8:.1f}" fill="{colour}"><title>{short[i]}: {m:,.0f} messages/s</title></rect>')
        svg.append(f'<text x="{left - 8}" y="{y0 + bar_h / 2:.1f}" text-anchor="end">{short[i]}</text>')
        svg.append(f'<text x="{x(m) + 4:.1f}" y="{y0 + bar_h / 2:.1f}">{m:,.0f}/s ({m / base:.2f}×)</text>')

    # Demo panel: ticks per real second, linear, one bar per run.
    top2 = top + panel_h + 60
    svg.append(f'<text x="{width / 2}" y="{top2 - 16}" text-anchor="middle" font-size="14">powerplug demo: grid ticks per real second while trading (before: whole run); label: of nominal, max RSS, checks</text>')
    tps = [d["ticks"] / d["real_s"] for d in demo]
    top_tps = max(tps) * 1.15
    panel2_h = height - top2 - bottom - 20
    bar2_h = panel2_h / max(len(demo), 1)
    x2 = lambda v: left + plot_w * v / top_tps
    for i, (d, t) in enumerate(zip(demo, tps)):
        y0 = top2 + i * bar2_h + 4
        svg.append(f'<rect x="{left}" y="{y0:.1f}" width="{x2(t) - left:.1f}" height="{bar2_h - 8:.1f}" fill="{"#4c78a8" if d["checks_held"] == d["checks"] else "#e45756"}"><title>{d["label"]}: {t:.2f} ticks/s</title></rect>')
        name = f'before ({d["commit"]}): {d["consumers"]:,} consumers, ×{d["time_scale"]}' if d.get("before") \
            else f'{d["consumers"]:,} consumers, {d["producers"]} producers, ×{d["time_scale"]}'
        svg.append(f'<text x="{left - 8}" y="{y0 + bar2_h / 2:.1f}" text-anchor="end">{name}</text>')
        nominal = t / (d["time_scale"] / 15)
        svg.append(f'<text x="{x2(t) + 4:.1f}" y="{y0 + bar2_h / 2:.1f}">{t:.2f}/s ({nominal:.0%}) · {d["max_rss_kb"] / 1024:.0f} MiB · {d["checks_held"]}/{d["checks"]}</text>')
    svg.append(f'<line x1="{left}" x2="{left}" y1="{top2}" y2="{top2 + panel2_h}" stroke="#888"/>')
    svg.append("</svg>")
    os.makedirs(os.path.join(here, "results"), exist_ok=True)
    with open(os.path.join(here, "results", "channels.svg"), "w") as f:
        f.write("\n".join(svg) + "\n")


if len(sys.argv) > 1 and sys.argv[1] == "--channels":
    channels_report(sys.argv[2] if len(sys.argv) > 2 else "target/criterion")
    sys.exit(0)
root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


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
