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

/// Logs a panic's message (file, line, reason) before the abort turns it into a
/// trap, so that the host can say why a tick failed. Installed by `run`.
pub(crate) fn log_panics() {
    #[cfg(target_arch = "wasm32")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| log(Level::Error, &info.to_string())))
        });
    }
}
