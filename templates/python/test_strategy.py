"""The strategy's first tests, run natively by build.sh before it builds the
component (the WIT types come from bindings generated into build/bindings, the
kit from kit/python). Run them alone:
PYTHONPATH=build/bindings:kit/python python3 -m unittest test_strategy

GridHarness runs the strategy tick after tick as the host would, carrying its
state and cells, and raises HostRefused where the host would refuse a decision
(a negative amount, a bill for more than a consumer used, a payout the wallet
cannot make); consumers pay their bills at the next tick."""

import json
import unittest

from componentize_py_types import Err
from powerplug import GridHarness

import strategy
from strategy import Consumer


class FirstTest(unittest.TestCase):
    def test_bills_whole_kwh_and_carries_the_rest(self):
        grid = GridHarness(strategy.Grid())
        alice, bob = grid.consumer(), grid.consumer()
        grid.usage(alice, 1_600)
        grid.usage(bob, 300)
        r = grid.tick().payment_requests
        self.assertEqual((r.consumer, r.wh, r.owed), ([alice], [1_000], [5]))
        grid.usage(alice, 1_900)  # 600 carried + 1,900: 2 kWh billed, 500 carried
        r = grid.tick().payment_requests
        self.assertEqual((r.consumer, r.wh, r.owed), ([alice], [2_000], [10]))
        cell = grid.cell(alice, Consumer)
        self.assertEqual((cell.billed_wh, cell.carried_wh, cell.owed, cell.paid), (3_000, 500, 15, 5))

    def test_producers_are_paid_their_share_of_what_consumers_paid(self):
        grid = GridHarness(strategy.Grid())
        alice, sun, wind = grid.consumer(), grid.producer(), grid.producer()
        paid_out = 0
        for _ in range(30):
            grid.usage(alice, 4_000)
            grid.output(sun, 100, 6)
            grid.output(wind, 300, 6)
            paid_out += sum(p.amount for p in grid.tick().payouts)
        books = json.loads(grid.state)
        # Money is neither lost nor created: paid = running costs + paid out + available.
        self.assertEqual(books["producers_received"], paid_out + books["available"])
        self.assertEqual(books["producers_received"], books["income"] * 4 // 5)
        self.assertGreater(paid_out, 0)

    def test_the_price_is_a_setting(self):
        grid = GridHarness(strategy.Grid(), {"price-per-kwh": "7"})
        grid.usage(grid.consumer(), 3_000)
        self.assertEqual(grid.tick().payment_requests.owed, [21])
        grid = GridHarness(strategy.Grid(), {"price-per-kwh": "seven"})
        with self.assertRaises(Err):
            grid.tick()
