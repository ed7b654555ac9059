"""{{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
unless configured) for every whole kWh it used; the fraction carries over.

Cells, four words per consumer: [billed Wh, Wh not billed yet, -, -]: the books
format `{{name}}@1` that build.sh declares (the host hands this strategy only
books of that format; change the version there if you change what a word
means). All money and energy are integers (tokens, Wh). The strategy keeps no
state of its own and pays no producer: see examples/time-of-use-python in the
Powerplug checkout for both, and docs/strategy-guide.md for the contract.
"""


from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.grid import GridDecision, GridInput, PaymentRequestBatch
from wit_world.imports import log
from wit_world.imports.types import CellBatch, Metric


def decide(input: GridInput) -> GridDecision:
    config = {s.key: s.value for s in input.config}  # the last entry wins
    price = config.get("price-per-kwh", "5").strip()
    if not price.isdigit():
        raise Err("config `price-per-kwh`: expected an unsigned integer")
    price = int(price)

    # The host sends the cells of every entity this tick mentions.
    words = input.cells.words
    cells = {e: words[4 * i : 4 * i + 4] for i, e in enumerate(input.cells.entity)}
    requests = PaymentRequestBatch(consumer=[], wh=[], owed=[])
    for consumer, wh in zip(input.usage.consumer, input.usage.wh):
        cell = cells.setdefault(consumer, [0, 0, 0, 0])
        cell[1] += wh
    changed = sorted(set(input.usage.consumer))
    for consumer in changed:
        cell = cells[consumer]
        kwh, cell[1] = divmod(cell[1], 1000)
        cell[0] += kwh * 1000
        if kwh > 0:
            requests.consumer.append(consumer)
            requests.wh.append(kwh * 1000)
            requests.owed.append(kwh * price)

    return GridDecision(
        state=b"",
        cells=CellBatch(entity=changed, words=[w for c in changed for w in cells[c]]),
        payment_requests=requests,
        payouts=[],
        metrics=[
            Metric(name="billed-wh", value=sum(requests.wh)),
            Metric(name="requested", value=sum(requests.owed)),
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
