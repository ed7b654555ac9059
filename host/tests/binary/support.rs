//! What the command-line tests share: running the `powerplug` binary as a
//! user does, a role as its own process, the checkout, a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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

/// A role as its own `powerplug` process, its output in `log`.
pub struct Role {
    /// The subcommand that runs it.
    pub name: &'static str,
    /// Which one it is (a grid and its standby are both `grid`).
    pub label: String,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Role {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_powerplug"))
            .args([self.name, "--config", self.config.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// SIGSTOP or SIGCONT: paused, or going on as if nothing happened.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(ok.success());
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Ctrl-C: the scheduler finishes its round and drains the outbox.
    pub fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let ok = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{} exited with {status}: {}",
            self.name,
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
