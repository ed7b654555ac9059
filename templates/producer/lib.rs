//! {{name}}: a producer strategy. Each tick it reports what its sources
//! delivered since its last report as one output, from the end of that report
//! to now (an hour at most: the grid drops a longer one), asking
//! `price-per-kwh` tokens (4 unless configured) per kWh; the fraction of a
//! token carries over. A report claims at most 1 GWh (the host refuses more);
//! the rest waits for the next tick.
//!
//! State: the end of the last report, the thousandths of a token carried, the
//! Wh waiting. The grid keeps one report per start time, so every report
//! starts where the last one ended. See plugins/basic-producer-strategy in the
//! Powerplug checkout for slices and late data, and docs/strategy-guide.md for
//! the contract.

use powerplug_sdk::producer::{ProducerOut, ProducerStrategy, ProducerTick};
use powerplug_sdk::{Config, Error};
use serde::{Deserialize, Serialize};

/// The most one report may claim, Wh.
const MAX_REPORT_WH: u64 = 1_000_000_000;
/// The longest time one report may cover: the grid drops a longer one.
const MAX_SPAN_MS: u64 = 3_600_000;

pub struct FlatPrice {
    price_per_kwh: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    last_end_ms: u64,
    carried_milli: u64,
    waiting_wh: u64,
}

impl ProducerStrategy for FlatPrice {
    type State = State;

    fn new(config: &Config<'_>) -> Result<Self, Error> {
        Ok(Self {
            price_per_kwh: config.u64_or("price-per-kwh", 4)?,
        })
    }

    fn tick(&self, state: &mut State, tick: &ProducerTick<'_>, out: &mut ProducerOut) -> Result<(), Error> {
        let delivered: u64 = tick.outputs.iter().map(|o| o.wh).sum();
        let total = state.waiting_wh + delivered;
        let wh = total.min(MAX_REPORT_WH);
        // The first report starts with the first reading.
        let start = match state.last_end_ms {
            0 => tick.outputs.iter().map(|o| o.start_ms).min().unwrap_or(tick.now_ms),
            end => end,
        }
        .max(tick.now_ms.saturating_sub(MAX_SPAN_MS));
        let mut asked = 0;
        if wh > 0 && start < tick.now_ms {
            let milli = u128::from(wh) * u128::from(self.price_per_kwh) + u128::from(state.carried_milli);
            asked = u64::try_from(milli / 1000).map_err(|_| "the price overflows 64 bits")?;
            state.carried_milli = (milli % 1000) as u64;
            out.report_output(start, tick.now_ms, wh, asked);
            state.last_end_ms = tick.now_ms;
            state.waiting_wh = total - wh;
        } else {
            state.waiting_wh = total;
        }
        out.metric("reported-wh", out.commands.iter().map(|c| c.wh).sum::<u64>() as i64);
        out.metric("asked", asked as i64);
        out.metric("waiting-wh", state.waiting_wh as i64);
        Ok(())
    }
}

// What the state and cell words mean, by name and version: the host hands this
// strategy only books of the same format (change the version when you change
// their meaning).
powerplug_sdk::books_format!("{{name}}@1");
powerplug_sdk::export_producer_strategy!(FlatPrice);

/// The first test: the same code, called natively (`cargo test`).
#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_sdk::producer::{ProducerInput, SourceOutput, run};
    use powerplug_sdk::{CellBatch, Setting};

    const NOW: u64 = 1_767_226_500_000; // 2026-01-01T00:15Z

    /// A tick at `now` of `(source, Wh)` readings of the minute before it.
    fn tick(now: u64, readings: &[(u32, u64)], state: Vec<u8>, price: Option<&str>) -> ProducerInput {
        ProducerInput {
            now_ms: now,
            config: price
                .map(|p| Setting {
                    key: "price-per-kwh".into(),
                    value: p.into(),
                })
                .into_iter()
                .collect(),
            state,
            joined: vec![],
            left: vec![],
            cells: CellBatch {
                entity: vec![],
                words: vec![],
            },
            outputs: readings
                .iter()
                .map(|&(source, wh)| SourceOutput {
                    source,
                    start_ms: now - 60_000,
                    end_ms: now - 30_000,
                    wh,
                })
                .collect(),
            transfers: vec![],
        }
    }

    #[test]
    fn reports_what_came_in_since_the_last_report_and_carries_the_fraction() {
        // 2,700 Wh at 4 a kWh: 10.8 tokens, 10 asked, 0.8 carried.
        let first = run::<FlatPrice>(tick(NOW, &[(1, 1_500), (2, 1_200)], vec![], None)).unwrap();
        let c = &first.commands[0];
        assert_eq!((c.start_ms, c.end_ms, c.wh, c.price), (NOW - 60_000, NOW, 2_700, 10));
        // 300 Wh more: 1.2 + 0.8 = 2 tokens, from the end of the last report.
        let next = tick(NOW + 60_000, &[(1, 300)], first.state, None);
        let second = run::<FlatPrice>(next).unwrap();
        let c = &second.commands[0];
        assert_eq!((c.start_ms, c.end_ms, c.wh, c.price), (NOW, NOW + 60_000, 300, 2));
    }

    #[test]
    fn the_price_is_a_setting() {
        let decision = run::<FlatPrice>(tick(NOW, &[(1, 3_000)], vec![], Some("7"))).unwrap();
        assert_eq!(decision.commands[0].price, 21);
        let refused = run::<FlatPrice>(tick(NOW, &[(1, 3_000)], vec![], Some("seven")));
        assert!(refused.unwrap_err().contains("price-per-kwh"));
    }

    #[test]
    fn three_sources_at_the_limit_are_reported_within_it_the_rest_later() {
        // The harness runs tick after tick as the host would, state carried
        // over, and fails a tick whose report the grid would refuse.
        use powerplug_sdk::testing::{MAX_WH, ProducerHarness};
        let mut producer = ProducerHarness::<FlatPrice>::new();
        for _ in 0..3 {
            let source = producer.source();
            producer.output(source, MAX_WH);
        }
        let reported: Vec<u64> = (0..4)
            .flat_map(|_| producer.tick().unwrap().commands)
            .map(|c| c.wh)
            .collect();
        assert_eq!(reported, [MAX_WH; 3]);
    }
}
