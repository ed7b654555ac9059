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
const { producer } = await import('./strategy.js');
const { MAX_WH, ProducerHarness } = await import('./kit/js/powerplug.mjs');

const NOW = Date.UTC(2026, 0, 1, 0, 15);

/** A tick at `nowMs` of [source, Wh] readings of the minute before it. */
function tick(nowMs, readings, { state = new Uint8Array(), config = [] } = {}) {
  return producer.tick({
    nowMs,
    config: config.map(([key, value]) => ({ key, value })),
    state,
    joined: [],
    left: [],
    cells: { entity: [], words: [] },
    outputs: readings.map(([source, wh]) => ({ source, startMs: nowMs - 60_000, endMs: nowMs - 30_000, wh })),
    transfers: [],
  });
}

test('reports what came in since the last report and carries the fraction', () => {
  // 2,700 Wh at 4 a kWh: 10.8 tokens, 10 asked, 0.8 carried.
  const first = tick(NOW, [[1, 1_500], [2, 1_200]]);
  assert.deepEqual(first.commands, [{ startMs: NOW - 60_000, endMs: NOW, wh: 2_700, price: 10 }]);
  // 300 Wh more: 1.2 + 0.8 = 2 tokens, from the end of the last report.
  const second = tick(NOW + 60_000, [[1, 300]], { state: first.state });
  assert.deepEqual(second.commands, [{ startMs: NOW, endMs: NOW + 60_000, wh: 300, price: 2 }]);
});

test('the price is a setting', () => {
  assert.equal(tick(NOW, [[1, 3_000]], { config: [['price-per-kwh', '7']] }).commands[0].price, 21);
  assert.throws(() => tick(NOW, [[1, 3_000]], { config: [['price-per-kwh', 'seven']] }), /price-per-kwh/);
});

test('three sources at the limit are reported within it, the rest later', () => {
  // ProducerHarness runs tick after tick as the host would, state carried
  // over, and throws HostRefused on a report the grid would refuse.
  const h = new ProducerHarness(producer);
  for (const s of [h.source(), h.source(), h.source()]) h.output(s, MAX_WH);
  const reported = [];
  for (let i = 0; i < 4; i++) for (const c of h.tick().commands) reported.push(c.wh);
  assert.deepEqual(reported, [MAX_WH, MAX_WH, MAX_WH]);
});
