"""{{name}}: a producer strategy. Each tick it reports what its sources
delivered since its last report as one output, from the end of that report to
now (an hour at most: the grid drops a longer one), asking `price-per-kwh`
tokens (4 unless configured) per kWh; the fraction of a token carries over. A
report claims at most 1 GWh (the host refuses more); the rest waits for the
next tick.

State, 24 bytes: the end of the last report (ms), the thousandths of a token
carried, the Wh waiting, little-endian: the books format `{{name}}@1` that
build.sh declares. The grid keeps one report per start time, so every report
starts where the last one ended. See docs/strategy-guide.md for the contract.
"""

import struct

from componentize_py_types import Err
from powerplug import Config
from wit_world import exports
from wit_world.exports.producer import OutputCommand, ProducerDecision, ProducerInput
from wit_world.imports import log
from wit_world.imports.types import CellBatch, Metric

MAX_REPORT_WH = 1_000_000_000
MAX_SPAN_MS = 3_600_000  # the grid drops a report that covers more


def decide(input: ProducerInput) -> ProducerDecision:
    price = Config(input.config).uint("price-per-kwh", 4)
    if not input.state:
        last_end, carried, waiting = 0, 0, 0
    elif len(input.state) == 24:
        last_end, carried, waiting = struct.unpack("<QQQ", input.state)
    else:
        raise Err("state: not one this strategy saved")

    total = waiting + sum(o.wh for o in input.outputs)
    wh = min(total, MAX_REPORT_WH)
    # The first report starts with the first reading.
    start = last_end or min((o.start_ms for o in input.outputs), default=input.now_ms)
    start = max(start, input.now_ms - MAX_SPAN_MS)
    commands = []
    if wh > 0 and start < input.now_ms:
        asked, carried = divmod(wh * price + carried, 1000)
        commands.append(OutputCommand(start_ms=start, end_ms=input.now_ms, wh=wh, price=asked))
        last_end = input.now_ms
        waiting = total - wh
    else:
        waiting = total

    return ProducerDecision(
        state=struct.pack("<QQQ", last_end, carried, waiting),
        cells=CellBatch(entity=[], words=[]),
        commands=commands,
        metrics=[
            Metric(name="reported-wh", value=sum(c.wh for c in commands)),
            Metric(name="asked", value=sum(c.price for c in commands)),
            Metric(name="waiting-wh", value=waiting),
        ],
    )


def where(error: BaseException) -> str:
    """The error and the innermost frames it came through. Not
    traceback.format_exc(): it reads the source files, and the sandbox has none."""
    frames = []
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append(f"{code.co_name} ({code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno})")
        tb = tb.tb_next
    return f"{type(error).__name__}: {error} in " + " < ".join(reversed(frames[-3:]))


class Producer(exports.Producer):
    def tick(self, input: ProducerInput) -> ProducerDecision:
        try:
            return decide(input)
        except Err:
            raise  # a refusal: the host applies nothing and says why
        except Exception as e:
            # A bug: say what and where (stderr goes nowhere in the sandbox), then trap.
            log.log(log.Level.ERROR, where(e))
            raise
