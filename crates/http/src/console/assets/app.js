// The Powerplug console: reads and drives the host's JSON API with the
// session cookie. Text from the host goes into the page as text, never as
// markup (`el` below), so a registration id or a version's notes cannot
// become script.
"use strict";

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fill(tbody, rows, empty) {
  tbody.replaceChildren(...rows);
  if (!rows.length && empty) {
    const cols = tbody.parentElement.querySelectorAll("thead th").length || 1;
    tbody.append(el("tr", {}, el("td", { colspan: cols, class: "empty" }, empty)));
  }
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "");
const short = (sha) => (sha ? String(sha).slice(0, 12) : "");
const num = (n) => (n === undefined || n === null ? "" : Number(n).toLocaleString());

function notice(text, bad) {
  const n = $("notice");
  n.textContent = text;
  n.className = bad ? "error" : "ok";
  n.hidden = !text;
}

// Calls the API; an error answer becomes an exception with its message and field.
async function api(method, path, body, type) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.body = type ? body : JSON.stringify(body);
    init.headers["content-type"] = type || "application/json";
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = text;
  try { data = JSON.parse(text); } catch (_) { /* a text answer */ }
  if (!res.ok) {
    if (res.status === 401) { location.reload(); }
    const msg = data && data.error ? data.error + (data.field ? ` (${data.field})` : "") : `${res.status}`;
    throw new Error(msg);
  }
  return data;
}

async function act(what, fn) {
  try {
    notice(`${what}…`);
    const out = await fn();
    notice(`${what}: done`);
    return out;
  } catch (e) {
    notice(`${what}: ${e.message}`, true);
    return undefined;
  }
}

// A line chart of `series` ([{name, cls, values}]) over `times`, in an <svg>.
function chart(svg, times, series) {
  const W = 600, H = 180, L = 56, B = 22, T = 8;
  svg.replaceChildren();
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const n = times.length;
  const x = (i) => L + (n <= 1 ? 0 : (i * (W - L - 8)) / (n - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  for (const f of [0, 0.5, 1]) {
    svg.append(el("svg:line", { x1: L, x2: W - 8, y1: y(max * f), y2: y(max * f), class: "grid" }));
    svg.append(el("svg:text", { x: L - 4, y: y(max * f) + 4, class: "axis", "text-anchor": "end" }, num(Math.round(max * f))));
  }
  if (n) {
    svg.append(el("svg:text", { x: L, y: H - 4, class: "axis" }, new Date(times[0]).toLocaleTimeString()));
    svg.append(el("svg:text", { x: W - 8, y: H - 4, class: "axis", "text-anchor": "end" }, new Date(times[n - 1]).toLocaleTimeString()));
  }
  for (const s of series) {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svg.append(el("svg:polyline", { points, class: `line ${s.cls}` }, el("svg:title", {}, s.name)));
  }
}

// A horizontal bar chart of [label, value] pairs, in an <svg>.
function bars(pairs, title) {
  const W = 600, row = 26, L = 120;
  const max = Math.max(1e-9, ...pairs.map(([, v]) => v));
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${pairs.length * row + 8}`, class: "bars", role: "img", "aria-label": title });
  pairs.forEach(([label, v], i) => {
    const y = 4 + i * row;
    const w = ((W - L - 70) * v) / max;
    svg.append(el("svg:text", { x: L - 6, y: y + 16, class: "axis", "text-anchor": "end" }, label));
    svg.append(el("svg:rect", { x: L, y, width: Math.max(1, w), height: row - 8, class: `bar bar-${i % 4}` }));
    svg.append(el("svg:text", { x: L + w + 6, y: y + 16, class: "axis" }, Number(v).toFixed(2)));
  });
  return el("figure", {}, el("figcaption", {}, title), svg);
}

// ---- Overview ----

const overview = {
  kinds: [],
  cursors: [null],
  page: 0,
  async refresh() {
    const [status, recent] = await Promise.all([
      api("GET", "/status"),
      api("GET", "/ticks/recent?limit=2880"),
    ]);
    this.cards(status);
    this.ticks(recent.ticks);
  },
  cards(s) {
    const t = s.totals || {};
    const reg = (s.registrations && s.registrations.by_kind) || {};
    const open = (k) => (reg[k] ? reg[k].open : 0);
    const grid = document.body.dataset.kind === "grid";
    const cards = [
      ["Ticks", num(t.ticks || 0), `${num(t["ticks-failed"] || 0)} failed`],
      ["Strategy", short(s.strategy && s.strategy.sha256), s.strategy ? `${num(s.strategy.size)} bytes · ${s.strategy.world}` : ""],
    ];
    if (grid) {
      cards.push(
        ["Consumers", num(open("consumers")), `${num(open("producers"))} producers`],
        ["Used / billed", `${num(t["usage-wh"] || 0)} Wh`, `${num(t["billed-wh"] || 0)} Wh billed`],
        ["Requested / paid", num(t.requested || 0), `${num(t.income || 0)} paid · ${num(t["paid-out"] || 0)} paid out`],
      );
    } else {
      cards.push(
        ["Sources", num(open("sources")), ""],
        ["Reported", `${num(t["reported-wh"] || 0)} Wh`, `${num(t["source-wh"] || 0)} Wh from sources`],
        ["Received", num(t.received || 0), "tokens from the grid"],
      );
    }
    cards.push(["Lease", s.lease && s.lease.leading === false ? "standby" : "leading", s.scheduler ? `${num(s.scheduler.rounds_failed || 0)} rounds failed` : ""]);
    $("cards").replaceChildren(...cards.map(([k, v, sub]) => el("div", { class: "card" }, el("span", { class: "label" }, k), el("strong", {}, v), el("small", {}, sub))));
    const w = $("wallet");
    const facts = [];
    const fact = (k, v) => facts.push(el("dt", {}, k), el("dd", {}, v));
    if (s.wallet) {
      fact("Balance", num(s.wallet.balance));
      fact("Issued", num(s.wallet.issued));
      if (s.wallet.held !== undefined) fact("Held by all accounts", `${num(s.wallet.held)}${s.wallet.conserved === false ? " — not what was issued!" : ""}`);
    }
    if (s.grid) {
      fact("Grid", s.grid.url);
      fact("Balance at the grid", num(s.grid.balance));
    }
    fact("Outbox waiting", num(s.outbox_pending));
    if (s.registrations) {
      fact("Channel messages read", num(s.registrations.messages_read));
      fact("Channel messages dropped", num(s.registrations.messages_dropped));
      fact("Commands rejected", num(s.registrations.commands_rejected));
    }
    w.replaceChildren(...facts);
  },
  ticks(all) {
    const range = Number($("range").value);
    let shown = all;
    if (range === 60) shown = all.slice(0, 60);
    else if (all.length) shown = all.filter((t) => t.at_ms >= all[0].at_ms - range);
    const asc = shown.slice().reverse();
    const times = asc.map((t) => t.at_ms);
    chart($("energy-chart"), times, [
      { name: "used", cls: "used", values: asc.map((t) => t.usage_wh) },
      { name: "produced", cls: "output", values: asc.map((t) => t.output_wh) },
    ]);
    chart($("money-chart"), times, [
      { name: "requested", cls: "requested", values: asc.map((t) => t.requested) },
      { name: "paid out", cls: "paid", values: asc.map((t) => t.paid_out) },
    ]);
    fill($("ticks").tBodies[0], all.slice(0, 20).map((t) => el("tr", { class: t.ended },
      el("td", {}, t.tick || "—"), el("td", {}, when(t.at_ms)), el("td", {}, `${(t.duration_us / 1000).toFixed(2)} ms`),
      el("td", {}, num(t.fuel)), el("td", {}, t.ended), el("td", {}, el("code", {}, short(t.strategy))),
      el("td", {}, num(t.usage_wh)), el("td", {}, num(t.output_wh)), el("td", {}, num(t.requested)), el("td", {}, num(t.paid_out)),
    )), "No tick since this host started.");
    fill($("failed").tBodies[0], all.filter((t) => t.ended !== "decided").slice(0, 20).map((t) => el("tr", {},
      el("td", {}, t.tick || "—"), el("td", {}, when(t.at_ms)), el("td", {}, el("code", {}, short(t.strategy))), el("td", {}, t.why || ""),
    )), "None.");
  },
  async registrations() {
    const kind = $("reg-kind").value;
    const q = $("reg-q").value.trim();
    const after = this.cursors[this.page];
    const params = new URLSearchParams({ limit: "25", kind });
    if (q) params.set("q", q);
    if (after) params.set("after", after);
    const page = await api("GET", `/registrations?${params}`);
    this.cursors[this.page + 1] = page.next;
    const consumer = kind === "consumer";
    const producer = kind === "producer";
    const head = ["Id", "#", consumer ? "Used Wh" : null, consumer ? "Billed Wh" : null, consumer ? "Requested" : null, consumer ? "Paid" : null, consumer ? "Outstanding" : null,
      producer ? "Output Wh" : null, producer ? "Paid out" : null, producer ? "Share of payouts" : null, "Balance", "Read", "Dropped", "State"].filter((h) => h !== null);
    $("registrations").tHead.replaceChildren(el("tr", {}, head.map((h) => el("th", {}, h))));
    fill($("registrations").tBodies[0], page.registrations.map((r) => el("tr", {},
      el("td", {}, r.id), el("td", {}, r.index),
      consumer ? [el("td", {}, num(r.used_wh)), el("td", {}, num(r.billed_wh)), el("td", {}, num(r.requested)), el("td", {}, num(r.paid)), el("td", {}, num(r.outstanding))] : [],
      producer ? [el("td", {}, num(r.output_wh)), el("td", {}, num(r.paid_out)), el("td", {}, `${(r.share_bp / 100).toFixed(2)} %`)] : [],
      el("td", {}, num(r.balance)), el("td", {}, num(r.read)), el("td", {}, num(r.dropped)), el("td", {}, r.closed ? "left" : "open"),
    )), "No registration matches.");
    $("reg-page").textContent = `page ${this.page + 1}`;
    $("reg-prev").disabled = this.page === 0;
    $("reg-next").disabled = !page.next;
  },
  start() {
    this.kinds = document.body.dataset.kind === "grid" ? ["consumer", "producer"] : ["source"];
    $("reg-kind").replaceChildren(...this.kinds.map((k) => el("option", { value: k }, `${k}s`)));
    const again = () => { this.cursors = [null]; this.page = 0; this.registrations().catch((e) => notice(e.message, true)); };
    $("registrations-filter").addEventListener("submit", (e) => { e.preventDefault(); again(); });
    $("reg-kind").addEventListener("change", again);
    $("reg-next").addEventListener("click", () => { this.page += 1; this.registrations().catch((e) => notice(e.message, true)); });
    $("reg-prev").addEventListener("click", () => { this.page = Math.max(0, this.page - 1); this.registrations().catch((e) => notice(e.message, true)); });
    $("range").addEventListener("change", () => this.refresh());
    again();
    live(() => this.refresh());
    live(() => this.registrations(), 10000);
  },
};

// Runs `fn` now and every `ms` while the page is shown.
function live(fn, ms = 2000) {
  const run = () => fn().catch((e) => notice(e.message, true));
  run();
  setInterval(() => { if (!document.hidden) run(); }, ms);
}

// ---- Strategies ----

function effectTable(dry) {
  const rows = [];
  const keys = new Set([...Object.keys(dry.candidate || {}), ...Object.keys(dry.live || {})]);
  for (const k of keys) {
    const show = (v) => (v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : num(v));
    rows.push(el("tr", {}, el("td", {}, k), el("td", {}, show(dry.live && dry.live[k])), el("td", {}, show(dry.candidate[k]))));
  }
  return el("table", { class: "dry-run" }, el("thead", {}, el("tr", {}, el("th", {}, `Tick ${dry.tick}`), el("th", {}, "live version"), el("th", {}, "candidate"))), el("tbody", {}, rows));
}

// The recent ticks' bills, the candidate's against the live version's.
function historyOf(h) {
  const facts = [];
  for (const [k, v] of Object.entries(h)) {
    if (v === null || typeof v === "object") continue;
    facts.push(el("dt", {}, k.replace(/_/g, " ")), el("dd", {}, typeof v === "number" ? num(v) : String(v)));
  }
  if (h.refused && h.refused.length) facts.push(el("dt", {}, "refused"), el("dd", { class: "error" }, h.refused.join("; ")));
  const rows = (h.consumers || []).slice(0, 20);
  const keys = rows.length ? Object.keys(rows[0]).filter((k) => typeof rows[0][k] !== "object") : [];
  return el("div", { class: "history" },
    el("h4", {}, `Over the last ${h.ticks} recorded ticks`),
    el("dl", { class: "facts" }, facts),
    rows.length ? el("table", { class: "dry-run-consumers" },
      el("thead", {}, el("tr", {}, keys.map((k) => el("th", {}, k.replace(/_/g, " "))))),
      el("tbody", {}, rows.map((r) => el("tr", {}, keys.map((k) => el("td", {}, typeof r[k] === "number" ? num(r[k]) : String(r[k]))))))) : null);
}

const strategies = {
  kind: document.body.dataset.kind,
  versions: [],
  async refresh() {
    const s = await api("GET", "/strategies");
    const activeSha = s.active[this.kind];
    this.versions = s.versions;
    const v = s.versions.find((x) => x.sha256 === activeSha);
    const since = s.history.slice().reverse().find((h) => h.sha256 === activeSha);
    const facts = [];
    const fact = (k, val) => facts.push(el("dt", {}, k), el("dd", {}, val));
    fact("Version", v ? (v.name || "(no name)") : "");
    fact("SHA-256", el("code", {}, activeSha || ""));
    if (v) { fact("World", v.world); fact("Size", `${num(v.size)} bytes`); }
    if (since) fact("Active since", `${when(since.at_ms)} (${since.reason})`);
    $("active").replaceChildren(...facts);
    const previous = s.history.length > 1 ? s.history[s.history.length - 2] : null;
    fill($("versions").tBodies[0], s.versions.slice().sort((a, b) => b.added_ms - a.added_ms).map((x) => {
      const isActive = x.sha256 === activeSha;
      const buttons = [];
      if (!isActive) {
        buttons.push(el("button", { class: "deploy", onclick: () => this.activate(x.sha256, "Activate") }, "Activate"));
        if (previous && previous.sha256 === x.sha256) buttons.push(el("button", { class: "deploy", onclick: () => this.activate(x.sha256, "Roll back") }, "Roll back"));
        buttons.push(el("button", { class: "deploy danger", onclick: () => this.remove(x.sha256) }, "Delete"));
      }
      return el("tr", { class: isActive ? "active" : "" },
        el("td", {}, x.name || "", isActive ? el("span", { class: "badge" }, "active") : null), el("td", {}, el("code", { title: x.sha256 }, short(x.sha256))),
        el("td", {}, x.world), el("td", {}, num(x.size)), el("td", {}, when(x.added_ms)), el("td", {}, x.notes || ""), el("td", { class: "actions" }, buttons));
    }), "No version.");
    fill($("history").tBodies[0], s.history.slice().reverse().slice(0, 50).map((h) => {
      const named = s.versions.find((x) => x.sha256 === h.sha256);
      return el("tr", {}, el("td", {}, h.number), el("td", {}, named && named.name ? named.name : "", " ", el("code", {}, short(h.sha256))), el("td", {}, when(h.at_ms)), el("td", {}, h.reason));
    }));
    if (this.kind === "grid") await this.shadow();
  },
  async activate(sha, what) {
    const out = await act(what, () => api("POST", `/strategies/${this.kind}/activate/${sha}`));
    if (out && out.dry_run) this.showDryRun(out);
    await this.refresh();
  },
  async remove(sha) {
    if (!confirm(`Delete version ${short(sha)}?`)) return;
    await act("Delete", () => api("DELETE", `/strategies/${this.kind}/${sha}`));
    await this.refresh();
  },
  showDryRun(out) {
    const box = $("dry-run");
    const parts = [el("h3", {}, `Dry run of ${out.version.name || short(out.version.sha256)}`)];
    if (!out.dry_run) parts.push(el("p", {}, "No recorded tick yet: nothing to compare on."));
    else {
      parts.push(effectTable(out.dry_run));
      parts.push(el("p", {}, `Fuel ${num(out.dry_run.fuel)}, ${num(out.dry_run.elapsed_us)} µs.`));
      const h = out.dry_run.history;
      if (h) parts.push(historyOf(h));
    }
    if (out.waiting) parts.push(el("p", { class: "error" }, out.waiting));
    if (!out.activated) parts.push(el("button", { class: "deploy", id: "activate-uploaded", onclick: () => this.activate(out.version.sha256, "Activate") }, "Activate this version"));
    else parts.push(el("p", { class: "ok" }, "Active."));
    box.replaceChildren(...parts);
    box.hidden = false;
  },
  async upload(e) {
    e.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const params = new URLSearchParams({ activate: "false" });
    if ($("upload-name").value) params.set("name", $("upload-name").value);
    if ($("upload-notes").value) params.set("notes", $("upload-notes").value);
    const body = await file.arrayBuffer();
    const out = await act("Upload", () => api("PUT", `/strategies/${this.kind}?${params}`, body, "application/wasm"));
    if (out) this.showDryRun(out);
    await this.refresh();
  },
  async shadow() {
    let s = null;
    try { s = await api("GET", "/strategies/grid/shadow"); } catch (_) { s = null; }
    const box = $("shadow");
    if (!s) box.replaceChildren(el("p", {}, "No shadow run yet."));
    else {
      const st = s.stats;
      const named = this.versions.find((x) => x.sha256 === s.version);
      const facts = [];
      const fact = (k, v) => facts.push(el("dt", {}, k), el("dd", {}, v));
      fact("Candidate", named && named.name ? `${named.name} (${short(s.version)})` : short(s.version));
      fact("Since", when(s.since_ms));
      fact("State", s.stopped ? `stopped: ${s.stopped}` : "running");
      fact("Ticks compared", num(st.ticks));
      fact("Ticks that differ", num(st.ticks_diverged));
      fact("Consumer bills that differ", num(st.consumer_ticks_diverged));
      fact("Largest difference in one bill", num(st.largest_bill_difference));
      const rows = [["requests", "Payment requests"], ["requested", "Tokens requested"], ["billed_wh", "Wh billed"], ["paid_out", "Paid out"]]
        .map(([k, label]) => el("tr", {}, el("td", {}, label), el("td", {}, num(st.active[k])), el("td", {}, num(st.candidate[k]))));
      box.replaceChildren(el("dl", { class: "facts", id: "shadow-facts" }, facts),
        el("table", { id: "shadow-totals" }, el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "active version"), el("th", {}, "candidate"))), el("tbody", {}, rows)),
        s.stopped ? null : el("button", { class: "deploy", id: "shadow-stop", onclick: async () => { await act("Stop shadow run", () => api("DELETE", "/strategies/grid/shadow")); this.refresh(); } }, "Stop shadow run"));
    }
    const sel = $("shadow-version");
    const keep = sel.value;
    sel.replaceChildren(...this.versions.map((x) => el("option", { value: x.sha256 }, x.name || short(x.sha256))));
    if (keep) sel.value = keep;
  },
  start() {
    $("upload").addEventListener("submit", (e) => this.upload(e));
    if (this.kind === "grid") {
      $("shadow-start").addEventListener("submit", async (e) => {
        e.preventDefault();
        await act("Start shadow run", () => api("POST", "/strategies/grid/shadow", { version: $("shadow-version").value }));
        this.refresh();
      });
    }
    live(() => this.refresh(), 5000);
  },
};

// ---- Experiments ----

const experiments = {
  versions: [],
  variantRow(name, version, weight) {
    const sel = el("select", { class: "variant-version", "aria-label": "Version" }, this.versions.map((x) => el("option", { value: x.sha256 }, x.name || short(x.sha256))));
    if (version) sel.value = version;
    return el("tr", {}, el("td", {}, el("input", { class: "variant-name", value: name, "aria-label": "Variant name", required: true })), el("td", {}, sel), el("td", {}, el("input", { class: "variant-weight", type: "number", min: 1, value: weight, "aria-label": "Weight" })));
  },
  async refresh() {
    const list = await api("GET", "/experiments");
    fill($("experiments").tBodies[0], list.slice().reverse().map((x) => {
      const status = Object.keys(x.status === null || typeof x.status !== "object" ? { [x.status]: 1 } : x.status)[0];
      const live = status === "scheduled" || status === "running";
      return el("tr", {},
        el("td", {}, x.id), el("td", {}, status, x.status.promoted ? ` (${x.status.promoted.variant})` : ""),
        el("td", {}, x.variants.map((v) => `${v.name}×${v.weight}`).join(", ")), el("td", {}, when(x.start_ms)),
        el("td", { class: "actions" },
          el("button", { onclick: () => this.report(x.id) }, "Report"),
          live ? el("button", { class: "deploy", onclick: async () => { await act("Stop", () => api("POST", `/experiments/${x.id}/stop`)); this.refresh(); } }, "Stop") : null,
          live ? x.variants.map((v) => el("button", { class: "deploy", onclick: async () => { await act(`Promote ${v.name}`, () => api("POST", `/experiments/${x.id}/promote/${encodeURIComponent(v.name)}`)); this.refresh(); } }, `Promote ${v.name}`)) : null));
    }), "No experiment yet.");
    if (this.shown) await this.report(this.shown);
  },
  async report(id) {
    this.shown = id;
    const r = await api("GET", `/experiments/${encodeURIComponent(id)}/report`);
    $("report").hidden = false;
    $("report-id").textContent = id;
    $("report-page").href = `/experiments/${encodeURIComponent(id)}/report.html`;
    const variants = r.variants || [];
    const cols = [
      ["name", "Variant"], ["version", "Version"], ["consumers", "Consumers"], ["usage_wh", "Used Wh"],
      ["billed_wh", "Billed Wh"], ["requested", "Requested"], ["collected", "Collected"],
      ["price_per_kwh", "Price / kWh"], ["collection_rate", "Collected share"], ["producer_payouts", "Payouts"], ["margin", "Margin"],
    ];
    const cell = (k, v) => k === "version" ? el("code", { title: v }, short(v))
      : k === "collection_rate" ? `${(100 * v).toFixed(1)} %`
      : k === "price_per_kwh" ? Number(v).toFixed(2) : typeof v === "number" ? num(v) : String(v);
    $("report-body").replaceChildren(
      el("p", { class: "hint" }, `${num(r.ticks)} ticks; each variant on its own cohort (what its consumers were billed).`),
      el("div", { class: "scroll" }, el("table", { id: "report-table" },
        el("thead", {}, el("tr", {}, cols.map(([, h]) => el("th", {}, h)))),
        el("tbody", {}, variants.map((v) => el("tr", {}, cols.map(([k]) => el("td", {}, cell(k, v[k])))))))),
      bars(variants.map((v) => [v.name, v.price_per_kwh || 0]), "Tokens asked per kWh billed"),
      bars(variants.map((v) => [v.name, v.consumers ? v.collected / v.consumers : 0]), "Tokens collected per consumer"));
  },
  async start() {
    const s = await api("GET", "/strategies");
    this.versions = s.versions;
    const active = s.active.grid;
    const other = s.versions.find((x) => x.sha256 !== active);
    const body = $("variants").tBodies[0];
    body.append(this.variantRow("control", active, 1), this.variantRow("candidate", other && other.sha256, 1));
    $("add-variant").addEventListener("click", () => body.append(this.variantRow(`v${body.rows.length + 1}`, active, 1)));
    $("experiment").addEventListener("submit", async (e) => {
      e.preventDefault();
      const variants = [...body.rows].map((row) => ({
        name: row.querySelector(".variant-name").value,
        version: row.querySelector(".variant-version").value,
        weight: Number(row.querySelector(".variant-weight").value),
      }));
      const req = { variants };
      if ($("exp-id").value) req.id = $("exp-id").value;
      if ($("exp-notes").value) req.notes = $("exp-notes").value;
      const out = await act("Start experiment", () => api("POST", "/experiments", req));
      if (out) { this.shown = out.id; await this.refresh(); }
    });
    live(() => this.refresh(), 3000);
  },
};

// ---- Admissions ----

const admissions = {
  async refresh() {
    const p = await api("GET", "/admissions/pending");
    const answer = (id, verdict) => async () => {
      await act(`${verdict === "approve" ? "Approve" : "Refuse"} ${id}`, () => api("POST", `/admissions/pending/${encodeURIComponent(id)}/${verdict}`));
      this.refresh();
    };
    fill($("pending").tBodies[0], p.pending.map((w) => el("tr", {}, el("td", {}, w.id), el("td", {}, w.kind),
      el("td", {}, el("code", { title: w.author }, short(w.author))), el("td", {}, when(w.asked_ms)),
      el("td", { class: "actions admit-action" }, el("button", { onclick: answer(w.id, "approve") }, "Approve"), el("button", { class: "danger", onclick: answer(w.id, "refuse") }, "Refuse")))), "Nobody waits.");
    const a = await api("GET", "/admissions");
    fill($("admissions").tBodies[0], a.admissions.map((g) => el("tr", {}, el("td", {}, el("code", {}, g.hash)), el("td", {}, g.kind), el("td", {}, g.id || "any"), el("td", {}, num(g.uses)), el("td", {}, when(g.issued_ms)))), "None.");
  },
  start() {
    const kinds = document.body.dataset.kind === "grid" ? ["consumer", "producer"] : ["source"];
    $("admit-kind").replaceChildren(...kinds.map((k) => el("option", { value: k }, k)));
    $("admit").addEventListener("submit", async (e) => {
      e.preventDefault();
      const req = { kind: $("admit-kind").value, uses: Number($("admit-uses").value) };
      if ($("admit-id").value) req.id = $("admit-id").value;
      const out = await act("Issue admission token", () => api("POST", "/admissions", req));
      if (out) {
        const p = $("admit-token");
        p.replaceChildren("Token (shown once): ", el("code", {}, out.token));
        p.hidden = false;
        this.refresh();
      }
    });
    live(() => this.refresh(), 5000);
  },
};

// What the signed-in token may do decides which controls show.
async function main() {
  const me = await api("GET", "/console/session");
  document.body.classList.toggle("may-deploy", me.deploy && me.leading);
  document.body.classList.toggle("may-admit", me.admit);
  if (!me.leading) notice("This host is a standby: changes go to the leader.");
  const path = location.pathname.replace(/\/$/, "");
  const page = { "/console": overview, "/console/strategies": strategies, "/console/experiments": experiments, "/console/admissions": admissions }[path];
  if (page) await page.start();
}

main().catch((e) => notice(e.message, true));
