// {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
// unless configured) for every whole kWh it used; the fraction carries over.
//
// Cells, four words per consumer: [billed Wh, Wh not billed yet, -, -]: the
// books format `{{name}}@1` that build.sh declares (the host hands this
// strategy only books of that format; change the version there if you change
// what a word means). All money and energy are integers (tokens, Wh). The
// strategy keeps no state of its own and pays no producer: see
// examples/tiered-price-js in the Powerplug checkout for both, and
// docs/strategy-guide.md for the contract.
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
  const config = {};
  for (const { key, value } of input.config) config[key] = value; // the last entry wins
  const setting = config['price-per-kwh'] ?? '5';
  if (!/^\s*\d+\s*$/.test(setting)) throw 'config `price-per-kwh`: expected an unsigned integer';
  const price = Number(setting);

  // The host sends the cells of every entity this tick mentions, sorted by
  // entity. (Plain objects and index loops: a Map, a Set or a spread costs
  // QuickJS several times the fuel.)
  const { entity, words } = input.cells;
  const at = {}; // entity -> its cell's position in `entity`
  for (let i = 0; i < entity.length; i++) at[entity[i]] = i;
  const cells = words.slice();
  const used = {}; // consumer -> Wh used this tick
  const { consumer, wh } = input.usage;
  for (let i = 0; i < consumer.length; i++) used[consumer[i]] = exact((used[consumer[i]] ?? 0) + wh[i], 'Wh');

  const out = { entity: [], words: [] };
  const requests = { consumer: [], wh: [], owed: [] };
  let [billedWh, requested] = [0, 0];
  for (const key of Object.keys(used)) { // integer keys come in ascending order
    const c = Number(key);
    const p = at[c];
    const cell = p === undefined ? [0, 0, 0, 0] : cells.slice(4 * p, 4 * p + 4);
    const carried = exact(cell[1] + used[c], 'Wh');
    const kwh = Math.floor(carried / 1000);
    cell[1] = carried - kwh * 1000;
    cell[0] = exact(cell[0] + kwh * 1000, 'billed Wh');
    if (kwh > 0) {
      const owed = exact(kwh * price, 'owed');
      requests.consumer.push(c);
      requests.wh.push(kwh * 1000);
      requests.owed.push(owed);
      billedWh += kwh * 1000;
      requested += owed;
    }
    out.entity.push(c);
    out.words.push(cell[0], cell[1], cell[2], cell[3]);
  }

  return {
    state: new Uint8Array(),
    cells: out,
    paymentRequests: requests,
    payouts: [],
    metrics: [
      { name: 'billed-wh', value: billedWh },
      { name: 'requested', value: requested },
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
