// {{name}}: a producer strategy. Each tick it reports what its sources
// delivered since its last report as one output, from the end of that report
// to now (an hour at most: the grid drops a longer one), asking
// `price-per-kwh` tokens (4 unless configured) per kWh; the fraction of a
// token carries over. A report claims at most 1 GWh (the host refuses more);
// the rest waits for the next tick.
//
// State, 24 bytes: the end of the last report (ms), the thousandths of a token
// carried, the Wh waiting, little-endian: the books format `{{name}}@1` that
// build.sh declares. The grid keeps one report per start time, so every report
// starts where the last one ended. See docs/strategy-guide.md for the contract.
//
// componentize-qjs (QuickJS) hands records over with camelCase keys and WIT
// u64 as JS numbers, exact up to 2^53 - 1: every amount leaves through
// `exact`, which refuses the tick rather than send a rounded number.

import log from 'powerplug:strategy/log@0.1.0';
import { Config, exact } from './kit/js/powerplug.mjs';

const MAX_REPORT_WH = 1_000_000_000;
const MAX_SPAN_MS = 3_600_000; // the grid drops a report that covers more

/** Three u64 words, little-endian; each below 2^53. */
function load(bytes) {
  if (bytes.length === 0) return [0, 0, 0];
  if (bytes.length !== 24) throw 'state: not one this strategy saved';
  const view = new DataView(bytes.buffer, bytes.byteOffset, 24);
  return [0, 8, 16].map((at) => exact(view.getUint32(at + 4, true) * 2 ** 32 + view.getUint32(at, true), 'state'));
}

function save(words) {
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  words.forEach((w, i) => {
    view.setUint32(8 * i, w % 2 ** 32, true);
    view.setUint32(8 * i + 4, Math.floor(w / 2 ** 32), true);
  });
  return bytes;
}

function decide(input) {
  const price = new Config(input.config).uint('price-per-kwh', 4);
  let [lastEnd, carried, waiting] = load(input.state);

  let total = waiting;
  for (const o of input.outputs) total = exact(total + o.wh, 'Wh');
  const wh = Math.min(total, MAX_REPORT_WH);
  // The first report starts with the first reading.
  let start = lastEnd;
  if (start === 0) {
    start = input.nowMs;
    for (const o of input.outputs) start = Math.min(start, o.startMs);
  }
  start = Math.max(start, input.nowMs - MAX_SPAN_MS);
  const commands = [];
  if (wh > 0 && start < input.nowMs) {
    const milli = exact(wh * price + carried, 'the price in thousandths');
    const asked = Math.floor(milli / 1000);
    carried = milli - asked * 1000;
    commands.push({ startMs: start, endMs: input.nowMs, wh, price: asked });
    lastEnd = input.nowMs;
    waiting = total - wh;
  } else {
    waiting = total;
  }

  return {
    state: save([lastEnd, carried, waiting]),
    cells: { entity: [], words: [] },
    commands,
    metrics: [
      { name: 'reported-wh', value: commands.reduce((sum, c) => sum + c.wh, 0) },
      { name: 'asked', value: commands.reduce((sum, c) => sum + c.price, 0) },
      { name: 'waiting-wh', value: waiting },
    ],
  };
}

export const producer = {
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
