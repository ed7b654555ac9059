//! The one import a strategy has. Natively (unit tests) lines are kept per thread
//! so a test can read them with [`take_native_lines`].

pub use crate::bindings::grid::powerplug::strategy::log::Level;

#[cfg(target_arch = "wasm32")]
pub fn log(level: Level, message: &str) {
    crate::bindings::grid::powerplug::strategy::log::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
std::thread_local! {
    static LINES: std::cell::RefCell<Vec<(Level, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[cfg(not(target_arch = "wasm32"))]
pub fn log(level: Level, message: &str) {
    LINES.with(|l| l.borrow_mut().push((level, message.to_owned())));
}

/// Lines logged natively on this thread since the last call.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_native_lines() -> Vec<(Level, String)> {
    LINES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

pub fn info(message: &str) {
    log(Level::Info, message);
}

pub fn warn(message: &str) {
    log(Level::Warn, message);
}
