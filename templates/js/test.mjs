// The strategy's first test, run natively in Node.js by build.sh before it
// builds the component: `node test.mjs`. The input is what componentize-qjs
// hands the strategy: camelCase records, u64 as numbers.
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

/** A tick at 2026-01-01T00:15Z: `usage` is [consumer, Wh], `cells` [consumer, words]. */
function tick(usage, { cells = [], config = [] } = {}) {
  const nowMs = Date.UTC(2026, 0, 1, 0, 15);
  return grid.tick({
    nowMs,
    config: config.map(([key, value]) => ({ key, value })),
    state: new Uint8Array(),
    joined: [],
    left: [],
    cells: { entity: cells.map((c) => c[0]), words: cells.flatMap((c) => c[1]) },
    usage: {
      consumer: usage.map((u) => u[0]),
      startMs: usage.map(() => nowMs - 900_000),
      endMs: usage.map(() => nowMs),
      wh: usage.map((u) => u[1]),
    },
    output: [],
    transfers: [],
  });
}

test('bills whole kWh and carries the rest', () => {
  // Consumer 1 had 600 Wh carried over and uses 1,900: 2 kWh billed, 500 Wh carried.
  const decision = tick([[1, 1_900], [2, 300]], { cells: [[1, [4_000, 600, 0, 0]]] });
  assert.deepEqual(decision.paymentRequests, { consumer: [1], wh: [2_000], owed: [10] });
  assert.deepEqual(decision.cells, { entity: [1, 2], words: [6_000, 500, 0, 0, 0, 300, 0, 0] });
});

test('the price is a setting', () => {
  assert.deepEqual(tick([[0, 3_000]], { config: [['price-per-kwh', '7']] }).paymentRequests.owed, [21]);
  assert.throws(() => tick([[0, 3_000]], { config: [['price-per-kwh', 'seven']] }), /price-per-kwh/);
});
