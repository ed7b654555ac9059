// {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
// unless configured) for every whole kWh it used; the fraction carries over.
// Of what consumers pay, `producer-tokens-per-kwh` (4) of every
// `price-per-kwh` goes to the producers, paid out by their share of the output
// (kit: Books).
//
// Cells: a Consumer per consumer (below), the books format `{{name}}@1` that
// build.sh declares (the host hands this strategy only books of that format;
// change the version there if you change a field). State: the money books,
// JSON. All money and energy are integers (tokens, Wh). The kit
// (kit/js/powerplug.mjs) holds the settings, cells, time, money and test
// helpers; docs/strategy-guide.md in the Powerplug checkout, the contract.
//
// componentize-qjs (QuickJS) hands records over with camelCase keys and WIT
// u64 as JS numbers, exact up to 2^53 - 1: amounts go through `exact`, which
// refuses the tick rather than send a rounded number.

import log from 'powerplug:strategy/log@0.1.0';
import { Books, Cell, Cells, Config, Rules, exact } from './kit/js/powerplug.mjs';

export class Consumer extends Cell {
  static fields = { billedWh: 'u53', carriedWh: 'u53', owed: 'u53', paid: 'u53' };
}

function decide(input) {
  const config = new Config(input.config);
  const price = config.uint('price-per-kwh', 5);
  const rules = Rules.fromConfig(config, config.uint('producer-tokens-per-kwh', 4), price);
  const books = new Books(input.state.length ? JSON.parse(String.fromCharCode(...input.state)) : {});

  // The host sends the cells of every entity this tick mentions. (Plain
  // objects and index loops: a Map, a Set or a spread costs QuickJS several
  // times the fuel.)
  const cells = new Cells(input.cells);
  const used = {}; // consumer -> Wh used this tick
  const { consumer, wh } = input.usage;
  for (let i = 0; i < consumer.length; i++) used[consumer[i]] = exact((used[consumer[i]] ?? 0) + wh[i], 'Wh');

  const requests = { consumer: [], wh: [], owed: [] };
  let [billedWh, requested] = [0, 0];
  for (const key of Object.keys(used)) { // integer keys come in ascending order
    const c = Number(key);
    const cell = cells.get(c, Consumer);
    const carried = exact(cell.carriedWh + used[c], 'Wh');
    const kwh = Math.floor(carried / 1000);
    cell.carriedWh = carried - kwh * 1000;
    if (kwh > 0) {
      const owed = exact(kwh * price, 'owed');
      cell.billedWh = exact(cell.billedWh + kwh * 1000, 'billed Wh');
      cell.owed = exact(cell.owed + owed, 'owed');
      requests.consumer.push(c);
      requests.wh.push(kwh * 1000);
      requests.owed.push(owed);
      billedWh += kwh * 1000;
      requested += owed;
    }
    cells.put(c, cell);
  }
  books.requested(rules, requested);
  const { payouts, metrics } = books.settle(rules, input, (c, amount) => {
    const cell = cells.get(c, Consumer);
    cell.paid = exact(cell.paid + amount, 'paid');
    cells.put(c, cell);
  });

  const state = JSON.stringify(books.dump());
  return {
    state: Uint8Array.from(state, (ch) => ch.charCodeAt(0)), // ASCII
    cells: cells.batch(),
    paymentRequests: requests,
    payouts,
    metrics: [{ name: 'billed-wh', value: billedWh }, { name: 'requested', value: requested }, ...metrics],
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
