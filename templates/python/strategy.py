"""{{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
unless configured) for every whole kWh it used; the fraction carries over. Of
what consumers pay, `producer-tokens-per-kwh` (4) of every `price-per-kwh`
goes to the producers, paid out by their share of the output (kit: Books).

Cells: a Consumer per consumer (below), the books format `{{name}}@1` that
build.sh declares (the host hands this strategy only books of that format;
change the version there if you change a field). State: the money books, JSON.
All money and energy are integers (tokens, Wh). The kit (kit/python/powerplug.py)
holds the settings, cells, time, money and test helpers; docs/strategy-guide.md
in the Powerplug checkout, the contract.
"""

import json

from componentize_py_types import Err
from powerplug import Books, Cell, Cells, Config, Rules
from wit_world import exports
from wit_world.exports.grid import GridDecision, GridInput, PaymentRequestBatch
from wit_world.imports import log
from wit_world.imports.types import Metric


class Consumer(Cell):
    fields = {"billed_wh": "u64", "carried_wh": "u64", "owed": "u64", "paid": "u64"}


def decide(input: GridInput) -> GridDecision:
    config = Config(input.config)
    price = config.uint("price-per-kwh", 5)
    rules = Rules.from_config(config, config.uint("producer-tokens-per-kwh", 4), price)
    # Ours is ASCII JSON (json.loads(bytes) may need a codec the sandbox lacks).
    books = Books(json.loads(input.state.decode("ascii")) if input.state else None)

    # The host sends the cells of every entity this tick mentions.
    cells = Cells(input.cells)
    used = {}
    for consumer, wh in zip(input.usage.consumer, input.usage.wh):
        used[consumer] = used.get(consumer, 0) + wh
    requests = PaymentRequestBatch(consumer=[], wh=[], owed=[])
    for consumer in sorted(used):
        cell = cells.get(consumer, Consumer)
        kwh, cell.carried_wh = divmod(cell.carried_wh + used[consumer], 1000)
        if kwh > 0:
            cell.billed_wh += kwh * 1000
            cell.owed += kwh * price
            requests.consumer.append(consumer)
            requests.wh.append(kwh * 1000)
            requests.owed.append(kwh * price)
        cells.put(consumer, cell)
    books.requested(rules, sum(requests.owed))

    def paid(consumer, amount):
        cell = cells.get(consumer, Consumer)
        cell.paid += amount
        cells.put(consumer, cell)

    payouts, metrics = books.settle(rules, input, paid)
    return GridDecision(
        state=json.dumps(books.dump(), sort_keys=True).encode(),
        cells=cells.batch(),
        payment_requests=requests,
        payouts=payouts,
        metrics=[
            Metric(name="billed-wh", value=sum(requests.wh)),
            Metric(name="requested", value=sum(requests.owed)),
            *metrics,
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
