// Runs the strategy natively in Node.js on a hand-computed scenario (build.sh
// runs this before it builds the component): `node test.mjs`. The input is
// what componentize-qjs hands the strategy: camelCase records, u64 as numbers.
import assert from 'node:assert/strict';
import { register } from 'node:module';
import test from 'node:test';

// The strategy imports Powerplug's `log`; natively, its lines go to `logged`.
globalThis.logged = [];
const stub = 'export default { log: (level, message) => globalThis.logged.push([level, message]) }';
register(
  'data:text/javascript,' +
    encodeURIComponent(`export async function resolve(specifier, context, next) {
      if (specifier.startsWith('powerplug:strategy/log@')) {
        return { shortCircuit: true, url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(stub)}) };
      }
      return next(specifier, context);
    }`),
);
const { grid } = await import('./strategy.js');

const HOUR_MS = 3_600_000;
const JAN_31_23H = Date.UTC(2026, 0, 31, 23);

/** One tick's input: `cells` are [entity, words], `usage` [consumer, Wh], `output` [producer, Wh]. */
function tick(nowMs, { state = new Uint8Array(), cells = [], usage = [], output = [], transfers = [], config = [] }) {
  return grid.tick({
    nowMs,
    config: config.map(([key, value]) => ({ key, value })),
    state,
    joined: [],
    left: [],
    cells: { entity: cells.map((c) => c[0]), words: cells.flatMap((c) => c[1]) },
    usage: {
      consumer: usage.map((u) => u[0]),
      startMs: usage.map(() => nowMs - 900_000),
      endMs: usage.map(() => nowMs),
      wh: usage.map((u) => u[1]),
    },
    output: output.map(([producer, wh]) => ({ producer, startMs: 0, endMs: 1, wh, price: 0 })),
    transfers: transfers.map(([entity, amount]) => ({ entity, amount, atMs: nowMs, incoming: true })),
  });
}

const january = 2026 * 12;

test('bills each kWh at its tier, starts a new month at the first tier, pays producers their share', () => {
  // Consumer 0 is at 99 kWh this month and uses 2.7 kWh more: 1 kWh at 4, 2 at 6.
  // Consumer 1 is new and uses 501 kWh: 100 at 4, 400 at 6, 1 at 9 = 2,809.
  const first = tick(JAN_31_23H, {
    cells: [[0, [99_500, 99_000, january, 99_000]]],
    usage: [[0, 2_700], [1, 501_000]],
    output: [[5, 3_000], [6, 1_000]],
  });
  assert.deepEqual(first.paymentRequests, { consumer: [0, 1], wh: [3_000, 501_000], owed: [16, 2_809] });
  assert.deepEqual(first.cells, {
    entity: [0, 1],
    words: [102_200, 102_000, january, 102_000, 501_000, 501_000, january, 501_000],
  });
  assert.deepEqual(first.payouts, []);

  // February: consumer 0 starts again at 4. Consumer 1 paid 2,809: 80% is 2,247;
  // producer 5 made 3/4 of the output: 1,685, producer 6: 561.
  const second = tick(JAN_31_23H + 1.5 * HOUR_MS, {
    state: first.state,
    cells: [[0, [102_200, 102_000, january, 102_000]], [1, [501_000, 501_000, january, 501_000]]],
    usage: [[0, 1_900]],
    transfers: [[1, 2_809]],
  });
  assert.deepEqual(second.paymentRequests, { consumer: [0], wh: [2_000], owed: [8] });
  assert.deepEqual(second.cells, { entity: [0], words: [104_100, 104_000, january + 1, 2_000] });
  assert.deepEqual(second.payouts, [{ producer: 5, amount: 1_685 }, { producer: 6, amount: 561 }]);
});

test("another strategy's state starts from zero, a damaged own state is refused", () => {
  // The basic Rust grid's state (postcard bytes), as a hot-swap hands it over.
  const swapped = tick(JAN_31_23H, { state: new Uint8Array([7, 0, 3, 0, 200, 1]), transfers: [[0, 10]], output: [[5, 1]] });
  assert.deepEqual(swapped.payouts, [{ producer: 5, amount: 8 }], '80% of the 10 it saw');
  assert.deepEqual(globalThis.logged, [['warn', "the saved state is another strategy's: starting from zero"]]);
  const damaged = Uint8Array.from('{"strategy":"tiered-price@1","received":"lots"}', (c) => c.charCodeAt(0));
  assert.throws(() => tick(JAN_31_23H, { state: damaged }), /cannot read the saved state/);
  globalThis.logged.length = 0;
});

test('refuses bad settings and amounts a number cannot hold exactly', () => {
  const flat = tick(JAN_31_23H, { usage: [[0, 3_000]], config: [['tiers', '7']] });
  assert.deepEqual(flat.paymentRequests.owed, [21]);
  assert.throws(() => tick(JAN_31_23H, { config: [['tiers', '100:4, 50:6, 9']] }), /must increase/);
  assert.throws(() => tick(JAN_31_23H, { config: [['tiers', '100:4']] }), /config `tiers`/);
  assert.throws(() => tick(JAN_31_23H, { cells: [[0, [2 ** 53 - 1, 0, january, 0]]], usage: [[0, 1]] }), /2\^53/);
  assert.deepEqual(globalThis.logged, [], 'refusals are not bugs: nothing logged');
});
