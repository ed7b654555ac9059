//! The `powerplug` binary run as its users run it: commands, roles as
//! processes of their own (killed and restarted), the console in Chromium, the
//! meter feeds, the store's backups. One test binary, so that the slow
//! subjects (the kills, the commands) run beside each other.

mod cli;
mod console;
mod meter_feeds;
mod roles_crash;
mod store;
mod support;
