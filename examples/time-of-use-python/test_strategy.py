"""Runs the strategy natively on a hand-computed scenario (build.sh runs this
before it builds the component). The WIT types come from the bindings that
componentize-py generates into build/bindings."""

import unittest

from componentize_py_types import Err
from wit_world.exports.grid import GridInput, Output, UsageBatch
from wit_world.imports import log
from wit_world.imports.types import CellBatch, Setting, Transfer

import strategy

HOUR_MS = 3_600_000
DAY = 20_454 * 24 * HOUR_MS  # 2026-01-01T00:00Z


def tick(now_ms, state=b"", cells=(), usage=(), output=(), transfers=(), config=()):
    """One tick's input; `cells` are (entity, [4 words]), `usage` (consumer, Wh)."""
    return strategy.Grid().tick(
        GridInput(
            now_ms=now_ms,
            config=[Setting(key=k, value=v) for k, v in config],
            state=state,
            joined=[],
            left=[],
            cells=CellBatch(entity=[e for e, _ in cells], words=[w for _, c in cells for w in c]),
            usage=UsageBatch(
                consumer=[c for c, _ in usage],
                start_ms=[now_ms - 900_000] * len(usage),
                end_ms=[now_ms] * len(usage),
                wh=[wh for _, wh in usage],
            ),
            output=[Output(producer=p, start_ms=0, end_ms=1, wh=wh, price=0) for p, wh in output],
            transfers=[Transfer(entity=e, amount=a, at_ms=now_ms, incoming=True) for e, a in transfers],
        )
    )


def cells_of(decision):
    words = decision.cells.words
    return {e: words[4 * i : 4 * i + 4] for i, e in enumerate(decision.cells.entity)}


class TimeOfUse(unittest.TestCase):
    def setUp(self):
        self.logged = []
        log.log = lambda level, message: self.logged.append((level, message))

    def test_bills_whole_kwh_at_the_hours_price_and_pays_producers_their_share(self):
        # 18:30, the evening peak: 9 a kWh. Consumer 0 used 2.5 kWh, consumer 1 0.8 kWh.
        first = tick(DAY + 18 * HOUR_MS + 1_800_000, usage=[(0, 2_500), (1, 800)], output=[(5, 3_000), (6, 1_000)])
        reqs = first.payment_requests
        self.assertEqual((reqs.consumer, reqs.wh, reqs.owed), ([0], [2_000], [18]))
        self.assertEqual(cells_of(first), {0: [2_500, 2_000, 18, 0], 1: [800, 0, 0, 0]})
        self.assertEqual(first.payouts, [], "nothing came in yet")

        # 03:00 the next day, night price 3. Consumer 0 paid its 18 tokens:
        # 80% is 14 (of 14.4); producer 5 made 3/4 of the output: 10, producer 6: 3.
        second = tick(
            DAY + 27 * HOUR_MS,
            state=first.state,
            cells=[(0, [2_500, 2_000, 18, 0]), (1, [800, 0, 0, 0])],
            usage=[(0, 600), (1, 300)],
            transfers=[(0, 18)],
        )
        reqs = second.payment_requests
        self.assertEqual((reqs.consumer, reqs.wh, reqs.owed), ([0, 1], [1_000, 1_000], [3, 3]))
        self.assertEqual(cells_of(second), {0: [3_100, 3_000, 21, 18], 1: [1_100, 1_000, 3, 0]})
        self.assertEqual([(p.producer, p.amount) for p in second.payouts], [(5, 10), (6, 3)])

        # Consumer 1 pays 3: 80% of 21 is 16, 13 paid, 3 due: 2 to producer 5, 0 to 6.
        third = tick(DAY + 28 * HOUR_MS, state=second.state, cells=[(1, [1_100, 1_000, 3, 0])], transfers=[(1, 3)])
        self.assertEqual([(p.producer, p.amount) for p in third.payouts], [(5, 2)])
        self.assertEqual(third.payment_requests.consumer, [])

    def test_another_strategys_state_starts_from_zero_but_a_damaged_own_state_refuses(self):
        # The basic Rust grid's state (postcard bytes), as a hot-swap hands it over.
        decision = tick(DAY, state=bytes([7, 0, 3, 0, 200, 1]), usage=[(0, 1_000)], transfers=[(0, 10)], output=[(5, 1)])
        self.assertEqual([(p.producer, p.amount) for p in decision.payouts], [(5, 8)], "80% of the 10 it saw")
        self.assertEqual([m for _, m in self.logged], ["the saved state is another strategy's: starting from zero"])
        with self.assertRaises(Err):
            tick(DAY, state=b'{"strategy":"time-of-use@1","received":"lots"}')

    def test_a_configured_schedule_and_bad_settings(self):
        flat = ",".join(["4"] * 23 + ["12"])
        decision = tick(DAY + 23 * HOUR_MS, usage=[(3, 1_000)], config=[("price-by-hour", flat)])
        self.assertEqual(decision.payment_requests.owed, [12])
        with self.assertRaises(Err):
            tick(DAY, config=[("price-by-hour", "1,2,3")])
        with self.assertRaises(Err):
            tick(DAY, config=[("producer-share-percent", "101")])


if __name__ == "__main__":
    unittest.main()
