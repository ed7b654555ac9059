//! Who decides in a grid tick. Always the active version, on everyone, in the
//! grid's own books. While an experiment runs, also each other variant on its
//! cohort (its requests are sent) and on the other cohorts (counterfactual,
//! without effects); while a shadow candidate runs, the candidate on everyone
//! without effects. Each run has books of its own and sees only its part of
//! the tick's news.

use std::collections::HashMap;

use crate::books::GridNews;
use crate::experiment::{Experiment, results};
use powerplug_strategy::{GridDecision, GridInput, GridStrategy, Transfer};

/// The consumers a run bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Everyone,
    Cohort(usize),
    OtherCohorts(usize),
}

/// What the host carries out of a run's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acts {
    /// The active version: payouts, and requests to every consumer billed by
    /// the control (everyone, without an experiment).
    Active,
    /// A variant's requests to its own cohort.
    Requests,
    /// Nothing: a counterfactual or a shadow.
    Nothing,
}

pub struct Run {
    pub slot: String,
    pub strategy: GridStrategy,
    /// The experiment variant this run decides for.
    pub variant: Option<usize>,
    pub part: Part,
    pub acts: Acts,
}

/// Each consumer's variant, for the consumers a tick mentions (and those
/// on the same results pages).
pub struct Cohorts<'a> {
    pub experiment: &'a Experiment,
    pub of: HashMap<u32, usize>,
    /// By variant: the payments its counterfactual books take in, by the
    /// payment model, instead of those made on other bills.
    pub modeled: Vec<Vec<Transfer>>,
    /// The results pages of the consumers named, read before deciding.
    pub met: results::Met,
}

impl Cohorts<'_> {
    /// A consumer the registry does not know is billed by the control.
    pub fn variant(&self, consumer: u32) -> usize {
        self.of
            .get(&consumer)
            .copied()
            .unwrap_or(self.experiment.control)
    }

    fn includes(&self, part: Part, consumer: u32) -> bool {
        match part {
            Part::Everyone => true,
            Part::Cohort(v) => self.variant(consumer) == v,
            Part::OtherCohorts(v) => self.variant(consumer) != v,
        }
    }

    /// The news a run on `part` sees: its consumers' usage and payments (on
    /// the other cohorts, the modeled ones), and everything about producers
    /// and membership. Payouts the grid made are
    /// news only for the books that decided them (the active run's).
    pub fn news(&self, part: Part, full: &GridNews) -> GridNews {
        if part == Part::Everyone {
            return full.clone();
        }
        GridNews {
            joined: full.joined.clone(),
            left: full.left.clone(),
            usage: full
                .usage
                .iter()
                .filter(|u| self.includes(part, u.consumer))
                .copied()
                .collect(),
            output: full.output.clone(),
            transfers: match part {
                Part::OtherCohorts(v) => self.modeled.get(v).cloned().unwrap_or_default(),
                _ => full
                    .transfers
                    .iter()
                    .filter(|t| t.incoming && t.entity.is_some_and(|c| self.includes(part, c)))
                    .cloned()
                    .collect(),
            },
        }
    }

    /// A variant may bill only its own cohort.
    pub fn check(&self, run: &Run, decision: &GridDecision) -> Result<(), String> {
        if run.acts != Acts::Requests {
            return Ok(());
        }
        match decision
            .payment_requests
            .iter()
            .find(|r| !self.includes(run.part, r.consumer))
        {
            Some(r) => Err(format!(
                "asked consumer {} of another cohort for payment",
                r.consumer
            )),
            None => Ok(()),
        }
    }
}

/// Whether the host sends `run`'s payment request to `consumer`.
pub fn sends(run: &Run, cohorts: Option<&Cohorts>, consumer: u32) -> bool {
    match run.acts {
        Acts::Active => cohorts.is_none_or(|c| c.variant(consumer) == c.experiment.control),
        Acts::Requests => true,
        Acts::Nothing => false,
    }
}

/// The runs of a tick with `experiment` running: the active version first,
/// on the grid's own books (they carry out payouts and the control cohort's
/// requests); then every variant, the control too, on its cohort and on the
/// others, in books of its own that measure its rule.
pub fn experiment_runs(
    active: &GridStrategy,
    experiment: &Experiment,
    variants: Vec<GridStrategy>,
) -> Vec<Run> {
    let mut runs = vec![Run {
        slot: super::SLOT.to_owned(),
        strategy: active.clone(),
        variant: None,
        part: Part::Everyone,
        acts: Acts::Active,
    }];
    for (v, strategy) in variants.into_iter().enumerate() {
        runs.push(Run {
            slot: experiment.live_slot(v),
            strategy: strategy.clone(),
            variant: Some(v),
            part: Part::Cohort(v),
            acts: match v == experiment.control {
                true => Acts::Nothing,
                false => Acts::Requests,
            },
        });
        runs.push(Run {
            slot: experiment.counterfactual_slot(v),
            strategy,
            variant: Some(v),
            part: Part::OtherCohorts(v),
            acts: Acts::Nothing,
        });
    }
    runs
}

/// Every run decides on its own input; the runs after the first in threads
/// of their own (they share nothing, and the machine may have cores to spare).
/// Each decision comes with the fuel it took.
pub fn decide(runs: &[Run], inputs: &[GridInput]) -> Vec<Result<(GridDecision, u64), String>> {
    let one = |run: &Run, input: &GridInput| {
        run.strategy
            .tick(input)
            .map(|o| {
                // The tick's span is this thread's: it records the active
                // run's fuel (the others run on threads of their own).
                tracing::Span::current().record("fuel", o.fuel_used);
                (o.decision, o.fuel_used)
            })
            .map_err(|f| f.to_string())
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = runs
            .iter()
            .zip(inputs)
            .skip(1)
            .map(|(run, input)| scope.spawn(move || one(run, input)))
            .collect();
        let mut all = Vec::with_capacity(runs.len());
        if let (Some(run), Some(input)) = (runs.first(), inputs.first()) {
            all.push(one(run, input));
        }
        for handle in others {
            all.push(
                handle
                    .join()
                    .unwrap_or_else(|_| Err("the strategy's thread panicked".to_owned())),
            );
        }
        all
    })
}
