//! Leases on PostgreSQL: a row per lease in the namespace's `lease` table,
//! timed by the server's clock (hosts' clocks may disagree; the server's is
//! one). A host that takes over a lease run out first terminates every
//! session of the holder before it (their `application_name` names it), so
//! a transaction that holder began, paused or cut off, can never commit.
//! A fenced commit reads the lease row `FOR SHARE`: a takeover waits until
//! that commit is done, and a holder's commit and its successor's never
//! overlap.

use std::time::Duration;

use anyhow::Context;

use super::PgStore;
use crate::Lease;

/// How long a takeover waits for the old holder's sessions to end.
const TERMINATE_WAIT_MS: i64 = 5_000;

impl PgStore {
    pub(super) fn lease_now(&self, name: &str, period: Duration) -> anyhow::Result<Lease> {
        let (name, me) = (name.to_owned(), self.holder.clone());
        let table = format!("{}.lease", self.schema);
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
        let answer = self.autocommit(move |s| {
            // Twice at most: a row that changed between the look and the
            // change is looked at again once.
            for _ in 0..2 {
                let row = s.client.query_opt(
                    &format!(
                        "SELECT holder, epoch, expires <= clock_timestamp(), \
                           greatest(0, extract(epoch FROM expires - clock_timestamp()) * 1000)::bigint \
                         FROM {table} WHERE name = $1"
                    ),
                    &[&name],
                )?;
                let taken = match row {
                    None => s.client.query_opt(
                        &format!(
                            "INSERT INTO {table} (name, holder, epoch, expires) \
                             VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond') \
                             ON CONFLICT (name) DO NOTHING RETURNING epoch"
                        ),
                        &[&name, &me, &period_ms],
                    )?,
                    Some(row) => {
                        let (holder, epoch): (String, i64) = (row.get(0), row.get(1));
                        let (run_out, left_ms): (bool, i64) = (row.get(2), row.get(3));
                        if holder == me {
                            s.client.query_opt(
                                &format!(
                                    "UPDATE {table} SET expires = clock_timestamp() + $3::bigint * interval '1 millisecond' \
                                     WHERE name = $1 AND holder = $2 RETURNING epoch"
                                ),
                                &[&name, &me, &period_ms],
                            )?
                        } else if !run_out {
                            return Ok(Lease::Other {
                                holder,
                                epoch: epoch as u64,
                                left_ms: left_ms as u64,
                            });
                        } else {
                            // Fencing: nothing the holder began may commit
                            // once the lease changes hands.
                            s.client.execute(
                                "SELECT pg_terminate_backend(pid, $2) FROM pg_stat_activity \
                                 WHERE application_name LIKE 'powerplug ' || $1 || '%'",
                                &[&holder, &TERMINATE_WAIT_MS],
                            )?;
                            s.client.query_opt(
                                &format!(
                                    "UPDATE {table} SET holder = $2, epoch = epoch + 1, \
                                       expires = clock_timestamp() + $3::bigint * interval '1 millisecond' \
                                     WHERE name = $1 AND holder = $4 AND epoch = $5 \
                                       AND expires <= clock_timestamp() RETURNING epoch"
                                ),
                                &[&name, &me, &period_ms, &holder, &epoch],
                            )?
                        }
                    }
                };
                if let Some(row) = taken {
                    return Ok(Lease::Me {
                        epoch: row.get::<_, i64>(0) as u64,
                    });
                }
            }
            Ok(Lease::Other {
                holder: String::new(),
                epoch: 0,
                left_ms: 0,
            })
        });
        answer.context("the store's lease")
    }

    pub(super) fn release_now(&self, name: &str) -> anyhow::Result<()> {
        let (name, me) = (name.to_owned(), self.holder.clone());
        let sql = format!(
            "UPDATE {}.lease SET expires = clock_timestamp() - interval '1 millisecond' \
             WHERE name = $1 AND holder = $2",
            self.schema
        );
        self.autocommit(move |s| s.client.execute(&sql, &[&name, &me]))
            .map(drop)
    }
}
