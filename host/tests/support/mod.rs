//! What the command-line tests share: running the `powerplug` binary as a
//! user does, the checkout, a free port.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `powerplug args` in `dir`: whether it succeeded, its stdout, its stderr.
pub fn powerplug(args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_powerplug"))
        .args(args)
        .current_dir(dir)
        // Guests build in their own target dir: the outer `cargo test` may hold the main one.
        .env("CARGO_TARGET_DIR", root().join("target/guests"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// The workspace's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A free loopback port for a host to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
