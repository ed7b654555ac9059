"""The strategy's first test, run natively by build.sh before it builds the
component (the WIT types come from bindings generated into build/bindings).
Run it alone: PYTHONPATH=build/bindings python3 -m unittest test_strategy"""

import unittest

from componentize_py_types import Err
from wit_world.exports.grid import GridInput, UsageBatch
from wit_world.imports.types import CellBatch, Setting

import strategy


def tick(usage, cells=(), config=()):
    """A tick at 2026-01-01T00:15Z: `usage` is (consumer, Wh), `cells` (consumer, words)."""
    now = 1_767_226_500_000
    return strategy.Grid().tick(
        GridInput(
            now_ms=now,
            config=[Setting(key=k, value=v) for k, v in config],
            state=b"",
            joined=[],
            left=[],
            cells=CellBatch(entity=[c for c, _ in cells], words=[w for _, ws in cells for w in ws]),
            usage=UsageBatch(
                consumer=[c for c, _ in usage],
                start_ms=[now - 900_000] * len(usage),
                end_ms=[now] * len(usage),
                wh=[wh for _, wh in usage],
            ),
            output=[],
            transfers=[],
        )
    )


class FirstTest(unittest.TestCase):
    def test_bills_whole_kwh_and_carries_the_rest(self):
        # Consumer 1 had 600 Wh carried over and uses 1,900: 2 kWh billed, 500 Wh carried.
        decision = tick([(1, 1_900), (2, 300)], cells=[(1, [4_000, 600, 0, 0])])
        r = decision.payment_requests
        self.assertEqual((r.consumer, r.wh, r.owed), ([1], [2_000], [10]))
        self.assertEqual(decision.cells.entity, [1, 2])
        self.assertEqual(decision.cells.words, [6_000, 500, 0, 0, 0, 300, 0, 0])

    def test_the_price_is_a_setting(self):
        decision = tick([(0, 3_000)], config=[("price-per-kwh", "7")])
        self.assertEqual(decision.payment_requests.owed, [21])
        with self.assertRaises(Err):
            tick([(0, 3_000)], config=[("price-per-kwh", "seven")])


if __name__ == "__main__":
    unittest.main()
