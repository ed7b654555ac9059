"""A time-of-use grid strategy: the price of a kWh depends on the hour of the tick.

Rules (settings, with their defaults):

- Each consumer's usage adds up in its cell. Every tick, each consumer with new
  usage is billed for its *whole* kWh not yet billed, at the price of the tick's
  hour (UTC) from `price-by-hour`: 24 comma-separated tokens per kWh, hour 0 first
  (default: 3 from 00:00, 5 from 07:00, 9 from 17:00, 5 from 21:00). The fraction
  of a kWh carries over to a later tick.
- Of all the money consumers have paid, `producer-share-percent` (80) belongs to
  the producers, split by their share of all the output they ever reported. What
  is due is taken on the running totals, so rounding never loses a token: the
  floors of the shares are paid at once, the remainder waits for the next tick.

Cells, four words per consumer: [used Wh, billed Wh, tokens requested, tokens paid].
State (JSON): tokens received and paid out in total, Wh reported by each
producer, tagged with the strategy's name: a state without the tag is another
strategy's (the one this replaced in a hot-swap), and this one starts from zero.
Money and energy are Python ints: exact, and a value above 2**64-1 in the
decision traps the tick instead of wrapping.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.grid import GridDecision, GridInput, PaymentRequestBatch, Payout
from wit_world.imports import log
from wit_world.imports.types import CellBatch, Metric

HOUR_MS = 3_600_000
STATE_TAG = "time-of-use@1"
DEFAULT_PRICES = [3] * 7 + [5] * 10 + [9] * 4 + [5] * 3


def settings(config):
    """(prices by hour, producer share in percent) from the operator's settings."""
    values = {s.key: s.value for s in config}  # the last entry wins
    prices = DEFAULT_PRICES
    if "price-by-hour" in values:
        try:
            prices = [int(p) for p in values["price-by-hour"].split(",")]
        except ValueError:
            prices = []
        if len(prices) != 24 or min(prices) < 0:
            raise Err("config `price-by-hour`: 24 comma-separated unsigned integers")
    share = values.get("producer-share-percent", "80").strip()
    if not share.isdigit() or int(share) > 100:
        raise Err("config `producer-share-percent`: an integer from 0 to 100")
    return prices, int(share)


def load_state(data):
    """The state this strategy saved; a fresh one if there is none or if it is
    another strategy's (after a hot-swap: what that one kept is not ours to use,
    and starting from zero never pays out money this strategy did not see come in)."""
    fresh = {"strategy": STATE_TAG, "received": 0, "paid_out": 0, "output": {}}
    state = fresh if not data else None
    # Ours is ASCII JSON. (Not json.loads(bytes): that guesses the encoding and
    # may look up a codec that was not loaded when the component was built,
    # which traps: see the guide's "Python" section.)
    if data and data.isascii():
        try:
            state = json.loads(data.decode("utf-8"))
        except ValueError:
            pass
    if not isinstance(state, dict) or state.get("strategy") != STATE_TAG:
        log.log(log.Level.WARN, "the saved state is another strategy's: starting from zero")
        return fresh
    try:
        state["output"] = {int(p): int(wh) for p, wh in state["output"]}
        state["received"], state["paid_out"] = int(state["received"]), int(state["paid_out"])
        return state
    except (ValueError, KeyError, TypeError) as e:
        raise Err(f"state: cannot read the saved state: {e!r}")


def save_state(state):
    # Sorted, so that the same state is always the same bytes.
    output = sorted(state["output"].items())
    return json.dumps({**state, "output": output}, sort_keys=True, separators=(",", ":")).encode()


def decide(input: GridInput) -> GridDecision:
    prices, share = settings(input.config)
    state = load_state(input.state)
    price = prices[input.now_ms // HOUR_MS % 24]

    # The host sends the cells of every entity this tick mentions.
    words = input.cells.words
    cells = {e: words[4 * i : 4 * i + 4] for i, e in enumerate(input.cells.entity)}
    changed = set()

    usage = input.usage
    for consumer, wh in zip(usage.consumer, usage.wh):
        cells.setdefault(consumer, [0, 0, 0, 0])[0] += wh
        changed.add(consumer)

    requests = PaymentRequestBatch(consumer=[], wh=[], owed=[])
    for consumer in sorted(changed):
        cell = cells[consumer]
        kwh = (cell[0] - cell[1]) // 1000
        if kwh > 0:
            cell[1] += kwh * 1000
            cell[2] += kwh * price
            requests.consumer.append(consumer)
            requests.wh.append(kwh * 1000)
            requests.owed.append(kwh * price)

    income = 0
    for t in input.transfers:
        if t.incoming:
            income += t.amount
            if t.entity is not None:
                cells.setdefault(t.entity, [0, 0, 0, 0])[3] += t.amount
                changed.add(t.entity)
    state["received"] += income

    for index in input.left:
        state["output"].pop(index, None)
    for o in input.output:
        state["output"][o.producer] = state["output"].get(o.producer, 0) + o.wh

    # Pay what is due to the producers and not paid yet, by share of output.
    payouts = []
    producers_part = state["received"] * share // 100
    due = producers_part - state["paid_out"]
    total_output = sum(state["output"].values())
    if due > 0 and total_output > 0:
        for producer, wh in sorted(state["output"].items()):
            amount = due * wh // total_output
            if amount > 0:
                payouts.append(Payout(producer=producer, amount=amount))
                state["paid_out"] += amount

    changed = sorted(changed)
    return GridDecision(
        state=save_state(state),
        cells=CellBatch(entity=changed, words=[w for e in changed for w in cells[e]]),
        payment_requests=requests,
        payouts=payouts,
        metrics=[
            Metric(name="price-per-kwh", value=price),
            Metric(name="billed-wh", value=sum(requests.wh)),
            Metric(name="requested", value=sum(requests.owed)),
            Metric(name="income", value=income),
            Metric(name="paid-out", value=sum(p.amount for p in payouts)),
            # Named as the basic grid names them, so `powerplug demo` can check
            # that what consumers paid = running costs + paid out + available.
            Metric(name="running-costs-received", value=state["received"] - producers_part),
            Metric(name="available", value=producers_part - state["paid_out"]),
        ],
    )


def where(error: BaseException) -> str:
    """The error and the innermost frames it came through, e.g. "KeyError: 13
    in decide (strategy.py:40) < tick (strategy.py:60)". Not traceback.format_exc():
    it reads the source files to quote their lines, and the sandbox has no files,
    so it traps and hides the error."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno})")
        tb = tb.tb_next
    return f"{type(error).__name__}: {error} in " + " < ".join(reversed(frames[-3:]))


class Grid(exports.Grid):
    def tick(self, input: GridInput) -> GridDecision:
        try:
            return decide(input)
        except Err:
            raise  # a refusal: the host applies nothing and says why
        except Exception as e:
            # A bug: say what and where (stderr goes nowhere in the sandbox), then trap.
            log.log(log.Level.ERROR, where(e))
            raise
