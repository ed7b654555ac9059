// {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
// unless configured) for every whole kWh it used; the fraction carries over.
//
// Cells, four words per consumer: [billed Wh, Wh not billed yet, -, -]. All
// money and energy are integers (tokens, Wh). The strategy keeps no state of
// its own and pays no producer: see examples/tiered-price-js in the Powerplug
// checkout for both, and docs/strategy-guide.md for the contract.
//
// componentize-qjs (QuickJS) hands records over with camelCase keys and WIT
// u64 as JS numbers, exact up to 2^53 - 1: every amount leaves through
// `exact`, which refuses the tick rather than send a rounded number.

import log from 'powerplug:strategy/log@0.1.0';

/** The amount, if a JS number holds it exactly; otherwise the tick is refused. */
function exact(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) throw `${what}: ${n} is not an integer from 0 to 2^53 - 1`;
  return n;
}

function decide(input) {
  const config = new Map(input.config.map((s) => [s.key, s.value])); // the last entry wins
  const setting = config.get('price-per-kwh') ?? '5';
  if (!/^\s*\d+\s*$/.test(setting)) throw 'config `price-per-kwh`: expected an unsigned integer';
  const price = Number(setting);

  // The host sends the cells of every entity this tick mentions.
  const cells = new Map();
  input.cells.entity.forEach((e, i) => cells.set(e, input.cells.words.slice(4 * i, 4 * i + 4)));
  const usage = input.usage;
  usage.consumer.forEach((consumer, i) => {
    const cell = cells.get(consumer) ?? cells.set(consumer, [0, 0, 0, 0]).get(consumer);
    cell[1] = exact(cell[1] + usage.wh[i], 'Wh');
  });

  const changed = [...new Set(usage.consumer)].sort((a, b) => a - b);
  const requests = { consumer: [], wh: [], owed: [] };
  for (const consumer of changed) {
    const cell = cells.get(consumer);
    const kwh = Math.floor(cell[1] / 1000);
    cell[1] -= kwh * 1000;
    cell[0] = exact(cell[0] + kwh * 1000, 'billed Wh');
    if (kwh > 0) {
      requests.consumer.push(consumer);
      requests.wh.push(kwh * 1000);
      requests.owed.push(exact(kwh * price, 'owed'));
    }
  }

  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  return {
    state: new Uint8Array(),
    cells: { entity: changed, words: changed.flatMap((c) => cells.get(c)) },
    paymentRequests: requests,
    payouts: [],
    metrics: [
      { name: 'billed-wh', value: sum(requests.wh) },
      { name: 'requested', value: sum(requests.owed) },
    ],
  };
}

export const grid = {
  tick(input) {
    try {
      return decide(input);
    } catch (e) {
      if (typeof e === 'string') throw e; // a refusal: the host applies nothing and says why
      // A bug: say where, then refuse the tick with the message.
      log.log('error', `${e}\n${e.stack ?? ''}`);
      throw `${e}`;
    }
  },
};
