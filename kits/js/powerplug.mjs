// Powerplug's JavaScript kit: what a strategy would otherwise copy from one to
// the next, with the same rules as the Rust SDK's (powerplug_sdk::{config,
// cell, time, payout, testing}):
//
// - Config: settings as text, unsigned or signed integers, booleans;
// - Cell and Cells: a cell's four words as named fields, narrower than a word
//   where you like;
// - local(): the hour, minute, weekday and day of a tick at an offset from UTC;
// - Books and Rules: the grid's money (income split on running totals, payouts
//   in quanta by output share, departed producers, the metrics `powerplug demo`
//   checks);
// - GridHarness and ProducerHarness: run the strategy natively tick after tick
//   as the host would, and refuse what the host would refuse.
//
// Import it from the strategy (`import { Config, … } from './kit/js/powerplug.mjs'`):
// componentize-qjs resolves it when it builds the component.
//
// Numbers: componentize-qjs hands a WIT u64 over as a JS number, exact up to
// 2^53 - 1. So a JS cell packs at most 53 bits per word, its widest field is
// "u53", and every amount that leaves is checked to be a safe integer: a
// fraction or a rounded number refuses the tick instead of being truncated.

export const MINUTE_MS = 60_000;
export const HOUR_MS = 60 * MINUTE_MS;
export const DAY_MS = 24 * HOUR_MS;

/** `n` if it is an integer from 0 to 2^53 - 1; otherwise the tick is refused. */
export function exact(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) throw `${what}: ${n} is not an integer from 0 to 2^53 - 1`;
  return n;
}

// --- settings ---------------------------------------------------------------

/** A strategy's settings; the last entry of a key wins. Every getter refuses
 * the tick with the key's name when the value is not what it says. */
export class Config {
  constructor(settings) {
    this.values = {};
    for (const { key, value } of settings) this.values[key] = value;
  }

  text(key, fallback) {
    return this.values[key] ?? fallback;
  }

  uint(key, fallback) {
    return this.#number(key, fallback, /^\s*\+?\d+\s*$/, 'an unsigned integer');
  }

  int(key, fallback) {
    return this.#number(key, fallback, /^\s*[-+]?\d+\s*$/, 'an integer');
  }

  bool(key, fallback) {
    const value = this.values[key];
    if (value === undefined) return fallback;
    if (value.trim() === 'true' || value.trim() === 'false') return value.trim() === 'true';
    throw `config \`${key}\`: expected true or false, got ${JSON.stringify(value)}`;
  }

  #number(key, fallback, pattern, expected) {
    const value = this.values[key];
    if (value === undefined) return fallback;
    const n = Number(value);
    if (pattern.test(value) && Number.isSafeInteger(n)) return n;
    throw `config \`${key}\`: expected ${expected} (at most 2^53 - 1 in JavaScript), got ${JSON.stringify(value)}`;
  }
}

// --- typed cells ------------------------------------------------------------

const WIDTHS = {
  bool: [1, false], u8: [8, false], u16: [16, false], u32: [32, false], u53: [53, false],
  i8: [8, true], i16: [16, true], i32: [32, true],
};
const WORD_BITS = 53;

/** [name, word, shift, bits, signed, kind] of each field: fields fill a word in
 * order; one that does not fit in the rest of a word (53 bits) starts the next. */
export function layout(fields) {
  const at = [];
  let [word, used] = [0, 0];
  for (const [name, kind] of Object.entries(fields)) {
    if (!(kind in WIDTHS)) throw new TypeError(`cell field \`${name}\`: ${kind} is not one of ${Object.keys(WIDTHS).join(', ')}`);
    const [bits, signed] = WIDTHS[kind];
    if (used + bits > WORD_BITS) [word, used] = [word + 1, 0];
    at.push([name, word, used, bits, signed, kind]);
    used += bits;
  }
  if (word >= 4) throw new TypeError("cell: the fields need more than a cell's four words");
  return at;
}

/** A cell as named fields. Extend it with `static fields`, in order:
 *
 *     class Consumer extends Cell {
 *       static fields = { usedWh: 'u53', billedWh: 'u53', tier: 'u8', loyal: 'bool' };
 *     }
 *
 * The layout is the books format: reorder or resize a field and you change
 * what the words mean (bump the version in build.sh). */
export class Cell {
  static fields = {};

  /** Per field, what reading and writing it takes, worked out once per class.
   * (Index loops over plain objects: QuickJS spends several times the fuel on
   * destructuring and `for … of`.) */
  static plan() {
    if (!Object.hasOwn(this, 'planned')) {
      this.planned = layout(this.fields).map(([name, word, shift, bits, signed, kind]) => ({
        name, word, kind, mul: 2 ** shift, mod: 2 ** bits, bool: kind === 'bool',
        half: signed ? 2 ** (bits - 1) : 0,
        low: signed ? -(2 ** (bits - 1)) : 0, high: signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1,
      }));
    }
    return this.planned;
  }

  constructor(words = [0, 0, 0, 0]) {
    const plan = this.constructor.plan();
    for (let i = 0; i < plan.length; i++) {
      const f = plan[i];
      let value = Math.floor(words[f.word] / f.mul) % f.mod;
      if (f.half && value >= f.half) value -= f.mod;
      this[f.name] = f.bool ? value === 1 : value;
    }
  }

  /** The four words; a value out of its field's range refuses the tick. */
  words() {
    const words = [0, 0, 0, 0];
    const plan = this.constructor.plan();
    for (let i = 0; i < plan.length; i++) {
      const f = plan[i];
      let value = this[f.name];
      if (f.bool) value = value === true ? 1 : value === false ? 0 : NaN;
      if (!Number.isInteger(value) || value < f.low || value > f.high) {
        throw `cell field \`${f.name}\` (${f.kind}): ${this[f.name]} is out of range`;
      }
      words[f.word] += (value < 0 ? value + f.mod : value) * f.mul;
    }
    return words;
  }
}

/** The cells of one tick: the ones the host sent (every entity the input
 * mentions) and any the strategy adds. `batch()` gives back the changed ones. */
export class Cells {
  constructor({ entity, words }) {
    if (words.length !== 4 * entity.length) {
      throw `cells: ${entity.length} entities need ${4 * entity.length} words, got ${words.length}`;
    }
    this.cells = {};
    for (let i = 0; i < entity.length; i++) this.cells[entity[i]] = words.slice(4 * i, 4 * i + 4);
    this.changed = {};
  }

  /** The entity's cell as `kind` (a Cell class), or its raw words. */
  get(entity, kind) {
    const words = this.cells[entity] ?? [0, 0, 0, 0];
    return kind ? new kind(words) : words.slice();
  }

  put(entity, cell) {
    const words = cell instanceof Cell ? cell.words() : cell.map((w) => exact(w, 'cell word'));
    const old = this.cells[entity];
    if (!old || old[0] !== words[0] || old[1] !== words[1] || old[2] !== words[2] || old[3] !== words[3]) {
      this.cells[entity] = words;
      this.changed[entity] = true;
    }
  }

  /** The changed cells, sorted by entity (integer keys come in ascending order). */
  batch() {
    const out = { entity: [], words: [] };
    for (const key of Object.keys(this.changed)) {
      out.entity.push(Number(key));
      out.words.push(...this.cells[key]);
    }
    return out;
  }
}

// --- time -------------------------------------------------------------------

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

/** `nowMs` (UTC, as in a tick's input) at `offsetMinutes` from UTC (60 for
 * UTC+1, -300 for UTC-5): `day` (local days since 1970-01-01, the same all day
 * long), `weekday` ('mon' … 'sun'), `hour`, `minute`, `isWeekend`. */
export function local(nowMs, offsetMinutes = 0) {
  const localMs = nowMs + offsetMinutes * MINUTE_MS;
  const day = Math.floor(localMs / DAY_MS);
  const inDay = localMs - day * DAY_MS;
  const weekday = WEEKDAYS[(((day + 3) % 7) + 7) % 7]; // 1970-01-01 was a Thursday
  return {
    day, weekday, hour: Math.floor(inDay / HOUR_MS), minute: Math.floor(inDay / MINUTE_MS) % 60,
    isWeekend: weekday === 'sat' || weekday === 'sun',
  };
}

// --- the grid's money -------------------------------------------------------

/** Producers get `part` of every `of` tokens consumers pay; it is paid out in
 * whole `quantum`s, at most once per `intervalMs`. */
export class Rules {
  constructor(part, of, quantum = 40, intervalMs = 10_000) {
    if (!(of > 0 && part >= 0 && part <= of)) throw `a share of ${part} in ${of}: must be at most the whole, of a whole of at least 1`;
    if (!(quantum >= 1)) throw 'config `payout-quantum`: must be at least 1';
    Object.assign(this, { part, of, quantum, intervalMs });
  }

  /** Reads `payout-quantum` (40) and `payout-interval-ms` (10,000). */
  static fromConfig(config, part, of) {
    return new Rules(part, of, config.uint('payout-quantum', 40), config.uint('payout-interval-ms', 10_000));
  }

  producersPart(amount) {
    return mulDiv(amount, this.part, this.of);
  }
}

/** floor(a * b / c), exact (in BigInt) and checked to fit a safe integer. */
export function mulDiv(a, b, c) {
  const [x, y, z] = [exact(a, 'amount'), exact(b, 'amount'), exact(c, 'amount')];
  return exact(Number((BigInt(x) * BigInt(y)) / BigInt(z)), 'amount');
}

const BOOKS = ['income', 'available', 'runningCostsRequested', 'lastPayoutMs', 'producersReceived'];

/** The grid's money books, kept in the strategy's state (`dump()` gives an
 * object for JSON, `new Books(thatObject)` reads it back). */
export class Books {
  constructor(saved = {}) {
    for (const key of BOOKS) this[key] = exact(saved[key] ?? 0, `state: books.${key}`);
    // producer index -> [output Wh, owed (paid out by decision), received (confirmed)]
    this.producers = {};
    for (const [p, ...totals] of saved.producers ?? []) this.producers[p] = totals.map((t) => exact(t, 'state: books.producers'));
  }

  dump() {
    const books = {};
    for (const key of BOOKS) books[key] = this[key];
    books.producers = Object.keys(this.producers).map((p) => [Number(p), ...this.producers[p]]);
    return books;
  }

  /** Books the running costs' part of the tokens a tick's bills request. */
  requested(rules, requested) {
    this.runningCostsRequested = exact(this.runningCostsRequested + requested - rules.producersPart(requested), 'running costs');
  }

  /** The rest of a grid tick: forgets producers that left, adds their output,
   * takes the confirmed transfers (calling `paid(consumer, amount)` for each
   * consumer's payment), splits the new income, pays out when due. Returns
   * { payouts, metrics }: the metrics `income`, `paid-out`, `available`,
   * `running-costs-received`. */
  settle(rules, input, paid) {
    for (const index of input.left) delete this.producers[index];
    for (const o of input.output) {
      const totals = (this.producers[o.producer] ??= [0, 0, 0]);
      totals[0] = exact(totals[0] + o.wh, 'output Wh');
    }
    const before = this.income;
    for (const t of input.transfers) {
      if (t.incoming) {
        this.income = exact(this.income + t.amount, 'income');
        if (t.entity !== undefined && t.entity !== null && paid) paid(t.entity, t.amount);
      } else if (t.entity in this.producers) {
        // One that left is forgotten: a late confirmation must not bring it back.
        this.producers[t.entity][2] += t.amount;
      }
    }
    const share = rules.producersPart(this.income) - rules.producersPart(before);
    this.available += share;
    this.producersReceived += share;

    const payouts = [];
    if (input.nowMs - this.lastPayoutMs >= rules.intervalMs) {
      this.lastPayoutMs = input.nowMs;
      const distribution = Math.floor(this.available / rules.quantum) * rules.quantum;
      let total = 0;
      for (const p in this.producers) total += this.producers[p][0];
      if (distribution > 0 && total > 0) {
        for (const p in this.producers) {
          const amount = mulDiv(distribution, this.producers[p][0], total);
          if (amount > 0) {
            this.producers[p][1] += amount;
            payouts.push({ producer: Number(p), amount });
          }
        }
      }
    }
    let paidOut = 0;
    for (const p of payouts) paidOut += p.amount;
    this.available -= paidOut;
    return {
      payouts,
      metrics: [
        { name: 'income', value: this.income - before },
        { name: 'paid-out', value: paidOut },
        { name: 'available', value: this.available },
        { name: 'running-costs-received', value: this.income - this.producersReceived },
      ],
    };
  }
}

// --- native tests: the host's rules -----------------------------------------

export const START_MS = Date.UTC(2026, 0, 1); // where a harness's clock starts
export const MAX_WH = 1_000_000_000; // the most one output report may claim (1 GWh)
export const MAX_PRICE = 1_000_000_000_000; // the highest price it may ask

/** A decision the host would refuse: the tick fails and nothing is applied. */
export class HostRefused extends Error {}

const U32_FIELDS = ['consumer', 'producer', 'entity', 'source', 'index'];

/** Every number of a decision as the component would hand it over: integers
 * only (componentize-qjs truncates 4.5 to 4 without a word), exact (a safe
 * integer), indices u32, metric values signed, every other number from 0. */
export function checkTypes(value, path = 'decision') {
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    if (ArrayBuffer.isView(value)) return;
    value.forEach((item, i) => checkTypes(item, `${path}[${i}]`));
  } else if (typeof value === 'object' && value !== null) {
    for (const key of Object.keys(value)) checkTypes(value[key], `${path}.${key}`);
  } else if (typeof value === 'number') {
    const field = path.split('.').pop().split('[')[0];
    if (!Number.isSafeInteger(value)) throw new HostRefused(`${path}: ${value} is not an exact integer: the component would send ${Math.trunc(value)} or a rounded number`);
    const signed = path.startsWith('decision.metrics');
    if (!signed && value < 0) throw new HostRefused(`${path}: ${value} is negative: the component would trap`);
    if (U32_FIELDS.includes(field) && value > 2 ** 32 - 1) throw new HostRefused(`${path}: ${value} does not fit a u32`);
  } else if (typeof value !== 'string' && value !== undefined) {
    throw new HostRefused(`${path}: ${String(value)} is not a number`);
  }
}

function total(values, what) {
  let sum = 0n;
  for (const v of values) sum += BigInt(v);
  if (sum > 2n ** 64n - 1n) throw new HostRefused(`${what} add up to more than 2^64 - 1`);
  return Number(sum);
}

/** What both harnesses keep: the clock, settings, entities, state and cells. */
class Host {
  constructor(strategy, stepMs, config) {
    Object.assign(this, { strategy, stepMs, nowMs: START_MS, nextIndex: 0 });
    this.config = Object.entries(config ?? {}).map(([key, value]) => ({ key, value }));
    this.state = new Uint8Array();
    this.cells = new Map();
    this.kinds = new Map();
    this.joined = [];
    this.left = [];
    this.transfers = [];
  }

  join(kind) {
    const index = this.nextIndex++;
    this.kinds.set(index, kind);
    this.joined.push({ index, kind, id: `${kind}-${index}` });
    return index;
  }

  leave(index) {
    if (this.kinds.delete(index)) this.left.push(index);
  }

  transfer(entity, amount, incoming) {
    this.transfers.push({ entity, amount, atMs: this.nowMs, incoming });
  }

  /** The next tick's input but its readings: the cells are those of the
   * `mentioned` entities and of the transfers' counterparties. */
  input(mentioned) {
    this.nowMs += this.stepMs;
    for (const t of this.transfers) if (t.entity !== undefined) mentioned.push(t.entity);
    const entity = [...new Set(mentioned)].sort((a, b) => a - b);
    const cells = { entity, words: entity.flatMap((e) => this.cells.get(e) ?? [0, 0, 0, 0]) };
    const { nowMs, config, state, joined, left, transfers } = this;
    return { nowMs, config, state, joined, left, cells, transfers };
  }

  check(decision) {
    checkTypes(decision);
    const { entity, words } = decision.cells;
    if (words.length !== 4 * entity.length) throw new HostRefused(`cells: ${entity.length} entities but ${words.length} words`);
  }

  apply(decision) {
    this.state = decision.state;
    const { entity, words } = decision.cells;
    entity.forEach((e, i) => this.cells.set(e, words.slice(4 * i, 4 * i + 4)));
    this.joined = [];
    this.left = [];
    this.transfers = [];
  }

  /** The entity's stored cell as `kind` (a Cell class), or its raw words. */
  cell(entity, kind) {
    const words = this.cells.get(entity) ?? [0, 0, 0, 0];
    return kind ? new kind(words) : words.slice();
  }
}

/** Runs a grid strategy (the module's exported `grid`) tick after tick, every
 * `stepMs` from START_MS, as the host would: state and cells carried over,
 * each input holding the cells of the entities it mentions, and each decision
 * held to the host's rules (HostRefused: nothing is applied and the news
 * waits). Consumers pay their bills at the next tick unless `paysBills` is
 * false; payouts are confirmed at the next tick. */
export class GridHarness extends Host {
  constructor(grid, config, stepMs = 15_000) {
    super(grid, stepMs, config);
    Object.assign(this, { usages: [], outputs: [], energy: new Map(), funds: 0, paysBills: true });
  }

  consumer() {
    return this.join('consumer');
  }

  producer() {
    return this.join('producer');
  }

  /** `consumer` used `wh` in the step before the next tick. */
  usage(consumer, wh) {
    this.usages.push({ consumer, startMs: this.nowMs, endMs: this.nowMs + this.stepMs, wh });
  }

  /** `producer` delivered `wh` in the step before the next tick, asking `price`. */
  output(producer, wh, price) {
    this.outputs.push({ producer, startMs: this.nowMs, endMs: this.nowMs + this.stepMs, wh, price });
  }

  /** `consumer` pays `amount` into the grid's wallet (confirmed at the next tick). */
  pays(consumer, amount) {
    this.funds += amount;
    this.transfer(consumer, amount, true);
  }

  tick() {
    const usage = this.usages.slice().sort((a, b) => a.consumer - b.consumer || a.startMs - b.startMs);
    const output = this.outputs.slice().sort((a, b) => a.producer - b.producer || a.startMs - b.startMs);
    const decision = this.strategy.tick({
      ...this.input([...usage.map((u) => u.consumer), ...output.map((o) => o.producer)]),
      usage: {
        consumer: usage.map((u) => u.consumer),
        startMs: usage.map((u) => u.startMs),
        endMs: usage.map((u) => u.endMs),
        wh: usage.map((u) => u.wh),
      },
      output,
    });
    const energy = this.#check(usage, decision);
    for (const [c, e] of energy) this.energy.set(c, e);
    this.apply(decision);
    this.usages = [];
    this.outputs = [];
    for (const p of decision.payouts) {
      this.funds -= p.amount;
      this.transfer(p.producer, p.amount, false);
    }
    const r = decision.paymentRequests;
    r.consumer.forEach((c, i) => {
      if (this.paysBills && r.owed[i] > 0) this.pays(c, r.owed[i]);
    });
    return decision;
  }

  #check(usage, d) {
    this.check(d);
    const r = d.paymentRequests;
    if (r.wh.length !== r.consumer.length || r.owed.length !== r.consumer.length) {
      throw new HostRefused("payment-requests: the batch's columns differ in length");
    }
    total(r.owed, 'payment-requests: the amounts owed');
    total(r.wh, 'payment-requests: the Wh billed');
    const paidOut = total(d.payouts.map((p) => p.amount), 'payouts');
    for (const p of d.payouts) {
      if (this.kinds.get(p.producer) !== 'producer') throw new HostRefused(`payout to ${p.producer}, not a producer`);
      if (p.amount === 0) throw new HostRefused(`a payout of 0 tokens to ${p.producer}`);
    }
    if (paidOut > this.funds) throw new HostRefused(`payouts of ${paidOut} tokens, but the grid's wallet holds ${this.funds}`);
    const energy = new Map();
    const of = (c) => {
      if (!energy.has(c)) energy.set(c, (this.energy.get(c) ?? [0, 0]).slice());
      return energy.get(c);
    };
    for (const u of usage) of(u.consumer)[0] += u.wh;
    r.consumer.forEach((c, i) => {
      const e = of(c);
      const kind = this.kinds.get(c);
      if (kind !== 'consumer' && !(kind === undefined && e[0] > 0)) {
        throw new HostRefused(`a payment request to entity ${c}, which is not a registered consumer`);
      }
      e[1] += r.wh[i];
      if (e[1] > e[0]) {
        throw new HostRefused(`consumer ${c} would have been billed ${e[1]} Wh in all, more than the ${e[0]} Wh it reported`);
      }
    });
    return energy;
  }
}

/** Runs a producer strategy (the module's exported `producer`) tick after tick
 * (every 60 s) as the host would. */
export class ProducerHarness extends Host {
  constructor(producer, config, stepMs = 60_000) {
    super(producer, stepMs, config);
    this.outputs = [];
  }

  source() {
    return this.join('source');
  }

  /** `source` generated `wh` in the step before the next tick. */
  output(source, wh) {
    this.outputs.push({ source, startMs: this.nowMs, endMs: this.nowMs + this.stepMs, wh });
  }

  /** The grid paid the producer `amount` (confirmed at the next tick). */
  paid(amount) {
    this.transfer(undefined, amount, true);
  }

  tick() {
    const outputs = this.outputs.slice().sort((a, b) => a.source - b.source || a.startMs - b.startMs);
    const decision = this.strategy.tick({ ...this.input(outputs.map((o) => o.source)), outputs });
    this.check(decision);
    decision.commands.forEach((c, i) => {
      if (!(c.startMs < c.endMs && c.wh <= MAX_WH && c.price <= MAX_PRICE)) {
        throw new HostRefused(
          `commands[${i}]: an output the grid refuses (${c.startMs} to ${c.endMs} ms, ${c.wh} Wh for ${c.price} tokens): ` +
            `it must start before it ends, at most ${MAX_WH} Wh for at most ${MAX_PRICE} tokens`,
        );
      }
    });
    total(decision.commands.map((c) => c.wh), 'commands: the Wh');
    total(decision.commands.map((c) => c.price), 'commands: the prices');
    this.apply(decision);
    this.outputs = [];
    return decision;
  }
}
