// A tiered-price grid strategy: the more a consumer has used in a calendar
// month (UTC), the more each further kWh costs.
//
// Rules (settings, with their defaults):
// - `tiers` ("100:4, 500:6, 9"): in a month, a consumer's first 100 kWh cost 4
//   tokens each, those up to 500 kWh cost 6, every kWh above that 9. Each tick,
//   each consumer with new usage is billed for its whole kWh not yet billed;
//   the fraction carries over. A new month starts again at the first tier.
// - `producer-share-percent` (80): the producers' part of all the money
//   consumers have paid, split by their share of all the output they ever
//   reported. What is due is taken on the running totals, so rounding never
//   loses a token: the floors of the shares are paid at once, the remainder
//   waits for the next tick.
//
// Cells, four words per consumer: [used Wh, billed Wh, month, Wh billed in that
// month], where month = year * 12 + (0..11). State: JSON of tokens received and
// paid out in total and Wh reported by each producer, as ASCII bytes, tagged
// with the strategy's name: a state without the tag is another strategy's (the
// one this replaced in a hot-swap), and this one starts from zero.
//
// Numbers: componentize-qjs (QuickJS) maps WIT u64 to a JS number, exact up
// to 2^53 - 1 (about 9 * 10^15). Products that could pass that are taken in
// BigInt, and every amount leaves through `exact`, which refuses the tick
// rather than send a rounded number.

import log from 'powerplug:strategy/log@0.1.0';

const DEFAULT_TIERS = '100:4, 500:6, 9';
const STATE_TAG = 'tiered-price@1';

function settings(config) {
  const values = new Map(config.map((s) => [s.key, s.value])); // the last entry wins
  const spec = values.get('tiers') ?? DEFAULT_TIERS;
  // [{ upToKwh, price }], the last one without a limit.
  const tiers = spec.split(',').map((part, i, all) => {
    const [limit, price] = part.includes(':') ? part.split(':') : [null, part];
    const tier = { upToKwh: limit === null ? Infinity : integer(limit), price: integer(price) };
    if ((limit === null) !== (i === all.length - 1) || Number.isNaN(tier.upToKwh + tier.price)) {
      throw 'config `tiers`: "kWh:price, kWh:price, …, price", increasing kWh, integers';
    }
    return tier;
  });
  if (tiers.some((t, i) => i > 0 && t.upToKwh <= tiers[i - 1].upToKwh)) {
    throw 'config `tiers`: the kWh limits must increase';
  }
  const share = integer(values.get('producer-share-percent') ?? '80');
  if (!(share <= 100)) throw 'config `producer-share-percent`: an integer from 0 to 100';
  return { tiers, share };
}

/** A non-negative integer from a setting, or NaN. */
function integer(text) {
  return /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
}

/** The amount, if a JS number holds it exactly; otherwise the tick is refused. */
function exact(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) throw `${what}: ${n} is not an integer from 0 to 2^53 - 1`;
  return n;
}

/** floor(a * b / c) without rounding a * b. */
function mulDiv(a, b, c) {
  return Number((BigInt(a) * BigInt(b)) / BigInt(c));
}

/** The price of `kwh` more kWh for a consumer already billed `monthKwh` this month. */
function priceOf(tiers, monthKwh, kwh) {
  let [owed, from] = [0, 0];
  for (const { upToKwh, price } of tiers) {
    const overlap = Math.min(monthKwh + kwh, upToKwh) - Math.max(monthKwh, from);
    if (overlap > 0) owed += overlap * price;
    from = upToKwh;
  }
  return owed;
}

/**
 * The state this strategy saved; a fresh one if there is none or if it is
 * another strategy's (after a hot-swap: what that one kept is not ours to use,
 * and starting from zero never pays out money this strategy did not see come in).
 */
function loadState(bytes) {
  const fresh = { received: 0, paidOut: 0, output: new Map() };
  if (bytes.length === 0) return fresh;
  let json = '';
  for (const b of bytes) json += String.fromCharCode(b); // QuickJS has no TextDecoder
  let saved;
  try {
    saved = JSON.parse(json);
  } catch {
    saved = null;
  }
  if (saved?.strategy !== STATE_TAG) {
    log.log('warn', "the saved state is another strategy's: starting from zero");
    return fresh;
  }
  const { received, paidOut, output } = saved;
  if (![received, paidOut].every(Number.isSafeInteger) || !Array.isArray(output)) {
    throw 'state: cannot read the saved state';
  }
  return { received, paidOut, output: new Map(output) };
}

function saveState(state) {
  const output = [...state.output].sort((a, b) => a[0] - b[0]);
  const json = JSON.stringify({ strategy: STATE_TAG, received: state.received, paidOut: state.paidOut, output });
  return Uint8Array.from(json, (c) => c.charCodeAt(0));
}

function monthOf(ms) {
  const date = new Date(ms); // pure arithmetic on the tick time: no clock is read
  return date.getUTCFullYear() * 12 + date.getUTCMonth();
}

function decide(input) {
  const { tiers, share } = settings(input.config);
  const state = loadState(input.state);
  const month = monthOf(input.nowMs);

  // Wh each consumer used this tick. (Plain objects and index loops: per
  // consumer, a Map, a Set or a spread costs QuickJS several times the fuel.)
  const used = {};
  const { consumer, wh } = input.usage;
  for (let i = 0; i < consumer.length; i++) used[consumer[i]] = (used[consumer[i]] ?? 0) + wh[i];

  // The host sends the cells of every entity this tick mentions.
  const at = {}; // entity -> its cell's position
  const { entity, words } = input.cells;
  for (let i = 0; i < entity.length; i++) at[entity[i]] = i;

  const cells = { entity: [], words: [] };
  const requests = { consumer: [], wh: [], owed: [] };
  let [billedWh, requested] = [0, 0];
  for (const key of Object.keys(used)) { // integer keys come in ascending order
    const c = Number(key);
    const p = at[c];
    const cell = p === undefined ? [0, 0, month, 0] : words.slice(4 * p, 4 * p + 4);
    cell[0] = exact(cell[0] + used[c], 'used Wh');
    if (cell[2] !== month) [cell[2], cell[3]] = [month, 0];
    const kwh = Math.floor((cell[0] - cell[1]) / 1000);
    if (kwh > 0) {
      const owed = exact(priceOf(tiers, cell[3] / 1000, kwh), 'owed');
      cell[1] += kwh * 1000;
      cell[3] += kwh * 1000;
      requests.consumer.push(c);
      requests.wh.push(kwh * 1000);
      requests.owed.push(owed);
      billedWh += kwh * 1000;
      requested += owed;
    }
    cells.entity.push(c);
    cells.words.push(cell[0], cell[1], cell[2], cell[3]);
  }

  let income = 0;
  for (const t of input.transfers) if (t.incoming) income += t.amount;
  state.received = exact(state.received + income, 'received');

  for (const index of input.left) state.output.delete(index);
  for (const o of input.output) {
    state.output.set(o.producer, exact((state.output.get(o.producer) ?? 0) + o.wh, 'output Wh'));
  }

  // Pay what is due to the producers and not paid yet, by share of output.
  const payouts = [];
  const producersPart = mulDiv(state.received, share, 100);
  const due = producersPart - state.paidOut;
  const totalOutput = [...state.output.values()].reduce((a, b) => a + b, 0);
  if (due > 0 && totalOutput > 0) {
    for (const [producer, wh] of [...state.output].sort((a, b) => a[0] - b[0])) {
      const amount = mulDiv(due, wh, totalOutput);
      if (amount > 0) {
        payouts.push({ producer, amount });
        state.paidOut += amount;
      }
    }
  }

  return {
    state: saveState(state),
    cells,
    paymentRequests: requests,
    payouts,
    metrics: [
      { name: 'billed-wh', value: billedWh },
      { name: 'requested', value: requested },
      { name: 'income', value: income },
      { name: 'paid-out', value: payouts.reduce((sum, p) => sum + p.amount, 0) },
      // Named as the basic grid names them, so `powerplug demo` can check that
      // what consumers paid = running costs + paid out + available.
      { name: 'running-costs-received', value: state.received - producersPart },
      { name: 'available', value: producersPart - state.paidOut },
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
