// The strategy's first tests, run natively in Node.js by build.sh before it
// builds the component: `node test.mjs`. GridHarness (kit/js/powerplug.mjs)
// runs the strategy tick after tick as the host would, carrying its state and
// cells, and throws HostRefused where the host would refuse a decision (a
// fraction of a token, a bill for more than a consumer used, a payout the
// wallet cannot make); consumers pay their bills at the next tick.
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
const { grid, Consumer } = await import('./strategy.js');
const { GridHarness } = await import('./kit/js/powerplug.mjs');

test('bills whole kWh and carries the rest', () => {
  const h = new GridHarness(grid);
  const [alice, bob] = [h.consumer(), h.consumer()];
  h.usage(alice, 1_600);
  h.usage(bob, 300);
  assert.deepEqual(h.tick().paymentRequests, { consumer: [alice], wh: [1_000], owed: [5] });
  h.usage(alice, 1_900); // 600 carried + 1,900: 2 kWh billed, 500 carried
  assert.deepEqual(h.tick().paymentRequests, { consumer: [alice], wh: [2_000], owed: [10] });
  const cell = h.cell(alice, Consumer);
  assert.deepEqual([cell.billedWh, cell.carriedWh, cell.owed, cell.paid], [3_000, 500, 15, 5]);
});

test('producers are paid their share of what consumers paid', () => {
  const h = new GridHarness(grid);
  const [alice, sun, wind] = [h.consumer(), h.producer(), h.producer()];
  let paidOut = 0;
  for (let i = 0; i < 30; i++) {
    h.usage(alice, 4_000);
    h.output(sun, 100, 6);
    h.output(wind, 300, 6);
    for (const p of h.tick().payouts) paidOut += p.amount;
  }
  const books = JSON.parse(new TextDecoder().decode(h.state));
  // Money is neither lost nor created: the producers' part = paid out + available.
  assert.equal(books.producersReceived, paidOut + books.available);
  assert.equal(books.producersReceived, Math.floor((books.income * 4) / 5));
  assert.ok(paidOut > 0);
});

test('the price is a setting', () => {
  const h = new GridHarness(grid, { 'price-per-kwh': '7' });
  h.usage(h.consumer(), 3_000);
  assert.deepEqual(h.tick().paymentRequests.owed, [21]);
  const bad = new GridHarness(grid, { 'price-per-kwh': 'seven' });
  assert.throws(() => bad.tick(), /price-per-kwh/);
});
