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
pub fn run(scenario: &Scenario, deciders: &mut dyn Deciders) -> anyhow::Result<Report> {
    let s = scenario;
    let mut rng = Rng(s.seed);
    let consumers = s.consumers;
    let producer_index = |p: usize| consumers + p as u32;

    let mut grid_books = Books::default();
    let mut producer_books = vec![Books::default(); s.producers.len()];
    let mut grid_news = GridNews {
        joined: (0..consumers)
            .map(|c| Entity::new(c, EntityKind::Consumer, format!("consumer-{c}")))
            .chain((0..s.producers.len()).map(|p| {
                Entity::new(
                    producer_index(p),
                    EntityKind::Producer,
                    format!("producer-{p}"),
                )
            }))
            .collect(),
        ..GridNews::default()
    };
    let mut producer_news: Vec<ProducerNews> = s
        .producers
        .iter()
        .map(|&sources| ProducerNews {
            joined: (0..sources)
                .map(|i| Entity::new(i, EntityKind::Source, format!("source-{i}")))
                .collect(),
            ..ProducerNews::default()
        })
        .collect();

    // The wallet: balances, and what each consumer still owes.
    let mut consumer_wallets = vec![s.consumer_funds; consumers as usize];
    let mut outstanding = vec![0u64; consumers as usize];
    let mut grid_wallet = 0u64;
    let mut producer_wallets = vec![0u64; s.producers.len()];
    let total_money = s.consumer_funds * u64::from(consumers);

    let mut report = Report::default();
    let mut totals = Totals::default();
    let mut next_slice = s.start_ms / s.slice_ms;

    for tick in 1..=s.ticks {
        let now = s.start_ms + u64::from(tick) * s.tick_ms;
        let mut line = TickReport {
            tick,
            elapsed_s: (now - s.start_ms) / 1000,
            ..TickReport::default()
        };

        // Meters report every slice that ended.
        while (next_slice + 1) * s.slice_ms <= now {
            let (start, end) = (next_slice * s.slice_ms, (next_slice + 1) * s.slice_ms);
            for (p, &sources) in s.producers.iter().enumerate() {
                for source in 0..sources {
                    let wh = rng.between(2_000, 10_000);
                    totals.generated_wh += wh;
                    producer_news[p].outputs.push(SourceOutput {
                        source,
                        start_ms: start,
                        end_ms: end,
                        wh,
                    });
                }
            }
            for consumer in 0..consumers {
                let wh = rng.between(0, 1_000);
                totals.used_wh += wh;
                grid_news.usage.push(Usage {
                    consumer,
                    start_ms: start,
                    end_ms: end,
                    wh,
                });
            }
            next_slice += 1;
        }

        for (p, books) in producer_books.iter_mut().enumerate() {
            let input = books.producer_input(now, &[], std::mem::take(&mut producer_news[p]));
            let (decision, fuel) = deciders
                .producer(p, &input)
                .with_context(|| format!("producer {p}, tick {tick}"))?;
            books.apply_producer(&decision);
            line.producer_fuel += fuel;
            let (mut wh, mut price) = (0, 0);
            for c in &decision.commands {
                wh += c.wh;
                price += c.price;
                grid_news.output.push(Output {
                    producer: producer_index(p),
                    start_ms: c.start_ms,
                    end_ms: c.end_ms,
                    wh: c.wh,
                    price: c.price,
                });
            }
            totals.reported_wh += wh;
            if !decision.commands.is_empty() {
                line.producer_reports
                    .push((decision.commands.len(), wh, price));
            }
        }

        let input = grid_books.grid_input(now, &[], std::mem::take(&mut grid_news));
        let (decision, fuel) = deciders
            .grid(&input)
            .with_context(|| format!("grid, tick {tick}"))?;
        grid_books.apply_grid(&decision);
        line.grid_fuel = fuel;

        for r in decision.payment_requests.iter() {
            ensure!(
                r.consumer < consumers,
                "payment request for unknown consumer {}",
                r.consumer
            );
            totals.billed_wh += r.wh;
            totals.requested += r.owed;
            outstanding[r.consumer as usize] += r.owed;
            line.requests.push((r.consumer, r.wh, r.owed));
        }
        for p in &decision.payouts {
            let index = p.producer.checked_sub(consumers).map(|i| i as usize);
            let Some(i) = index.filter(|&i| i < s.producers.len()) else {
                anyhow::bail!("payout to unknown producer {}", p.producer);
            };
            ensure!(
                p.amount <= grid_wallet,
                "payout of {} exceeds the grid's balance {grid_wallet}",
                p.amount
            );
            grid_wallet -= p.amount;
            producer_wallets[i] += p.amount;
            totals.paid_to_producers += p.amount;
            line.payouts.push((p.producer, p.amount));
            // Both sides see the confirmed transfer on their next tick.
            let transfer = |entity, incoming| Transfer {
                entity: Some(entity),
                amount: p.amount,
                at_ms: now,
                incoming,
            };
            grid_news.transfers.push(transfer(p.producer, false));
            producer_news[i].transfers.push(Transfer {
                entity: None,
                ..transfer(0, true)
            });
        }

        // Consumers pay what they owe, in whole steps, from their own wallets.
        for c in 0..consumers as usize {
            let amount =
                (outstanding[c] / s.payment_step * s.payment_step).min(consumer_wallets[c]);
            if amount > 0 {
                consumer_wallets[c] -= amount;
                outstanding[c] -= amount;
                grid_wallet += amount;
                totals.paid_by_consumers += amount;
                line.consumer_payments.push((c as u32, amount));
                grid_news.transfers.push(Transfer {
                    entity: Some(c as u32),
                    amount,
                    at_ms: now,
                    incoming: true,
                });
            }
        }
        report.ticks.push(line);
    }

    totals.grid_balance = grid_wallet;
    totals.producer_balances = producer_wallets;
    totals.consumer_outstanding = outstanding;
    let held = grid_wallet
        + totals.producer_balances.iter().sum::<u64>()
        + consumer_wallets.iter().sum::<u64>();
    ensure!(
        held == total_money,
        "money not conserved: {held} held, {total_money} issued"
    );
    report.totals = totals;
    report.grid_books = grid_books;
    Ok(report)
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
