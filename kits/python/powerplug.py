"""Powerplug's Python kit: what a strategy would otherwise copy from one to
the next, with the same rules as the Rust SDK's (powerplug_sdk::{config, cell,
time, payout, testing}):

- Config: settings as text, unsigned or signed integers, booleans;
- Cell and Cells: a cell's four u64 words as named fields, narrower than 64
  bits where you like ("u8" … "u64", "i8" … "i64", "bool");
- local(): the hour, minute, weekday and day of a tick at an offset from UTC;
- Books: the grid's money (income split on running totals, payouts in quanta
  by output share, departed producers, the metrics `powerplug demo` checks);
- GridHarness and ProducerHarness: run the strategy natively tick after tick
  as the host would, and refuse what the host would refuse.

The WIT types come from the bindings of the world being built (`wit_world`).
"""

from componentize_py_types import Err

# The WIT types the tick path needs, imported with the module so that they are
# in the component's snapshot: a module first imported during a tick needs
# files, which the sandbox does not have. (The harnesses import theirs lazily:
# they run natively.)
from wit_world.imports.types import CellBatch, Metric

try:
    from wit_world.exports.grid import Payout
except ImportError:  # the producer world's bindings
    Payout = None

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


# --- settings ---------------------------------------------------------------


class Config:
    """A strategy's settings; the last entry of a key wins. Every getter
    refuses the tick with the key's name when the value is not what it says."""

    def __init__(self, settings):
        self.values = {s.key: s.value for s in settings}

    def text(self, key, default):
        return self.values.get(key, default)

    def uint(self, key, default):
        return self._number(key, default, 0, U64_MAX, "an unsigned integer")

    def int(self, key, default):
        return self._number(key, default, I64_MIN, I64_MAX, "an integer")

    def bool(self, key, default):
        value = self.values.get(key)
        if value is None:
            return default
        if value.strip() in ("true", "false"):
            return value.strip() == "true"
        raise Err(f"config `{key}`: expected true or false, got {value!r}")

    def _number(self, key, default, low, high, expected):
        value = self.values.get(key)
        if value is None:
            return default
        text = value.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        if digits.isascii() and digits.isdigit() and low <= int(text) <= high:
            return int(text)
        raise Err(f"config `{key}`: expected {expected}, got {value!r}")


# --- typed cells ------------------------------------------------------------

_WIDTHS = {"bool": (1, False), **{f"u{b}": (b, False) for b in (8, 16, 32, 64)}}
_WIDTHS.update({f"i{b}": (b, True) for b in (8, 16, 32, 64)})


def layout(fields):
    """(name, word, shift, bits, signed, kind) of each field: fields fill a
    word in order; one that does not fit in the rest of a word starts the next."""
    at, word, used = [], 0, 0
    for name, kind in fields.items():
        if kind not in _WIDTHS:
            raise TypeError(f"cell field `{name}`: {kind!r} is not one of {', '.join(_WIDTHS)}")
        bits, signed = _WIDTHS[kind]
        if used + bits > 64:
            word, used = word + 1, 0
        at.append((name, word, used, bits, signed, kind))
        used += bits
    if word >= 4:
        raise TypeError("cell: the fields need more than a cell's four 64-bit words")
    return at


class Cell:
    """A cell as named fields. Subclass it with `fields`, in order:

        class Consumer(Cell):
            fields = {"usage_wh": "u64", "billed_wh": "u64", "tier": "u8", "loyal": "bool"}

    The layout is the books format: reorder or resize a field and you change
    what the words mean (bump the version in build.sh)."""

    fields = {}

    @classmethod
    def _plan(cls):
        """Per field, what reading and writing it takes, worked out once per
        class: (name, word, shift, mask, sign bit, low, high, bool?)."""
        plan = cls.__dict__.get("_planned")
        if plan is None:
            plan = []
            for name, word, shift, bits, signed, kind in layout(cls.fields):
                mask = (1 << bits) - 1
                low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, mask)
                plan.append((name, word, shift, mask, (1 << (bits - 1)) if signed else 0, low, high, kind == "bool"))
            cls._planned = plan
        return plan

    def __init__(self, words=(0, 0, 0, 0)):
        for name, word, shift, mask, sign, _, _, is_bool in self._plan():
            value = words[word] >> shift & mask
            if sign and value & sign:
                value -= sign << 1
            setattr(self, name, value == 1 if is_bool else value)

    def words(self):
        """The four words; a value out of its field's range refuses the tick."""
        words = [0, 0, 0, 0]
        for name, word, shift, mask, _, low, high, _ in self._plan():
            value = getattr(self, name)
            if type(value) not in (int, bool) or not low <= value <= high:
                kind = type(self).fields[name]
                raise Err(f"cell field `{name}` ({kind}): {value!r} is out of range")
            words[word] |= (value & mask) << shift
        return words

    def __eq__(self, other):
        return type(self) is type(other) and self.words() == other.words()

    def __repr__(self):
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.fields)
        return f"{type(self).__name__}({values})"


class Cells:
    """The cells of one tick: the ones the host sent (every entity the input
    mentions) and any the strategy adds. `batch()` gives back the changed ones."""

    def __init__(self, batch):
        words = batch.words
        if len(words) != 4 * len(batch.entity):
            raise Err(f"cells: {len(batch.entity)} entities need {4 * len(batch.entity)} words, got {len(words)}")
        self.cells = {e: list(words[4 * i : 4 * i + 4]) for i, e in enumerate(batch.entity)}
        self.changed = set()

    def get(self, entity, kind=None):
        """The entity's cell as `kind` (a Cell subclass), or its raw words."""
        words = self.cells.get(entity, [0, 0, 0, 0])
        return kind(words) if kind else list(words)

    def put(self, entity, cell):
        words = cell.words() if isinstance(cell, Cell) else list(cell)
        if self.cells.get(entity) != words:
            self.cells[entity] = words
            self.changed.add(entity)

    def batch(self):
        changed = sorted(self.changed)
        return CellBatch(entity=changed, words=[w for e in changed for w in self.cells[e]])


# --- time -------------------------------------------------------------------

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Local:
    """`now_ms` (UTC, as in a tick's input) at `offset_minutes` from UTC (60 for
    UTC+1, -300 for UTC-5): `day` (local days since 1970-01-01, the same all day
    long), `weekday` ("mon" … "sun"), `hour`, `minute`, `is_weekend`."""

    def __init__(self, now_ms, offset_minutes=0):
        local_ms = now_ms + offset_minutes * MINUTE_MS
        self.day, in_day = divmod(local_ms, DAY_MS)
        self.weekday = WEEKDAYS[(self.day + 3) % 7]  # 1970-01-01 was a Thursday
        self.hour, self.minute = in_day // HOUR_MS, in_day // MINUTE_MS % 60
        self.is_weekend = self.weekday in ("sat", "sun")


# --- the grid's money -------------------------------------------------------


class Rules:
    """Producers get `part` of every `of` tokens consumers pay; it is paid out
    in whole `quantum`s, at most once per `interval_ms`."""

    def __init__(self, part, of, quantum=40, interval_ms=10_000):
        if of <= 0 or not 0 <= part <= of:
            raise Err(f"a share of {part} in {of}: must be at most the whole, of a whole of at least 1")
        if quantum < 1:
            raise Err("config `payout-quantum`: must be at least 1")
        self.part, self.of, self.quantum, self.interval_ms = part, of, quantum, interval_ms

    @classmethod
    def from_config(cls, config, part, of):
        """Reads `payout-quantum` (40) and `payout-interval-ms` (10,000)."""
        return cls(part, of, config.uint("payout-quantum", 40), config.uint("payout-interval-ms", 10_000))

    def producers_part(self, amount):
        return amount * self.part // self.of


class Books:
    """The grid's money books, kept in the strategy's state (`dump()` gives a
    dict for JSON, `Books(that_dict)` reads it back)."""

    KEYS = ("income", "available", "running_costs_requested", "last_payout_ms", "producers_received")

    def __init__(self, saved=None):
        saved = saved or {}
        try:
            for key in self.KEYS:
                setattr(self, key, int(saved.get(key, 0)))
            # producer index -> [output Wh, owed (paid out by decision), received (confirmed)]
            self.producers = {int(p): [int(v) for v in t] for p, *t in saved.get("producers", [])}
        except (TypeError, ValueError) as e:
            raise Err(f"state: cannot read the books: {e!r}")

    def dump(self):
        books = {key: getattr(self, key) for key in self.KEYS}
        books["producers"] = [[p, *t] for p, t in sorted(self.producers.items())]
        return books

    def requested(self, rules, requested):
        """Books the running costs' part of the tokens a tick's bills request."""
        self.running_costs_requested += requested - rules.producers_part(requested)

    def settle(self, rules, input, paid=None):
        """The rest of a grid tick: forgets producers that left, adds their
        output, takes the confirmed transfers (calling `paid(consumer, amount)`
        for each consumer's payment), splits the new income, pays out when due.
        Returns (payouts, metrics): the metrics `income`, `paid-out`,
        `available`, `running-costs-received`."""
        for index in input.left:
            self.producers.pop(index, None)
        for o in input.output:
            self.producers.setdefault(o.producer, [0, 0, 0])[0] += o.wh
        before = self.income
        for t in input.transfers:
            if t.incoming:
                self.income += t.amount
                if t.entity is not None and paid:
                    paid(t.entity, t.amount)
            elif t.entity in self.producers:
                # One that left is forgotten: a late confirmation must not bring it back.
                self.producers[t.entity][2] += t.amount
        share = rules.producers_part(self.income) - rules.producers_part(before)
        self.available += share
        self.producers_received += share

        payouts = []
        if input.now_ms - self.last_payout_ms >= rules.interval_ms:
            self.last_payout_ms = input.now_ms
            distribution = self.available // rules.quantum * rules.quantum
            total = sum(t[0] for t in self.producers.values())
            if distribution > 0 and total > 0:
                for producer, t in sorted(self.producers.items()):
                    amount = distribution * t[0] // total
                    if amount > 0:
                        t[1] += amount
                        payouts.append(Payout(producer=producer, amount=amount))
        paid_out = sum(p.amount for p in payouts)
        self.available -= paid_out
        metrics = [
            Metric(name="income", value=self.income - before),
            Metric(name="paid-out", value=paid_out),
            Metric(name="available", value=self.available),
            Metric(name="running-costs-received", value=self.income - self.producers_received),
        ]
        return payouts, metrics


# --- native tests: the host's rules -----------------------------------------

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, where a harness's clock starts
MAX_WH = 1_000_000_000  # the most one output report may claim (1 GWh)
MAX_PRICE = 1_000_000_000_000  # the highest price it may ask


class HostRefused(Exception):
    """A decision the host would refuse: the tick fails and nothing is applied."""


_U32 = ("consumer", "producer", "entity", "source", "index")


def check_types(value, path="decision"):
    """Every number of a decision as the WIT types take it: indices u32,
    metric values s64, every other integer u64, and integers only. What
    fails here makes the component trap, where natively it would pass."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_types(item, f"{path}[{i}]")
    elif isinstance(value, (bytes, bytearray, str)) or value is None:
        pass
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            check_types(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, bool) or not isinstance(value, int):
        raise HostRefused(f"{path}: {value!r} is not an integer")
    else:
        field = path.rsplit(".", 1)[-1].split("[", 1)[0]
        if path.startswith("decision.metrics"):
            low, high, wit = I64_MIN, I64_MAX, "s64"
        elif field in _U32:
            low, high, wit = 0, 2**32 - 1, "u32"
        else:
            low, high, wit = 0, U64_MAX, "u64"
        if not low <= value <= high:
            raise HostRefused(f"{path}: {value} does not fit a {wit}: the component would trap")


def _total(values, what):
    total = sum(values)
    if total > U64_MAX:
        raise HostRefused(f"{what} add up to more than {U64_MAX}")
    return total


class _Host:
    """What both harnesses keep: the clock, settings, entities, state and cells."""

    def __init__(self, strategy, step_ms, config):
        from wit_world.imports.types import Setting

        self.strategy, self.step_ms, self.now_ms = strategy, step_ms, START_MS
        self.config = [Setting(key=k, value=v) for k, v in (config or {}).items()]
        self.state, self.cells, self.kinds, self.next_index = b"", {}, {}, 0
        self.joined, self.left, self.transfers = [], [], []

    def join(self, kind):
        from wit_world.imports.types import Entity, EntityKind

        index, self.next_index = self.next_index, self.next_index + 1
        self.kinds[index] = kind
        self.joined.append(Entity(index=index, kind=getattr(EntityKind, kind.upper()), id=f"{kind}-{index}"))
        return index

    def leave(self, index):
        if self.kinds.pop(index, None) is not None:
            self.left.append(index)

    def transfer(self, entity, amount, incoming):
        from wit_world.imports.types import Transfer

        self.transfers.append(Transfer(entity=entity, amount=amount, at_ms=self.now_ms, incoming=incoming))

    def input(self, mentioned):
        """The next tick's input but its readings: the cells are those of the
        `mentioned` entities and of the transfers' counterparties."""
        self.now_ms += self.step_ms
        entity = sorted(set(mentioned) | {t.entity for t in self.transfers if t.entity is not None})
        cells = CellBatch(entity=entity, words=[w for e in entity for w in self.cells.get(e, [0, 0, 0, 0])])
        return dict(
            now_ms=self.now_ms, config=self.config, state=self.state, joined=self.joined, left=self.left,
            cells=cells, transfers=self.transfers,
        )

    def check(self, decision):
        check_types(decision)
        if len(decision.cells.words) != 4 * len(decision.cells.entity):
            raise HostRefused(f"cells: {len(decision.cells.entity)} entities but {len(decision.cells.words)} words")

    def apply(self, decision):
        self.state = bytes(decision.state)
        c = decision.cells
        for i, e in enumerate(c.entity):
            self.cells[e] = list(c.words[4 * i : 4 * i + 4])
        self.joined, self.left, self.transfers = [], [], []

    def cell(self, entity, kind=None):
        words = self.cells.get(entity, [0, 0, 0, 0])
        return kind(words) if kind else list(words)


class GridHarness(_Host):
    """Runs a grid strategy (an instance of its exported class) tick after
    tick, every `step_ms` from START_MS, as the host would: state and cells
    carried over, each input holding the cells of the entities it mentions, and
    each decision held to the host's rules (HostRefused: nothing is applied and
    the news waits). Consumers pay their bills at the next tick unless
    `pays_bills` is False; payouts are confirmed at the next tick."""

    def __init__(self, strategy, config=None, step_ms=15_000):
        super().__init__(strategy, step_ms, config)
        self._usage, self._output, self.energy, self.funds, self.pays_bills = [], [], {}, 0, True

    def consumer(self):
        return self.join("consumer")

    def producer(self):
        return self.join("producer")

    def usage(self, consumer, wh):
        """`consumer` used `wh` in the step before the next tick."""
        self._usage.append((consumer, self.now_ms, self.now_ms + self.step_ms, wh))

    def output(self, producer, wh, price):
        """`producer` delivered `wh` in the step before the next tick, asking `price`."""
        from wit_world.exports.grid import Output

        self._output.append(Output(producer=producer, start_ms=self.now_ms, end_ms=self.now_ms + self.step_ms, wh=wh, price=price))

    def pays(self, consumer, amount):
        """`consumer` pays `amount` into the grid's wallet (confirmed at the next tick)."""
        self.funds += amount
        self.transfer(consumer, amount, True)

    def tick(self):
        from wit_world.exports.grid import GridInput, UsageBatch

        usage = sorted(self._usage, key=lambda u: (u[0], u[1]))
        output = sorted(self._output, key=lambda o: (o.producer, o.start_ms))
        decision = self.strategy.tick(
            GridInput(
                **self.input([u[0] for u in usage] + [o.producer for o in output]),
                usage=UsageBatch(*([u[i] for u in usage] for i in range(4))),
                output=output,
            )
        )
        energy = self._check(usage, decision)
        self.energy.update(energy)
        self.apply(decision)
        self._usage, self._output = [], []
        for p in decision.payouts:
            self.funds -= p.amount
            self.transfer(p.producer, p.amount, False)
        r = decision.payment_requests
        for consumer, owed in zip(r.consumer, r.owed):
            if self.pays_bills and owed > 0:
                self.pays(consumer, owed)
        return decision

    def _check(self, usage, d):
        self.check(d)
        r = d.payment_requests
        if not len(r.consumer) == len(r.wh) == len(r.owed):
            raise HostRefused("payment-requests: the batch's columns differ in length")
        _total(r.owed, "payment-requests: the amounts owed")
        _total(r.wh, "payment-requests: the Wh billed")
        paid_out = _total([p.amount for p in d.payouts], "payouts")
        for p in d.payouts:
            if self.kinds.get(p.producer) != "producer":
                raise HostRefused(f"payout to {p.producer}, not a producer")
            if p.amount == 0:
                raise HostRefused(f"a payout of 0 tokens to {p.producer}")
        if paid_out > self.funds:
            raise HostRefused(f"payouts of {paid_out} tokens, but the grid's wallet holds {self.funds}")
        energy = {}
        for consumer, _, _, wh in usage:
            e = energy.setdefault(consumer, list(self.energy.get(consumer, (0, 0))))
            e[0] += wh
        for consumer, wh in zip(r.consumer, r.wh):
            e = energy.setdefault(consumer, list(self.energy.get(consumer, (0, 0))))
            kind = self.kinds.get(consumer)
            if kind != "consumer" and not (kind is None and e[0] > 0):
                raise HostRefused(f"a payment request to entity {consumer}, which is not a registered consumer")
            e[1] += wh
            if e[1] > e[0]:
                raise HostRefused(f"consumer {consumer} would have been billed {e[1]} Wh in all, more than the {e[0]} Wh it reported")
        return {c: tuple(e) for c, e in energy.items()}


class ProducerHarness(_Host):
    """Runs a producer strategy tick after tick (every 60 s) as the host would."""

    def __init__(self, strategy, config=None, step_ms=60_000):
        super().__init__(strategy, step_ms, config)
        self._outputs = []

    def source(self):
        return self.join("source")

    def output(self, source, wh):
        """`source` generated `wh` in the step before the next tick."""
        from wit_world.exports.producer import SourceOutput

        self._outputs.append(SourceOutput(source=source, start_ms=self.now_ms, end_ms=self.now_ms + self.step_ms, wh=wh))

    def paid(self, amount):
        """The grid paid the producer `amount` (confirmed at the next tick)."""
        self.transfer(None, amount, True)

    def tick(self):
        from wit_world.exports.producer import ProducerInput

        outputs = sorted(self._outputs, key=lambda o: (o.source, o.start_ms))
        decision = self.strategy.tick(ProducerInput(**self.input([o.source for o in outputs]), outputs=outputs))
        self.check(decision)
        for i, c in enumerate(decision.commands):
            if not (c.start_ms < c.end_ms and c.wh <= MAX_WH and c.price <= MAX_PRICE):
                raise HostRefused(
                    f"commands[{i}]: an output the grid refuses ({c.start_ms} to {c.end_ms} ms, {c.wh} Wh for {c.price} tokens): "
                    f"it must start before it ends, at most {MAX_WH} Wh for at most {MAX_PRICE} tokens"
                )
        _total([c.wh for c in decision.commands], "commands: the Wh")
        _total([c.price for c in decision.commands], "commands: the prices")
        self.apply(decision)
        self._outputs = []
        return decision
