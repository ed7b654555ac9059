"""Tests of the Python kit's library, natively, with the grid world's
bindings on the path (tests/tests/e2e/languages.rs generates them):
PYTHONPATH=build/bindings:kits/python python3 -m unittest kits/python/test_powerplug.py"""

import json
import unittest

from componentize_py_types import Err
from powerplug import Books, Cell, Cells, Config, GridHarness, HostRefused, Local, Rules, check_types
from wit_world import exports
from wit_world.exports.grid import GridDecision, PaymentRequestBatch
from wit_world.imports.types import CellBatch, Setting


class Narrow(Cell):
    fields = {"wh": "u64", "count": "u32", "tier": "u8", "delta": "i16", "flag": "bool", "last": "i64"}


class CellTest(unittest.TestCase):
    def test_fields_round_trip_at_their_extremes(self):
        c = Narrow()
        c.wh, c.count, c.tier, c.delta, c.flag, c.last = 2**64 - 1, 2**32 - 1, 255, -32768, True, -(2**63)
        words = c.words()
        # u32 + u8 + i16 + bool share word 1; i64 starts word 2.
        self.assertEqual(words[0], 2**64 - 1)
        self.assertEqual(words[1], (2**32 - 1) | 255 << 32 | 0x8000 << 40 | 1 << 56)
        self.assertEqual(words[2], 2**63)
        self.assertEqual(Narrow(words), c)

    def test_a_value_out_of_range_refuses_the_tick(self):
        for field, value in [("tier", 256), ("count", -1), ("delta", 40_000), ("wh", 1.5), ("wh", 2**64)]:
            c = Narrow()
            setattr(c, field, value)
            with self.assertRaises(Err, msg=field):
                c.words()

    def test_fields_beyond_four_words_are_refused(self):
        class TooBig(Cell):
            fields = {"a": "u64", "b": "u64", "c": "u64", "d": "u64", "e": "bool"}

        with self.assertRaises(TypeError):
            TooBig()

    def test_cells_give_back_only_what_changed_sorted(self):
        cells = Cells(CellBatch(entity=[2, 5], words=[1, 2, 3, 4, 0, 0, 0, 0]))
        cells.put(5, [0, 0, 0, 0])  # unchanged
        cells.put(9, [7, 0, 0, 0])
        cells.put(2, [1, 2, 3, 5])
        self.assertEqual(cells.batch(), CellBatch(entity=[2, 9], words=[1, 2, 3, 5, 7, 0, 0, 0]))


class ConfigTest(unittest.TestCase):
    def test_getters_name_the_key(self):
        config = Config([Setting(key="a", value=" 7 "), Setting(key="b", value="-3"), Setting(key="c", value="true")])
        self.assertEqual((config.uint("a", 0), config.int("b", 0), config.bool("c", False)), (7, -3, True))
        self.assertEqual(config.uint("missing", 4), 4)
        for getter, key in [(config.uint, "b"), (config.bool, "a"), (config.int, "c")]:
            with self.assertRaisesRegex(Err, f"`{key}`"):
                getter(key, 0)


class LocalTest(unittest.TestCase):
    def test_offsets_move_the_hour_and_the_day_across_midnight(self):
        t = 1_767_226_500_000  # 2026-01-01T00:15Z, a Thursday
        utc, new_york = Local(t), Local(t, -300)
        self.assertEqual((utc.weekday, utc.hour, utc.minute), ("thu", 0, 15))
        self.assertEqual((new_york.weekday, new_york.hour, new_york.day), ("wed", 19, utc.day - 1))
        self.assertEqual((Local(0, -60).day, Local(0, -60).weekday), (-1, "wed"))
        self.assertTrue(Local(t + 2 * 86_400_000).is_weekend)


class Flat(exports.Grid):
    """Bills every whole kWh at 5 (or `owed` as set by a test), books by the kit."""

    owed = None

    def tick(self, input):
        config = Config(input.config)
        rules = Rules.from_config(config, config.uint("producers", 4), 5)
        books = Books(json.loads(input.state) if input.state else None)
        cells = Cells(input.cells)
        requests = PaymentRequestBatch(consumer=[], wh=[], owed=[])
        for consumer, wh in zip(input.usage.consumer, input.usage.wh):
            requests.consumer.append(consumer)
            requests.wh.append(wh // 1000 * 1000)
            requests.owed.append(self.owed if self.owed is not None else wh // 1000 * 5)
        books.requested(rules, sum(requests.owed))

        def paid(consumer, amount):
            words = cells.get(consumer)
            words[3] += amount
            cells.put(consumer, words)

        payouts, metrics = books.settle(rules, input, paid)
        return GridDecision(json.dumps(books.dump()).encode(), cells.batch(), requests, payouts, metrics)


class BooksTest(unittest.TestCase):
    def test_income_is_split_on_running_totals_and_paid_in_quanta_by_output(self):
        grid = GridHarness(Flat())
        grid.pays_bills = False
        alice, sun, wind = grid.consumer(), grid.producer(), grid.producer()
        paid_out = 0
        for _ in range(40):
            grid.usage(alice, 600)
            grid.pays(alice, 3)
            grid.output(sun, 100, 9)
            grid.output(wind, 300, 9)
            paid_out += sum(p.amount for p in grid.tick().payouts)
            books = json.loads(grid.state)
            self.assertEqual(books["producers_received"], books["income"] * 4 // 5)
            self.assertEqual(books["producers_received"], paid_out + books["available"])
        # The same figures as the Rust SDK's test of its payout module.
        self.assertEqual(books["producers"], [[1, 4_000, 20, 20], [2, 12_000, 60, 60]])
        self.assertEqual(books["available"], 96 - 80)
        self.assertEqual(grid.cell(alice)[3], 120)

    def test_a_producer_that_leaves_is_forgotten(self):
        grid = GridHarness(Flat())
        alice, sun, wind = grid.consumer(), grid.producer(), grid.producer()
        for _ in range(10):
            grid.usage(alice, 10_000)
            grid.output(sun, 100, 9)
            grid.output(wind, 100, 9)
            grid.tick()
        grid.leave(wind)
        grid.tick()  # also confirms wind's last payout
        self.assertEqual([p[0] for p in json.loads(grid.state)["producers"]], [sun])
        grid.usage(alice, 10_000)
        self.assertTrue(all(p.producer == sun for p in grid.tick().payouts))


class HarnessTest(unittest.TestCase):
    def test_what_the_component_could_not_hand_over_is_refused_natively(self):
        for owed, says in [(-5, "does not fit a u64"), (2**64, "does not fit a u64"), (2.5, "is not an integer")]:
            strategy = Flat()
            strategy.owed = owed
            grid = GridHarness(strategy)
            grid.usage(grid.consumer(), 1_000)
            with self.assertRaisesRegex(HostRefused, says):
                grid.tick()
            self.assertEqual(grid.state, b"", "nothing applied")

    def test_a_bill_for_more_than_was_reported_is_refused(self):
        bad = GridHarness(Flat())
        bob = bad.consumer()
        bad.usage(bob, 999)
        bad.strategy.tick = lambda input: GridDecision(b"", CellBatch([], []), PaymentRequestBatch([bob], [1_000], [5]), [], [])
        with self.assertRaisesRegex(HostRefused, "billed 1000 Wh in all, more than the 999 Wh"):
            bad.tick()

    def test_metric_values_may_be_negative_but_indices_fit_u32(self):
        check_types(GridDecision(b"", CellBatch([], []), PaymentRequestBatch([], [], []), [], []))
        with self.assertRaisesRegex(HostRefused, "u32"):
            check_types(CellBatch(entity=[2**32], words=[0, 0, 0, 0]), "decision.cells")


if __name__ == "__main__":
    unittest.main()
