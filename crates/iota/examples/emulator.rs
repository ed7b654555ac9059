//! The loopback Stardust node of the tests, on its own: to try a grid's
//! anchoring and `powerplug verify` without a node.
//!
//! ```sh
//! cargo run --release -p powerplug-iota --example emulator -- [PORT]
//! ```
//!
//! Prints its URL and runs until stopped. It keeps everything in memory: a
//! restart forgets every block.

fn main() -> anyhow::Result<()> {
    let port = match std::env::args().nth(1) {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| anyhow::anyhow!("PORT: `{p}` is no port number"))?,
        None => 0,
    };
    let emulator = powerplug_iota::emulator::Emulator::start_on(port, 1, &[])?;
    println!("{}", emulator.url());
    loop {
        std::thread::park();
    }
}
