// Tests of the JavaScript kit's library, natively: node kits/js/test_powerplug.mjs
import assert from 'node:assert/strict';
import test from 'node:test';
import {
  Books, Cell, Cells, Config, GridHarness, HostRefused, ProducerHarness, Rules, local, MAX_WH,
} from './powerplug.mjs';

class Narrow extends Cell {
  static fields = { wh: 'u53', count: 'u32', tier: 'u8', delta: 'i8', flag: 'bool', last: 'i32' };
}

test('fields round-trip at their extremes, 53 bits to a word', () => {
  const c = new Narrow();
  Object.assign(c, { wh: 2 ** 53 - 1, count: 2 ** 32 - 1, tier: 255, delta: -128, flag: true, last: -(2 ** 31) });
  const words = c.words();
  // u32 + u8 + i8 + bool = 49 bits share word 1; the i32 would pass 53: word 2.
  assert.deepEqual(words, [2 ** 53 - 1, (2 ** 32 - 1) + 255 * 2 ** 32 + 0x80 * 2 ** 40 + 2 ** 48, 2 ** 31, 0]);
  assert.ok(words.every(Number.isSafeInteger));
  assert.deepEqual({ ...new Narrow(words) }, { ...c });
});

test('a value out of range refuses the tick, and too many fields are refused', () => {
  for (const [field, value] of [['tier', 256], ['count', -1], ['wh', 4.5], ['wh', 2 ** 53], ['flag', 1]]) {
    const c = new Narrow();
    c[field] = value;
    assert.throws(() => c.words(), new RegExp(`\`${field}\``), field);
  }
  class TooBig extends Cell {
    static fields = { a: 'u53', b: 'u53', c: 'u53', d: 'u53', e: 'bool' };
  }
  assert.throws(() => new TooBig(), /four words/);
});

test('cells give back only what changed, sorted', () => {
  const cells = new Cells({ entity: [2, 5], words: [1, 2, 3, 4, 0, 0, 0, 0] });
  cells.put(5, [0, 0, 0, 0]);
  cells.put(9, [7, 0, 0, 0]);
  cells.put(2, [1, 2, 3, 5]);
  assert.deepEqual(cells.batch(), { entity: [2, 9], words: [1, 2, 3, 5, 7, 0, 0, 0] });
});

test('settings name their key', () => {
  const config = new Config([{ key: 'a', value: ' 7 ' }, { key: 'b', value: '-3' }, { key: 'c', value: 'true' }]);
  assert.deepEqual([config.uint('a', 0), config.int('b', 0), config.bool('c', false), config.uint('x', 4)], [7, -3, true, 4]);
  assert.throws(() => config.uint('b', 0), /`b`/);
  assert.throws(() => config.bool('a', false), /`a`/);
  assert.throws(() => new Config([{ key: 'd', value: '4.5' }]).uint('d', 0), /`d`/);
});

test('local time moves the hour and the day across midnight', () => {
  const t = Date.UTC(2026, 0, 1, 0, 15); // a Thursday
  assert.deepEqual([local(t).weekday, local(t).hour, local(t).minute], ['thu', 0, 15]);
  const ny = local(t, -300);
  assert.deepEqual([ny.weekday, ny.hour, ny.day], ['wed', 19, local(t).day - 1]);
  assert.deepEqual([local(0, -60).day, local(0, -60).weekday], [-1, 'wed']);
  assert.ok(local(t + 2 * 86_400_000).isWeekend);
});

/** Bills every whole kWh at 5 (or `owed`), books by the kit. */
function flat(owed) {
  return {
    tick(input) {
      const config = new Config(input.config);
      const rules = Rules.fromConfig(config, config.uint('producers', 4), 5);
      const books = new Books(input.state.length ? JSON.parse(new TextDecoder().decode(input.state)) : {});
      const cells = new Cells(input.cells);
      const requests = { consumer: [], wh: [], owed: [] };
      input.usage.consumer.forEach((c, i) => {
        requests.consumer.push(c);
        requests.wh.push(Math.floor(input.usage.wh[i] / 1000) * 1000);
        requests.owed.push(owed ?? Math.floor(input.usage.wh[i] / 1000) * 5);
      });
      books.requested(rules, requests.wh.reduce((a, b) => a + b, 0) / 200); // 5 a kWh
      const { payouts, metrics } = books.settle(rules, input, (c, amount) => {
        const words = cells.get(c);
        words[3] += amount;
        cells.put(c, words);
      });
      const state = new TextEncoder().encode(JSON.stringify(books.dump()));
      return { state, cells: cells.batch(), paymentRequests: requests, payouts, metrics };
    },
  };
}

const books = (h) => JSON.parse(new TextDecoder().decode(h.state));

test('income is split on running totals and paid in quanta by output', () => {
  const h = new GridHarness(flat());
  h.paysBills = false;
  const [alice, sun, wind] = [h.consumer(), h.producer(), h.producer()];
  let paidOut = 0;
  for (let i = 0; i < 40; i++) {
    h.usage(alice, 600);
    h.pays(alice, 3);
    h.output(sun, 100, 9);
    h.output(wind, 300, 9);
    for (const p of h.tick().payouts) paidOut += p.amount;
    const b = books(h);
    assert.equal(b.producersReceived, Math.floor((b.income * 4) / 5));
    assert.equal(b.producersReceived, paidOut + b.available);
  }
  // The same figures as the Rust SDK's test of its payout module.
  assert.deepEqual(books(h).producers, [[1, 4_000, 20, 20], [2, 12_000, 60, 60]]);
  assert.equal(books(h).available, 96 - 80);
  assert.equal(h.cell(alice)[3], 120);
});

test('a producer that leaves is forgotten', () => {
  const h = new GridHarness(flat());
  const [alice, sun, wind] = [h.consumer(), h.producer(), h.producer()];
  for (let i = 0; i < 10; i++) {
    h.usage(alice, 10_000);
    h.output(sun, 100, 9);
    h.output(wind, 100, 9);
    h.tick();
  }
  h.leave(wind);
  h.tick(); // also confirms wind's last payout
  assert.deepEqual(books(h).producers.map((p) => p[0]), [sun]);
  h.usage(alice, 10_000);
  assert.ok(h.tick().payouts.every((p) => p.producer === sun));
});

test('what the component would truncate, round or trap on is refused natively', () => {
  for (const [owed, says] of [[4.5, /not an exact integer.*send 4/], [2 ** 53, /not an exact integer/], [-5, /negative/]]) {
    const h = new GridHarness(flat(owed));
    h.usage(h.consumer(), 1_000);
    assert.throws(() => h.tick(), (e) => e instanceof HostRefused && says.test(e.message));
    assert.equal(h.state.length, 0, 'nothing applied');
  }
});

test('a bill for more than was reported, or a report over 1 GWh, is refused', () => {
  const h = new GridHarness({
    tick: () => ({
      state: new Uint8Array(), cells: { entity: [], words: [] },
      paymentRequests: { consumer: [0], wh: [1_000], owed: [5] }, payouts: [], metrics: [],
    }),
  });
  h.usage(h.consumer(), 999);
  assert.throws(() => h.tick(), /billed 1000 Wh in all, more than the 999 Wh/);

  const p = new ProducerHarness({
    tick: (input) => ({
      state: new Uint8Array(), cells: { entity: [], words: [] },
      commands: [{ startMs: input.nowMs - 60_000, endMs: input.nowMs, wh: input.outputs.reduce((s, o) => s + o.wh, 0), price: 1 }],
      metrics: [],
    }),
  });
  const [a, b] = [p.source(), p.source()];
  p.output(a, MAX_WH);
  p.tick();
  p.output(a, MAX_WH);
  p.output(b, 1);
  assert.throws(() => p.tick(), /an output the grid refuses/);
});
