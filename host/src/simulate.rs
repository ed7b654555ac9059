//! A deterministic run of a small grid: sources → producers → grid ← consumers,
//! with simulated meters and an in-memory wallet, both strategies deciding every
//! tick. Same seed, same strategies: same run, to the token.

use std::fmt;

use anyhow::{Context, ensure};

use crate::books::{Books, GridNews, ProducerNews};
use crate::strategy::{
    Entity, EntityKind, GridDecision, GridInput, Output, ProducerDecision, ProducerInput,
    SourceOutput, Transfer, Usage,
};

/// The shape of the simulated grid.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub ticks: u32,
    pub tick_ms: u64,
    pub slice_ms: u64,
    pub start_ms: u64,
    pub seed: u64,
    pub consumers: u32,
    /// Sources per producer.
    pub producers: Vec<u32>,
    /// Tokens each consumer's wallet starts with.
    pub consumer_funds: u64,
    /// Consumers pay in multiples of this (as the original did).
    pub payment_step: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            ticks: 40,
            tick_ms: 15_000,
            slice_ms: 30_000,
            start_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
            seed: 7,
            consumers: 3,
            producers: vec![2, 1],
            consumer_funds: 1_000_000,
            payment_step: 25,
        }
    }
}

/// Whatever makes the decisions: WASM components in the host, or the same
/// strategy code called natively.
pub trait Deciders {
    fn grid(&mut self, input: &GridInput) -> anyhow::Result<(GridDecision, u64)>;
    fn producer(
        &mut self,
        producer: usize,
        input: &ProducerInput,
    ) -> anyhow::Result<(ProducerDecision, u64)>;
}

/// splitmix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// One tick, as printed.
#[derive(Debug, Clone, Default)]
pub struct TickReport {
    pub tick: u32,
    /// Since the scenario's start.
    pub elapsed_s: u64,
    /// Per producer: (slices reported, Wh, price).
    pub producer_reports: Vec<(usize, u64, u64)>,
    pub requests: Vec<(u32, u64, u64)>,
    pub payouts: Vec<(u32, u64)>,
    pub consumer_payments: Vec<(u32, u64)>,
    pub grid_fuel: u64,
    pub producer_fuel: u64,
}

/// Totals of a run; `conserved` is checked, not assumed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub used_wh: u64,
    pub generated_wh: u64,
    pub reported_wh: u64,
    pub billed_wh: u64,
    pub requested: u64,
    pub paid_by_consumers: u64,
    pub paid_to_producers: u64,
    pub grid_balance: u64,
    pub producer_balances: Vec<u64>,
    pub consumer_outstanding: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub ticks: Vec<TickReport>,
    pub totals: Totals,
    pub grid_books: Books,
}

/// Runs the scenario; errors if a strategy fails or money is not conserved.
/// Each tick: the meters report, the producers decide, the grid decides,
/// the consumers pay.
pub fn run(scenario: &Scenario, deciders: &mut dyn Deciders) -> anyhow::Result<Report> {
    let s = scenario;
    let mut world = World::new(s);
    let mut ticks = Vec::with_capacity(s.ticks as usize);
    for tick in 1..=s.ticks {
        let now = s.start_ms + u64::from(tick) * s.tick_ms;
        let mut line = TickReport {
            tick,
            elapsed_s: (now - s.start_ms) / 1000,
            ..TickReport::default()
        };
        world.meters_report(now);
        world.producers_decide(tick, now, deciders, &mut line)?;
        world.grid_decides(tick, now, deciders, &mut line)?;
        world.consumers_pay(now, &mut line);
        ticks.push(line);
    }
    world.finish(ticks)
}

/// Everything a simulated grid holds between ticks: books, the news each
/// strategy gets next, and the in-memory wallet.
struct World<'s> {
    s: &'s Scenario,
    rng: Rng,
    grid_books: Books,
    producer_books: Vec<Books>,
    grid_news: GridNews,
    producer_news: Vec<ProducerNews>,
    consumer_wallets: Vec<u64>,
    /// What each consumer still owes.
    outstanding: Vec<u64>,
    grid_wallet: u64,
    producer_wallets: Vec<u64>,
    totals: Totals,
    next_slice: u64,
}

impl<'s> World<'s> {
    fn new(s: &'s Scenario) -> Self {
        let consumers = s.consumers;
        let grid_news = GridNews {
            joined: (0..consumers)
                .map(|c| Entity::new(c, EntityKind::Consumer, format!("consumer-{c}")))
                .chain((0..s.producers.len()).map(|p| {
                    Entity::new(
                        consumers + p as u32,
                        EntityKind::Producer,
                        format!("producer-{p}"),
                    )
                }))
                .collect(),
            ..GridNews::default()
        };
        let producer_news = s
            .producers
            .iter()
            .map(|&sources| ProducerNews {
                joined: (0..sources)
                    .map(|i| Entity::new(i, EntityKind::Source, format!("source-{i}")))
                    .collect(),
                ..ProducerNews::default()
            })
            .collect();
        Self {
            s,
            rng: Rng(s.seed),
            grid_books: Books::default(),
            producer_books: vec![Books::default(); s.producers.len()],
            grid_news,
            producer_news,
            consumer_wallets: vec![s.consumer_funds; consumers as usize],
            outstanding: vec![0; consumers as usize],
            grid_wallet: 0,
            producer_wallets: vec![0; s.producers.len()],
            totals: Totals::default(),
            next_slice: s.start_ms / s.slice_ms,
        }
    }

    /// A producer's entity index at the grid: after the consumers'.
    fn producer_index(&self, p: usize) -> u32 {
        self.s.consumers + p as u32
    }

    /// Sources and consumers report every slice that ended by `now`.
    fn meters_report(&mut self, now: u64) {
        let s = self.s;
        while (self.next_slice + 1) * s.slice_ms <= now {
            let (start, end) = (
                self.next_slice * s.slice_ms,
                (self.next_slice + 1) * s.slice_ms,
            );
            for (p, &sources) in s.producers.iter().enumerate() {
                for source in 0..sources {
                    let wh = self.rng.between(2_000, 10_000);
                    self.totals.generated_wh += wh;
                    self.producer_news[p].outputs.push(SourceOutput {
                        source,
                        start_ms: start,
                        end_ms: end,
                        wh,
                    });
                }
            }
            for consumer in 0..s.consumers {
                let wh = self.rng.between(0, 1_000);
                self.totals.used_wh += wh;
                self.grid_news.usage.push(Usage {
                    consumer,
                    start_ms: start,
                    end_ms: end,
                    wh,
                });
            }
            self.next_slice += 1;
        }
    }

    /// Each producer decides on its news; what it reports is the grid's news.
    fn producers_decide(
        &mut self,
        tick: u32,
        now: u64,
        deciders: &mut dyn Deciders,
        line: &mut TickReport,
    ) -> anyhow::Result<()> {
        for p in 0..self.producer_books.len() {
            let news = std::mem::take(&mut self.producer_news[p]);
            let input = self.producer_books[p].producer_input(now, &[], news);
            let (decision, fuel) = deciders
                .producer(p, &input)
                .with_context(|| format!("producer {p}, tick {tick}"))?;
            self.producer_books[p].apply_producer(&decision);
            line.producer_fuel += fuel;
            let (mut wh, mut price) = (0, 0);
            for c in &decision.commands {
                wh += c.wh;
                price += c.price;
                self.grid_news.output.push(Output {
                    producer: self.producer_index(p),
                    start_ms: c.start_ms,
                    end_ms: c.end_ms,
                    wh: c.wh,
                    price: c.price,
                });
            }
            self.totals.reported_wh += wh;
            if !decision.commands.is_empty() {
                line.producer_reports
                    .push((decision.commands.len(), wh, price));
            }
        }
        Ok(())
    }

    /// The grid decides; its requests are owed, its payouts paid from its
    /// wallet (refused above its balance), and both sides of a payout see it
    /// on their next tick.
    fn grid_decides(
        &mut self,
        tick: u32,
        now: u64,
        deciders: &mut dyn Deciders,
        line: &mut TickReport,
    ) -> anyhow::Result<()> {
        let (consumers, producers) = (self.s.consumers, self.s.producers.len());
        let news = std::mem::take(&mut self.grid_news);
        let input = self.grid_books.grid_input(now, &[], news);
        let (decision, fuel) = deciders
            .grid(&input)
            .with_context(|| format!("grid, tick {tick}"))?;
        self.grid_books.apply_grid(&decision);
        line.grid_fuel = fuel;

        for r in decision.payment_requests.iter() {
            ensure!(
                r.consumer < consumers,
                "payment request for unknown consumer {}",
                r.consumer
            );
            self.totals.billed_wh += r.wh;
            self.totals.requested += r.owed;
            self.outstanding[r.consumer as usize] += r.owed;
            line.requests.push((r.consumer, r.wh, r.owed));
        }
        for p in &decision.payouts {
            let index = p.producer.checked_sub(consumers).map(|i| i as usize);
            let Some(i) = index.filter(|&i| i < producers) else {
                anyhow::bail!("payout to unknown producer {}", p.producer);
            };
            ensure!(
                p.amount <= self.grid_wallet,
                "payout of {} exceeds the grid's balance {}",
                p.amount,
                self.grid_wallet
            );
            self.grid_wallet -= p.amount;
            self.producer_wallets[i] += p.amount;
            self.totals.paid_to_producers += p.amount;
            line.payouts.push((p.producer, p.amount));
            let transfer = |entity, incoming| Transfer {
                entity: Some(entity),
                amount: p.amount,
                at_ms: now,
                incoming,
            };
            self.grid_news.transfers.push(transfer(p.producer, false));
            self.producer_news[i].transfers.push(Transfer {
                entity: None,
                ..transfer(0, true)
            });
        }
        Ok(())
    }

    /// Consumers pay what they owe, in whole steps, from their own wallets.
    fn consumers_pay(&mut self, now: u64, line: &mut TickReport) {
        let step = self.s.payment_step;
        for c in 0..self.outstanding.len() {
            let amount = (self.outstanding[c] / step * step).min(self.consumer_wallets[c]);
            if amount > 0 {
                self.consumer_wallets[c] -= amount;
                self.outstanding[c] -= amount;
                self.grid_wallet += amount;
                self.totals.paid_by_consumers += amount;
                line.consumer_payments.push((c as u32, amount));
                self.grid_news.transfers.push(Transfer {
                    entity: Some(c as u32),
                    amount,
                    at_ms: now,
                    incoming: true,
                });
            }
        }
    }

    /// The report, once money is shown to be conserved.
    fn finish(self, ticks: Vec<TickReport>) -> anyhow::Result<Report> {
        let total_money = self.s.consumer_funds * u64::from(self.s.consumers);
        let mut totals = self.totals;
        totals.grid_balance = self.grid_wallet;
        totals.producer_balances = self.producer_wallets;
        totals.consumer_outstanding = self.outstanding;
        let held = self.grid_wallet
            + totals.producer_balances.iter().sum::<u64>()
            + self.consumer_wallets.iter().sum::<u64>();
        ensure!(
            held == total_money,
            "money not conserved: {held} held, {total_money} issued"
        );
        Ok(Report {
            ticks,
            totals,
            grid_books: self.grid_books,
        })
    }
}

fn fmt_group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tick   time  producers: slices reported (Wh, tokens asked) | grid: payment requests · payouts | consumers pay"
        )?;
        for t in &self.ticks {
            let producers = if t.producer_reports.is_empty() {
                "-".to_string()
            } else {
                t.producer_reports
                    .iter()
                    .map(|(n, wh, price)| format!("{n}×({} Wh, {price})", fmt_group(*wh)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let requests = t
                .requests
                .iter()
                .map(|(c, wh, owed)| format!("c{c}:{}kWh={owed}", wh / 1000))
                .collect::<Vec<_>>();
            let payouts = t
                .payouts
                .iter()
                .map(|(p, a)| format!("p{p}+{a}"))
                .collect::<Vec<_>>();
            let pays = t
                .consumer_payments
                .iter()
                .map(|(c, a)| format!("c{c}→{a}"))
                .collect::<Vec<_>>();
            writeln!(
                f,
                "{:>4} {:>5}s  {producers} | {} · {} | {}",
                t.tick,
                t.elapsed_s,
                if requests.is_empty() {
                    "-".into()
                } else {
                    requests.join(" ")
                },
                if payouts.is_empty() {
                    "-".into()
                } else {
                    payouts.join(" ")
                },
                if pays.is_empty() {
                    "-".into()
                } else {
                    pays.join(" ")
                },
            )?;
        }
        let t = &self.totals;
        writeln!(f)?;
        writeln!(
            f,
            "energy    generated {} Wh, reported by producers {} Wh",
            fmt_group(t.generated_wh),
            fmt_group(t.reported_wh)
        )?;
        writeln!(
            f,
            "          used {} Wh, billed {} Wh (the rest carries over)",
            fmt_group(t.used_wh),
            fmt_group(t.billed_wh)
        )?;
        writeln!(
            f,
            "tokens    requested {}, paid by consumers {}, outstanding {:?}",
            t.requested, t.paid_by_consumers, t.consumer_outstanding
        )?;
        writeln!(
            f,
            "          paid to producers {} {:?}, held by the grid {}",
            t.paid_to_producers, t.producer_balances, t.grid_balance
        )?;
        let ticks = self.ticks.len().max(1) as u64;
        let grid: u64 = self.ticks.iter().map(|t| t.grid_fuel).sum();
        let producers: u64 = self.ticks.iter().map(|t| t.producer_fuel).sum();
        writeln!(
            f,
            "fuel      per tick on average: grid {}, producers {}",
            grid / ticks,
            producers / ticks
        )?;
        write!(
            f,
            "money     conserved: every token issued is held by a consumer, a producer or the grid"
        )
    }
}

/// Decides with loaded WASM components.
pub struct WasmDeciders {
    pub grid: crate::strategy::GridStrategy,
    pub producer: crate::strategy::ProducerStrategy,
}

impl Deciders for WasmDeciders {
    fn grid(&mut self, input: &GridInput) -> anyhow::Result<(GridDecision, u64)> {
        let outcome = self.grid.tick(input)?;
        Ok((outcome.decision, outcome.fuel_used))
    }

    fn producer(
        &mut self,
        _producer: usize,
        input: &ProducerInput,
    ) -> anyhow::Result<(ProducerDecision, u64)> {
        let outcome = self.producer.tick(input)?;
        Ok((outcome.decision, outcome.fuel_used))
    }
}
