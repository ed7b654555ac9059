//! What a grid tick reads: the pending inbox records, membership news and
//! wallet transfers since the last tick, as the strategy's news.

use powerplug_domain::EntityKind;
use std::collections::HashMap;

use super::{Grid, MAX_RECORDS_PER_TICK};
use crate::books::GridNews;
use crate::inbox;
use crate::limits::{MAX_MEMBERSHIP_PER_TICK, MAX_TRANSFERS_PER_TICK};
use crate::registry::{self, Registration};
use powerplug_ledger as wallet;
use powerplug_storage as storage;
use powerplug_strategy::{Entity, Output, Transfer, Usage};

/// Keeps the news of at most `most` entities, the lowest indexes first; an
/// entity's joining and leaving stay together, so the strategy never hears
/// of a leaving before the joining it follows.
fn cap_membership(joined: &mut Vec<u32>, left: &mut Vec<u32>, most: usize) {
    let mut indexes: Vec<u32> = joined.iter().chain(left.iter()).copied().collect();
    indexes.sort_unstable();
    indexes.dedup();
    if let Some(&last) = indexes.get(most.saturating_sub(1))
        && indexes.len() > most
    {
        joined.retain(|&i| i <= last);
        left.retain(|&i| i <= last);
    }
}

/// What a tick consumes, with the news it makes.
pub(super) struct Pending {
    pub records: Vec<inbox::Record>,
    pub joined: Vec<u32>,
    pub left: Vec<u32>,
    /// The wallet cursor after the transfers in the news.
    pub next_cursor: u64,
    pub registrations: HashMap<u32, Registration>,
    pub news: GridNews,
    pub usage_wh: u64,
    pub output_wh: u64,
    /// Payments that came in.
    pub income: u64,
}

impl Grid {
    pub(super) fn pending(&self) -> anyhow::Result<Pending> {
        let db = self.db();
        let records = inbox::pending(db, MAX_RECORDS_PER_TICK)?;
        // Twice the cap: a joining and a leaving each for the lowest entities.
        let (mut joined, mut left) =
            registry::news_since_tick(db, 2 * MAX_MEMBERSHIP_PER_TICK + 2)?;
        cap_membership(&mut joined, &mut left, MAX_MEMBERSHIP_PER_TICK);
        let cursor: u64 = storage::meta(db, super::TRANSFER_CURSOR)?.unwrap_or(0);
        let transfers = wallet::transfers_page(db, self.account(), cursor, MAX_TRANSFERS_PER_TICK)?;
        // Only the joinings, the transfers' counterparties and records kept
        // before they carried their sender's kind: a tick costs what it
        // carries, not a registration read per reading.
        let read = db.read()?;
        let mut registrations: HashMap<u32, Registration> = HashMap::new();
        let named = (records.iter())
            .filter(|r| r.kind.is_none())
            .map(|r| r.entity)
            .chain(joined.iter().copied());
        registry::add_by_index(&*read, &mut registrations, named)?;
        let counterparty = |t: &wallet::Transfer| {
            if t.to.as_str() == self.account() {
                t.reference.clone()
            } else {
                t.to.as_str().to_owned()
            }
        };
        let counterparties: Vec<String> = transfers.iter().map(counterparty).collect();
        registry::prefetch(&*read, counterparties.iter().map(String::as_str))?;
        let mut index_of: HashMap<String, u32> = HashMap::new();
        for id in counterparties {
            if index_of.contains_key(&id) {
                continue;
            }
            if let Some(r) = registry::read(&*read, &id)? {
                index_of.insert(id, r.index);
                registrations.entry(r.index).or_insert(r);
            }
        }
        drop(read);

        let mut news = GridNews {
            joined: joined
                .iter()
                .filter_map(|i| registrations.get(i))
                .map(|r| Entity {
                    index: r.index,
                    kind: r.kind.into(),
                    id: r.id.clone(),
                })
                .collect(),
            left: left.clone(),
            ..GridNews::default()
        };
        let (mut usage_wh, mut output_wh) = (0, 0);
        for r in &records {
            let kind = r
                .kind
                .or_else(|| registrations.get(&r.entity).map(|reg| reg.kind));
            match kind {
                Some(EntityKind::Producer) => {
                    output_wh += r.wh;
                    news.output.push(Output {
                        producer: r.entity,
                        start_ms: r.start_ms,
                        end_ms: r.end_ms,
                        wh: r.wh,
                        price: r.price,
                    });
                }
                // Usage of a consumer that since left still counts.
                _ => {
                    usage_wh += r.wh;
                    news.usage.push(Usage {
                        consumer: r.entity,
                        start_ms: r.start_ms,
                        end_ms: r.end_ms,
                        wh: r.wh,
                    });
                }
            }
        }
        let mut income = 0;
        for t in &transfers {
            let incoming = t.to.as_str() == self.account();
            if incoming {
                income += t.amount.get();
            }
            news.transfers.push(Transfer {
                entity: index_of.get(&counterparty(t)).copied(),
                amount: t.amount.get(),
                at_ms: t.at_ms.get(),
                incoming,
            });
        }
        let next_cursor = transfers.last().map_or(cursor, |t| t.seq);
        Ok(Pending {
            records,
            joined,
            left,
            next_cursor,
            registrations,
            news,
            usage_wh,
            output_wh,
            income,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::cap_membership;

    #[test]
    fn a_capped_tick_takes_whole_entities_lowest_first() {
        let (mut joined, mut left) = (vec![5, 1, 3, 2], vec![3, 9]);
        cap_membership(&mut joined, &mut left, 3);
        assert_eq!((joined, left), (vec![1, 3, 2], vec![3]));
        let (mut joined, mut left) = (vec![1], vec![2]);
        cap_membership(&mut joined, &mut left, 3);
        assert_eq!((joined, left), (vec![1], vec![2]));
    }
}
