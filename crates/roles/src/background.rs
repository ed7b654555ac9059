//! Work a host does behind its rounds and requests (a retention pass,
//! taking the store's figures): one job of a kind at a time, on a thread of
//! its own, that a stopping role waits for before it lets go of its store.

use std::sync::Mutex;
use std::thread::JoinHandle;

#[derive(Default)]
pub struct Single(Mutex<Option<JoinHandle<()>>>);

impl Single {
    /// Starts `job` on a thread named `name`, unless a job is under way.
    pub fn start(&self, name: &str, job: impl FnOnce() + Send + 'static) {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if running.as_ref().is_some_and(|j| !j.is_finished()) {
            return;
        }
        match std::thread::Builder::new().name(name.into()).spawn(job) {
            Ok(handle) => *running = Some(handle),
            Err(e) => tracing::warn!(error = %e, "{name}: no thread"),
        }
    }

    pub fn busy(&self) -> bool {
        let running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        running.as_ref().is_some_and(|j| !j.is_finished())
    }

    /// Waits for the job under way, if one is.
    pub fn wait(&self) {
        let running = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(job) = running {
            let _ = job.join();
        }
    }
}
