use std::time::Duration;

/// What one strategy call may use. Every default of this crate is declared
/// in this file, once; a role may set the first four (`[strategy.limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// WebAssembly fuel (roughly, instructions) per tick. Deterministic: the same
    /// input stops at the same point. Counted only with [`Metering::Fuel`].
    pub fuel: u64,
    /// How a runaway tick is stopped: by fuel and the deadline, or by the
    /// deadline alone.
    pub metering: Metering,
    /// Wall-clock time per tick, enforced by epoch interruption.
    pub deadline: Duration,
    /// Linear memory a strategy instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Size of the returned decision, in bytes of payload.
    pub decision_bytes: usize,
    /// Log lines kept per tick (more are counted, not kept), and bytes per line.
    pub log_lines: usize,
    pub log_line_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        // ~1 s of guest compute: the basic grid bills 100,000 consumers in ~5% of it.
        fuel: 2_000_000_000,
        metering: Metering::Fuel,
        deadline: Duration::from_secs(2),
        memory_bytes: 256 << 20,
        decision_bytes: 32 << 20,
        log_lines: 100,
        log_line_bytes: 1024,
    };
}

/// How a tick's compute is bounded.
///
/// - `Fuel`: every basic block counts down a budget, and the deadline stands
///   behind it. The same input stops at the same point, so a tick that ran
///   out of fuel fails the same way in a replay, a dry run or a counterfactual.
/// - `Epoch`: the deadline alone (the engine checks a clock-driven epoch at
///   loop heads and calls). Guest code runs without the per-block counting
///   (see BENCHMARKS.md for what that saves); what it gives up is that a tick
///   stopped by time depends on the machine and its load, so a replay may
///   stop it elsewhere, or not at all. A tick that succeeds decides the same
///   either way: metering never changes what the code computes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Metering {
    #[default]
    Fuel,
    Epoch,
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A record's energy is at most 1 GWh and its price at most 10^12 tokens: a
/// strategy sums them, and an absurd value from one entity must be refused at
/// the door (the inbox) rather than make every later tick overflow; a
/// producer's decision is held to the same bounds.
pub const MAX_WH: u64 = 1_000_000_000;
pub const MAX_PRICE: u64 = 1_000_000_000_000;

/// How often the runtime's ticker advances the engine's epoch: the resolution of
/// the wall-clock deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Entries kept; the least recently used beyond this are deleted. Versions
/// that are no longer used (deleted, or of another engine) age out.
pub const CACHE_ENTRIES: usize = 64;

/// The instance pool every strategy call of a host shares (wasmtime's pooling
/// allocator): how many instances, memories and tables can be alive at once.
pub struct Pool {
    pub component_instances: u32,
    pub core_instances: u32,
    pub memories: u32,
    pub tables: u32,
    pub core_instances_per_component: u32,
    pub memories_per_component: u32,
    pub tables_per_component: u32,
    /// Memory kept mapped between instances, so that the next one starts warm.
    pub keep_resident_bytes: usize,
}

pub const POOL: Pool = Pool {
    component_instances: 128,
    core_instances: 1_024,
    memories: 128,
    tables: 128,
    core_instances_per_component: 128,
    memories_per_component: 32,
    tables_per_component: 32,
    keep_resident_bytes: 64 << 20,
};
