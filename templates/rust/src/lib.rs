//! {{name}}: a grid strategy. It bills each consumer `price-per-kwh` tokens (5
//! unless configured) for every whole kWh it used; the fraction carries over.
//!
//! Cells, four words per consumer: [billed Wh, Wh not billed yet, -, -]. All
//! money and energy are integers (tokens, Wh). The strategy keeps no state of
//! its own and pays no producer: see plugins/basic-grid-strategy in the
//! Powerplug checkout for both, and docs/strategy-guide.md for the contract.

use powerplug_sdk::grid::{GridOut, GridStrategy, GridTick};
use powerplug_sdk::{Config, Error};

pub struct FlatRate {
    price_per_kwh: u64,
}

impl GridStrategy for FlatRate {
    /// Anything serde can encode; per-consumer data goes in cells.
    type State = ();

    fn new(config: &Config<'_>) -> Result<Self, Error> {
        Ok(Self {
            price_per_kwh: config.u64_or("price-per-kwh", 5)?,
        })
    }

    fn tick(&self, _: &mut (), tick: &GridTick<'_>, out: &mut GridOut) -> Result<(), Error> {
        for u in tick.usage {
            out.cells.update(u.consumer, |w| w[1] += u.wh);
        }
        let (mut billed_wh, mut requested) = (0, 0);
        let GridOut {
            cells,
            payment_requests,
            ..
        } = &mut *out;
        cells.for_each_changed(|consumer, w| {
            let kwh = w[1] / 1000;
            w[1] %= 1000;
            w[0] += kwh * 1000;
            if kwh > 0 {
                let owed = kwh * self.price_per_kwh;
                payment_requests.push(powerplug_sdk::grid::PaymentRequest {
                    consumer,
                    wh: kwh * 1000,
                    owed,
                });
                billed_wh += kwh * 1000;
                requested += owed;
            }
        });
        out.metric("billed-wh", billed_wh as i64);
        out.metric("requested", requested as i64);
        Ok(())
    }
}

// What the state and cell words mean, by name and version: the host hands this
// strategy only books of the same format (change the version when you change
// their meaning).
powerplug_sdk::books_format!("{{name}}@1");
powerplug_sdk::export_grid_strategy!(FlatRate);

/// The first test: the same code, called natively (`cargo test`).
#[cfg(test)]
mod tests {
    use super::*;
    use powerplug_sdk::grid::{GridInput, PaymentRequestBatch, UsageBatch, run};
    use powerplug_sdk::{CellBatch, Setting};

    fn tick(usage: &[(u32, u64)], cells: &[(u32, [u64; 4])], config: &[(&str, &str)]) -> GridInput {
        let now = 1_767_226_500_000; // 2026-01-01T00:15Z
        GridInput {
            now_ms: now,
            config: config
                .iter()
                .map(|(k, v)| Setting {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            state: vec![],
            joined: vec![],
            left: vec![],
            cells: CellBatch {
                entity: cells.iter().map(|c| c.0).collect(),
                words: cells.iter().flat_map(|c| c.1).collect(),
            },
            usage: UsageBatch {
                consumer: usage.iter().map(|u| u.0).collect(),
                start_ms: vec![now - 900_000; usage.len()],
                end_ms: vec![now; usage.len()],
                wh: usage.iter().map(|u| u.1).collect(),
            },
            output: vec![],
            transfers: vec![],
        }
    }

    #[test]
    fn bills_whole_kwh_and_carries_the_rest() {
        // Consumer 1 had 600 Wh carried over and uses 1,900: 2 kWh billed, 500 Wh carried.
        let input = tick(&[(1, 1_900), (2, 300)], &[(1, [4_000, 600, 0, 0])], &[]);
        let decision = run::<FlatRate>(input).unwrap();
        assert_eq!(
            decision.payment_requests,
            PaymentRequestBatch {
                consumer: vec![1],
                wh: vec![2_000],
                owed: vec![10],
            }
        );
        assert_eq!(decision.cells.entity, [1, 2]);
        assert_eq!(decision.cells.words, [6_000, 500, 0, 0, 0, 300, 0, 0]);
    }

    #[test]
    fn the_price_is_a_setting() {
        let decision = run::<FlatRate>(tick(&[(0, 3_000)], &[], &[("price-per-kwh", "7")]));
        assert_eq!(decision.unwrap().payment_requests.owed, [21]);
        let refused = run::<FlatRate>(tick(&[(0, 3_000)], &[], &[("price-per-kwh", "seven")]));
        assert!(refused.unwrap_err().contains("price-per-kwh"));
    }
}
