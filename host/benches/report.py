#!/usr/bin/env python3
"""Turns criterion's estimates from `cargo bench -p powerplug --bench tick` into the
tables and the SVG chart that BENCHMARKS.md shows. Ratios are taken within one run.

Usage: python3 host/benches/report.py [target/criterion] > /tmp/tables.md
Writes host/benches/results/grid_tick.svg beside this script.

       python3 host/benches/report.py --channels [target/criterion] > /tmp/tables.md
does the same for `cargo bench -p powerplug --bench channels` and the demo runs
recorded in host/benches/results/demo.json, and writes host/benches/results/channels.svg.

       python3 host/benches/report.py --swap [host/benches/results/swap.json] > /tmp/tables.md
does the same for `cargo bench -p powerplug --bench swap` (hot-swap, issue 4): the
percentiles that bench wrote to results/swap.json, and results/swap.svg.

       python3 host/benches/report.py --experiment [host/benches/results/experiment.json] > /tmp/tables.md
does the same for `cargo bench -p powerplug --bench experiment` (A/B testing, issue 5):
replay throughput and the tick overhead of experiments, and results/experiment.svg.
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


def swap_report(path):
    """`cargo bench -p powerplug --bench swap` (issue 4), as it wrote results/swap.json:
    tables on stdout, results/swap.svg. Every ratio is within that one run."""
    import math

    with open(path) as f:
        d = json.load(f)
    target_ms = 50.0
    paths = [("cold_put", "cold: `PUT`, empty cache (compiles) — baseline", "cold PUT (compiles)"),
             ("cached_put", "cached: `PUT` again", "cached PUT"),
             ("cached_activate", "cached: `POST …/activate/{sha}`", "cached activate"),
             ("cached", "cached: both", "cached, both")]
    fmt = lambda ms: f"{ms:.2f} ms" if ms >= 1 else f"{ms * 1000:.0f} µs"

    print(f"Upload-to-active over HTTP, {d['consumers']} consumers in the dry-run tick "
          "(p99 of a few dozen samples is their maximum):")
    print()
    print("| plugin | path | samples | p50 | p99 | max | p50 / cold | p99 / cold |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for plugin, v in d["upload"].items():
        cold = v["cold_put"]
        for key, label, _ in paths:
            s = v[key]
            print(f"| {plugin} | {label} | {s['n']} | {fmt(s['p50_ms'])} | {fmt(s['p99_ms'])} | {fmt(s['max_ms'])} "
                  f"| {s['p50_ms'] / cold['p50_ms']:.3f}× | {s['p99_ms'] / cold['p99_ms']:.3f}× |")
    print()

    t = d["tick"]
    base = t["without_swaps"]
    print(f"`Grid::tick()` with {d['consumers']} readings pending, in alternating blocks of {t['block']} ticks:")
    print()
    print("| run | samples | p50 | p90 | p99 | max | mean | p50 / without | p99 / without | max / without |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, label in (("without_swaps", "without swaps — baseline"),
                       ("with_swaps", f"with swaps ({t['activations_per_s']:.0f} activations/s)")):
        s = t[key]
        print(f"| {label} | {s['n']} | {fmt(s['p50_ms'])} | {fmt(s['p90_ms'])} | {fmt(s['p99_ms'])} | {fmt(s['max_ms'])} "
              f"| {fmt(s['mean_ms'])} | {s['p50_ms'] / base['p50_ms']:.2f}× | {s['p99_ms'] / base['p99_ms']:.2f}× "
              f"| {s['max_ms'] / base['max_ms']:.2f}× |")
    a = t["activations"]
    print(f"| *the activations meanwhile* | {a['n']} | {fmt(a['p50_ms'])} | {fmt(a['p90_ms'])} | {fmt(a['p99_ms'])} "
          f"| {fmt(a['max_ms'])} | {fmt(a['mean_ms'])} | | | |")
    wait = t.get("wait_when_waiting")
    if wait:
        print(f"| *a tick's wait for activations, when it waited* | {wait['n']} | {fmt(wait['p50_ms'])} | {fmt(wait['p90_ms'])} "
              f"| {fmt(wait['p99_ms'])} | {fmt(wait['max_ms'])} | {fmt(wait['mean_ms'])} | | | |")
    print()
    waited = {int(k): v for k, v in t["waited_for_activations"].items()}
    n_with = sum(waited.values())
    print("| activations a tick with swaps waited for | " + " | ".join(str(k) for k in sorted(waited)) + " |")
    print("| --- | " + " | ".join("---:" for _ in waited) + " |")
    print("| ticks | " + " | ".join(f"{waited[k]} ({waited[k] / n_with:.0%})" for k in sorted(waited)) + " |")
    print()
    cpu = d.get("cpu_during_run") or {}
    print(f"Machine during the run: load average {d['loadavg_before']} before, {d['loadavg_after']} after; "
          f"CPU busy {cpu.get('busy', 0):.0%}, iowait {cpu.get('iowait', 0):.1%}, steal {cpu.get('steal', 0):.1%}.")
    print()

    worst = max(v["cached"]["p99_ms"] for v in d["upload"].values())
    with_, without = t["with_swaps"], t["without_swaps"]
    print("| target | measured | verdict |")
    print("| --- | --- | --- |")
    print(f"| cached upload-to-active ≤ 50 ms p99 | {fmt(worst)} (worst plugin; cold: "
          f"{fmt(max(v['cold_put']['p99_ms'] for v in d['upload'].values()))}) "
          f"| {'met' if worst <= target_ms else '**missed**'} |")
    extra = with_["p99_ms"] - without["p99_ms"]
    most = max(waited)
    longest = wait["max_ms"] if wait else 0.0
    ok = most <= 1 and extra < without["p50_ms"] and longest <= without["p50_ms"]
    print(f"| no tick stall beyond one tick (a tick waits for at most one activation) "
          f"| p99 {fmt(without['p99_ms'])} → {fmt(with_['p99_ms'])} (+{fmt(max(extra, 0))}, "
          f"{max(extra, 0) / without['p50_ms']:.2f} of a median tick); max {fmt(without['max_ms'])} → {fmt(with_['max_ms'])}; "
          f"longest wait {fmt(longest)} ({longest / without['p50_ms']:.2f} of a median tick); "
          f"{sum(v for k, v in waited.items() if k >= 2)} of {n_with} ticks waited for {'2' if most == 2 else f'2–{most}'} activations "
          f"| {'met' if ok else '**missed**'} |")
    print()

    # Chart: two panels of horizontal bars, p50 solid and p99 light behind it.
    width, height, top = 860, 560, 40
    left, right = 330, 170
    plot_w = width - left - right
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">upload-to-active over HTTP: p50 (dark) and p99 (light), ms, log scale (lower is better)</text>']
    bars = [(plugin, key, short, v[key]) for plugin, v in d["upload"].items() for key, _, short in paths if key != "cached"]
    values = [b[3]["p50_ms"] for b in bars] + [b[3]["p99_ms"] for b in bars] + [target_ms]
    lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    x = lambda v: left + plot_w * (math.log10(v) - lo) / (hi - lo)
    panel_h = 270
    for e in range(lo, hi + 1):
        svg.append(f'<line x1="{x(10 ** e):.1f}" x2="{x(10 ** e):.1f}" y1="{top}" y2="{top + panel_h}" stroke="#ddd"/>')
        svg.append(f'<text x="{x(10 ** e):.1f}" y="{top + panel_h + 14}" text-anchor="middle">{10 ** e:g} ms</text>')
    bar_h = panel_h / len(bars)
    colours = {"cold_put": ("#e45756", "#f4b3b1"), "cached_put": ("#4c78a8", "#a6bddb"), "cached_activate": ("#54a24b", "#a9d3a4")}
    x0 = x(10 ** lo)
    for i, (plugin, key, short, s) in enumerate(bars):
        y0 = top + i * bar_h + 3
        dark, light = colours[key]
        name = "premium" if "premium" in plugin else "basic"
        svg.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{x(s["p99_ms"]) - x0:.1f}" height="{bar_h - 6:.1f}" fill="{light}"><title>{plugin}, {short}: p99 {s["p99_ms"]:.3f} ms</title></rect>')
        svg.append(f'<rect x="{x0:.1f}" y="{y0 + (bar_h - 6) / 4:.1f}" width="{x(s["p50_ms"]) - x0:.1f}" height="{(bar_h - 6) / 2:.1f}" fill="{dark}"><title>{plugin}, {short}: p50 {s["p50_ms"]:.3f} ms</title></rect>')
        svg.append(f'<text x="{left - 8}" y="{y0 + bar_h / 2:.1f}" text-anchor="end">{name}: {short} (n={s["n"]})</text>')
        svg.append(f'<text x="{x(s["p99_ms"]) + 4:.1f}" y="{y0 + bar_h / 2:.1f}">{fmt(s["p50_ms"])} / {fmt(s["p99_ms"])}</text>')
    svg.append(f'<line x1="{x(target_ms):.1f}" x2="{x(target_ms):.1f}" y1="{top - 4}" y2="{top + panel_h}" stroke="#333" stroke-dasharray="4 3"/>')
    svg.append(f'<text x="{x(target_ms) - 4:.1f}" y="{top + 8}" text-anchor="end" font-size="11">target: cached p99 ≤ 50 ms</text>')

    # Tick panel: linear ms, p50 / p99 / max without and with swaps.
    top2 = top + panel_h + 64
    svg.append(f'<text x="{width / 2}" y="{top2 - 18}" text-anchor="middle" font-size="14">Grid::tick() with {d["consumers"]} readings: without vs with back-to-back activations, ms (lower is better)</text>')
    rows = [(f"{q} without swaps", without[f"{q}_ms"], "#4c78a8") if w == 0 else (f"{q} with swaps", with_[f"{q}_ms"], "#f58518")
            for q in ("p50", "p99", "max") for w in (0, 1)]
    panel2_h = height - top2 - 36
    bar2_h = panel2_h / len(rows)
    top_ms = max(r[1] for r in rows) * 1.1
    x2 = lambda v: left + plot_w * v / top_ms
    step = 10 ** math.floor(math.log10(top_ms / 2))
    tick_v = 0.0
    while tick_v <= top_ms:
        svg.append(f'<line x1="{x2(tick_v):.1f}" x2="{x2(tick_v):.1f}" y1="{top2}" y2="{top2 + panel2_h}" stroke="#ddd"/>')
        svg.append(f'<text x="{x2(tick_v):.1f}" y="{top2 + panel2_h + 14}" text-anchor="middle">{tick_v:g} ms</text>')
        tick_v += step if top_ms / step <= 10 else 2 * step
    for i, (label, v, colour) in enumerate(rows):
        y0 = top2 + i * bar2_h + 3
        q = label.split()[0]
        ratio = with_[f"{q}_ms"] / without[f"{q}_ms"]
        svg.append(f'<rect x="{left}" y="{y0:.1f}" width="{x2(v) - left:.1f}" height="{bar2_h - 6:.1f}" fill="{colour}"><title>{label}: {v:.3f} ms</title></rect>')
        svg.append(f'<text x="{left - 8}" y="{y0 + bar2_h / 2:.1f}" text-anchor="end">{label}</text>')
        note = f" ({ratio:.2f}×)" if "with swaps" in label else ""
        svg.append(f'<text x="{x2(v) + 4:.1f}" y="{y0 + bar2_h / 2:.1f}">{fmt(v)}{note}</text>')
    svg.append(f'<line x1="{left}" x2="{left}" y1="{top2}" y2="{top2 + panel2_h}" stroke="#888"/>')
    svg.append("</svg>")
    os.makedirs(os.path.join(here, "results"), exist_ok=True)
    with open(os.path.join(here, "results", "swap.svg"), "w") as f:
        f.write("\n".join(svg) + "\n")


def experiment_report(path):
    """`cargo bench -p powerplug --bench experiment` (issue 5), as it wrote
    results/experiment.json: tables on stdout, results/experiment.svg."""
    with open(path) as f:
        d = json.load(f)
    r = d["replay"]
    n = r["usage_records"]
    base = r["host_only"]["p50_ms"]
    rows = [("read", "read and decode the tick log"),
            ("host_only", "replay, deciding nothing (host work) — baseline"),
            ("one_strategy", "replay through the basic grid (A)"),
            ("two_strategies", "replay through A and B")]
    print(f"Replay of {n:,} recorded usage records ({d['cores']} cores, {r['read']['n']} runs each):")
    print()
    print("| step | p50 | min | records/s | p50 / baseline |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for key, label in rows:
        s = r[key]
        print(f"| {label} | {s['p50_ms'] / 1000:.3f} s | {s['min_ms'] / 1000:.3f} s | {n / s['p50_ms'] * 1000 / 1e6:.2f} M | {s['p50_ms'] / base:.2f}× |")
    one = r["read"]["p50_ms"] + r["one_strategy"]["p50_ms"]
    print()
    print(f"Target: one strategy over 1,000,000 records in < 5 s: read + replay = {one / 1000:.2f} s — "
          f"{'met' if one < 5000 else '**missed**'}.")
    print()
    print("`Grid::tick()` with a fresh 1 kWh reading from every consumer (each sealed into a payment request):")
    print()
    print("| consumers | set-up | ticks | p50 | p90 | p50 / no experiment |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    labels = [("none", "no experiment — baseline"), ("2_variants", "2 variants + counterfactuals"),
              ("4_variants", "4 variants + counterfactuals"), ("shadow", "shadow candidate")]
    for consumers, t in d["tick"].items():
        b = t["none"]["p50_ms"]
        for key, label in labels:
            s = t[key]
            print(f"| {int(consumers):,} | {label} | {s['n']} | {s['p50_ms']:.1f} ms | {s['p90_ms']:.1f} ms | {s['p50_ms'] / b:.2f}× |")
    print()

    # Chart: replay seconds (target line at 5 s) and tick ratios.
    width, height, left, right = 900, 420, 340, 110
    plot_w = width - left - right
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Replay of {n:,} usage records, p50 seconds (target: one strategy &lt; 5 s)</text>']
    top, bar_h = 34, 30
    xs = lambda v: left + plot_w * v / 5.5
    for sec in range(0, 6):
        svg.append(f'<line x1="{xs(sec):.1f}" x2="{xs(sec):.1f}" y1="{top}" y2="{top + 4 * bar_h}" stroke="#ddd"/>')
        svg.append(f'<text x="{xs(sec):.1f}" y="{top + 4 * bar_h + 14}" text-anchor="middle">{sec} s</text>')
    for i, (key, label) in enumerate(rows):
        v = r[key]["p50_ms"] / 1000
        y0 = top + i * bar_h + 4
        svg.append(f'<rect x="{left}" y="{y0}" width="{xs(v) - left:.1f}" height="{bar_h - 8}" fill="#4c78a8"/>')
        svg.append(f'<text x="{left - 8}" y="{y0 + bar_h / 2:.1f}" text-anchor="end">{label.split(" — ")[0]}</text>')
        svg.append(f'<text x="{xs(v) + 4:.1f}" y="{y0 + bar_h / 2:.1f}">{v:.2f} s</text>')
    svg.append(f'<line x1="{xs(5):.1f}" x2="{xs(5):.1f}" y1="{top}" y2="{top + 4 * bar_h}" stroke="#e45756" stroke-dasharray="4 3"/>')
    top2 = top + 4 * bar_h + 60
    svg.append(f'<text x="{width / 2}" y="{top2 - 16}" text-anchor="middle" font-size="14">Grid tick p50 as a ratio to no experiment (lower is better)</text>')
    bars = [(c, key, label, t[key]["p50_ms"] / t["none"]["p50_ms"]) for c, t in d["tick"].items() for key, label in labels]
    hi = max(b[3] for b in bars) * 1.1
    xr = lambda v: left + plot_w * v / hi
    bh = (height - top2 - 20) / len(bars)
    colours = {"none": "#bab0ac", "2_variants": "#4c78a8", "4_variants": "#f58518", "shadow": "#54a24b"}
    for i, (c, key, label, ratio) in enumerate(bars):
        y0 = top2 + i * bh + 2
        svg.append(f'<rect x="{left}" y="{y0:.1f}" width="{xr(ratio) - left:.1f}" height="{bh - 4:.1f}" fill="{colours[key]}"/>')
        svg.append(f'<text x="{left - 8}" y="{y0 + bh / 2 + 2:.1f}" text-anchor="end">{int(c):,} consumers: {label.split(" — ")[0]}</text>')
        svg.append(f'<text x="{xr(ratio) + 4:.1f}" y="{y0 + bh / 2 + 2:.1f}">{ratio:.2f}×</text>')
    svg.append("</svg>")
    with open(os.path.join(here, "results", "experiment.svg"), "w") as f:
        f.write("\n".join(svg) + "\n")


if len(sys.argv) > 1 and sys.argv[1] == "--experiment":
    experiment_report(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "results", "experiment.json"))
    sys.exit(0)
if len(sys.argv) > 1 and sys.argv[1] == "--swap":
    swap_report(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "results", "swap.json"))
    sys.exit(0)
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
    wasm, native, js, epoch = (est("grid_tick", v, str(n))[0] for v in ("wasm", "native", "json", "wasm-epoch"))
    rows.append((n, wasm, native, js, epoch))

print("| consumers | native | wasm, fuel (all limits) | wasm, epoch only | json core module | fuel / native | epoch / native | json / native | wasm ns per consumer (fuel / epoch) |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for n, wasm, native, js, epoch in rows:
    print(f"| {n:,} | {fmt_ns(native)} | {fmt_ns(wasm)} | {fmt_ns(epoch)} | {fmt_ns(js)} | {wasm / native:.2f}× | {epoch / native:.2f}× | {js / native:.1f}× | {wasm / n:.0f} / {epoch / n:.0f} |")
print()

print("| fixed cost | mean | 95% CI |")
print("| --- | ---: | ---: |")
for label, name in (("empty tick, fuel (instantiate + call)", "fixed_cost_empty_tick"),
                    ("empty tick, epoch only", "fixed_cost_empty_tick_epoch")):
    fixed = est(name)
    print(f"| {label} | {fmt_ns(fixed[0])} | {fmt_ns(fixed[1])} – {fmt_ns(fixed[2])} |")
print()

print("| plugin | compile | load from cache | compile / cached |")
print("| --- | ---: | ---: | ---: |")
for name in ("basic-grid-strategy", "basic-producer-strategy"):
    compile_ns, cached_ns = est("load", "compile", name)[0], est("load", "cached", name)[0]
    print(f"| {name} | {fmt_ns(compile_ns)} | {fmt_ns(cached_ns)} | {compile_ns / cached_ns:.0f}× |")

# Chart: ns per consumer, log scale, one group of bars per grid size.
width, height, left, top, bottom = 640, 300, 70, 40, 50
plot_h = height - top - bottom
series = [("native", "#4c78a8", 2), ("wasm, epoch only", "#54a24b", 4), ("wasm, fuel", "#f58518", 1), ("json", "#e45756", 3)]
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
