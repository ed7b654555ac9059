"""The strategy's first test, run natively by build.sh before it builds the
component (the WIT types come from bindings generated into build/bindings, the
kit from kit/python). Run it alone:
PYTHONPATH=build/bindings:kit/python python3 -m unittest test_strategy"""

import unittest

from componentize_py_types import Err
from powerplug import MAX_WH, ProducerHarness
from wit_world.exports.producer import ProducerInput, SourceOutput
from wit_world.imports.types import CellBatch, Setting

import strategy

NOW = 1_767_226_500_000  # 2026-01-01T00:15Z


def tick(now, readings, state=b"", config=()):
    """A tick at `now` of (source, Wh) readings of the minute before it."""
    return strategy.Producer().tick(
        ProducerInput(
            now_ms=now,
            config=[Setting(key=k, value=v) for k, v in config],
            state=state,
            joined=[],
            left=[],
            cells=CellBatch(entity=[], words=[]),
            outputs=[SourceOutput(source=s, start_ms=now - 60_000, end_ms=now - 30_000, wh=wh) for s, wh in readings],
            transfers=[],
        )
    )


class FirstTest(unittest.TestCase):
    def test_reports_what_came_in_since_the_last_report_and_carries_the_fraction(self):
        # 2,700 Wh at 4 a kWh: 10.8 tokens, 10 asked, 0.8 carried.
        first = tick(NOW, [(1, 1_500), (2, 1_200)])
        c = first.commands[0]
        self.assertEqual((c.start_ms, c.end_ms, c.wh, c.price), (NOW - 60_000, NOW, 2_700, 10))
        # 300 Wh more: 1.2 + 0.8 = 2 tokens, from the end of the last report.
        c = tick(NOW + 60_000, [(1, 300)], state=first.state).commands[0]
        self.assertEqual((c.start_ms, c.end_ms, c.wh, c.price), (NOW, NOW + 60_000, 300, 2))

    def test_the_price_is_a_setting(self):
        self.assertEqual(tick(NOW, [(1, 3_000)], config=[("price-per-kwh", "7")]).commands[0].price, 21)
        with self.assertRaises(Err):
            tick(NOW, [(1, 3_000)], config=[("price-per-kwh", "seven")])

    def test_three_sources_at_the_limit_are_reported_within_it_the_rest_later(self):
        # ProducerHarness runs tick after tick as the host would, state carried
        # over, and raises HostRefused on a report the grid would refuse.
        producer = ProducerHarness(strategy.Producer())
        sources = [producer.source() for _ in range(3)]
        for s in sources:
            producer.output(s, MAX_WH)
        reported = [c.wh for _ in range(4) for c in producer.tick().commands]
        self.assertEqual(reported, [MAX_WH] * 3)


if __name__ == "__main__":
    unittest.main()
