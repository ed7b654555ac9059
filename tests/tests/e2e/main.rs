//! The end-to-end tests, one module per subject, in one test binary: linked
//! once instead of once per file, and run as one pool, so a subject's slow
//! test no longer leaves the other core idle while the next file waits.
//!
//! Four subjects keep binaries of their own because they read or set what
//! belongs to the whole process: `file_modes` (the umask), `roles` (the global
//! log subscriber), `http_guard` (resident memory), `open_network` (CPU time).

mod bad_input;
mod basic_grid;
mod basic_producer;
mod books;
mod cache;
mod console_api;
mod experiments;
mod full_disk;
mod host_hardening;
mod hostile;
mod hot_swap;
mod languages;
mod many_meters;
mod meter_backlog;
mod object_storage;
mod openapi;
mod producer_membership;
mod registration;
mod remote_state;
mod retention;
mod sdk_harness;
mod simulate;
mod standby;
mod store_full_disk;
mod strategy_run;
mod swap_under_load;
mod tangle;
mod tick_commit;
