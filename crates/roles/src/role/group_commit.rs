//! Group commit: work that arrives while a transaction is being written
//! waits, and the next transaction writes all of it, so that many requests
//! in flight cost one disk sync instead of one each.

use std::sync::{Arc, Mutex};

type Slot<R> = Arc<Mutex<Option<Result<R, String>>>>;

pub struct GroupCommit<T, R> {
    queue: Mutex<Vec<(T, Slot<R>)>>,
    /// Held by whoever writes a group.
    writer: Mutex<()>,
    /// Groups being written (0 or 1), for the tests.
    #[cfg(test)]
    writing: std::sync::atomic::AtomicUsize,
}

impl<T, R> Default for GroupCommit<T, R> {
    fn default() -> Self {
        Self {
            queue: Mutex::default(),
            writer: Mutex::default(),
            #[cfg(test)]
            writing: Default::default(),
        }
    }
}

impl<T, R> GroupCommit<T, R> {
    #[cfg(test)]
    fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    #[cfg(test)]
    fn writing(&self) -> usize {
        self.writing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Queues `job` and waits until a group holding it is written: by this
    /// caller, with whatever else is queued then (`write` answers each job
    /// of the group, in order), or by the caller before it.
    pub fn run(
        &self,
        job: T,
        write: impl FnOnce(Vec<T>) -> anyhow::Result<Vec<R>>,
    ) -> anyhow::Result<R> {
        let slot: Slot<R> = Arc::default();
        lock(&self.queue).push((job, slot.clone()));
        let _writer = lock(&self.writer);
        // The writer before took every job queued when it began, this one
        // among them, and answered all of them before letting go.
        if let Some(answer) = lock(&slot).take() {
            return answer.map_err(anyhow::Error::msg);
        }
        let (jobs, slots): (Vec<T>, Vec<Slot<R>>) =
            std::mem::take(&mut *lock(&self.queue)).into_iter().unzip();
        #[cfg(test)]
        self.writing
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let written = write(jobs);
        #[cfg(test)]
        self.writing
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        match written {
            Ok(answers) => {
                anyhow::ensure!(
                    answers.len() == slots.len(),
                    "group commit: {} answers for {} jobs",
                    answers.len(),
                    slots.len()
                );
                for (s, answer) in slots.iter().zip(answers) {
                    *lock(s) = Some(Ok(answer));
                }
            }
            Err(e) => {
                let why = format!("{e:#}");
                for s in &slots {
                    *lock(s) = Some(Err(why.clone()));
                }
                return Err(e);
            }
        }
        lock(&slot)
            .take()
            .unwrap_or_else(|| Err("group commit: this job was not in its group".into()))
            .map_err(anyhow::Error::msg)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::GroupCommit;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn jobs_that_wait_for_a_write_share_the_next() {
        let group: Arc<GroupCommit<usize, usize>> = Arc::default();
        let writes = Arc::new(AtomicUsize::new(0));
        let write = |writes: Arc<AtomicUsize>, group: Arc<GroupCommit<usize, usize>>| {
            move |jobs: Vec<usize>| {
                writes.fetch_add(1, Ordering::SeqCst);
                // The first write lasts until two more jobs wait.
                while jobs == [0] && group.queued() < 2 {
                    std::thread::yield_now();
                }
                Ok(jobs.iter().map(|j| j * 10).collect())
            }
        };
        let threads: Vec<_> = (0..3)
            .map(|job| {
                let (group, writes) = (group.clone(), writes.clone());
                let write = write(writes, group.clone());
                std::thread::spawn(move || {
                    if job > 0 {
                        // Once job 0 is being written (it took the queue
                        // first), which lasts until jobs 1 and 2 wait.
                        while group.writing() == 0 {
                            std::thread::yield_now();
                        }
                    }
                    group.run(job, write).unwrap()
                })
            })
            .collect();
        let answers: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(answers, [0, 10, 20], "each job its own answer");
        assert_eq!(
            writes.load(Ordering::SeqCst),
            2,
            "jobs 1 and 2 in one write"
        );
    }

    #[test]
    fn a_failed_write_fails_every_job_of_its_group() {
        let group: GroupCommit<u8, u8> = GroupCommit::default();
        let e = group.run(1, |_| anyhow::bail!("disk full")).unwrap_err();
        assert_eq!(e.to_string(), "disk full");
        assert_eq!(group.run(2, Ok).unwrap(), 2, "the next goes on");
    }
}
