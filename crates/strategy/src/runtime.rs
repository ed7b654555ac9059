use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

use super::bindings::grid_world::GridStrategyPre;
use super::bindings::producer_world::ProducerStrategyPre;
use super::bindings::{Decision, grid, log, producer};
use super::cache::CompiledCache;
use super::inspect::{ComponentInfo, export_name, inspect};
use super::limits::{EPOCH_TICK, POOL};
use super::sandbox::{self, Guest, TickFailure, TickOutcome};
use super::{CallError, Limits, LoadError, Metering};
use powerplug_domain::StrategyKind;

/// Loads and runs strategies. Cheap to clone; one per process is enough.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<Guest>,
    limits: Limits,
    cache: Option<CompiledCache>,
    compiles: AtomicU64,
    cache_hits: AtomicU64,
}

/// How components were obtained since the runtime started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Components compiled by cranelift.
    pub compiles: u64,
    /// Components loaded from the on-disk cache.
    pub cache_hits: u64,
    /// Cache entries refused because their MAC did not verify (tampered or
    /// damaged), and compiled again.
    pub cache_rejected: u64,
}

/// A loaded component of either kind.
pub enum Loaded {
    Grid(GridStrategy),
    Producer(ProducerStrategy),
}

impl Loaded {
    pub fn info(&self) -> &ComponentInfo {
        match self {
            Loaded::Grid(s) => &s.info,
            Loaded::Producer(s) => &s.info,
        }
    }
}

#[derive(Clone)]
pub struct GridStrategy {
    runtime: Runtime,
    pre: GridStrategyPre<Guest>,
    info: ComponentInfo,
}

#[derive(Clone)]
pub struct ProducerStrategy {
    runtime: Runtime,
    pre: ProducerStrategyPre<Guest>,
    info: ComponentInfo,
}

impl Runtime {
    /// A runtime with these limits; `cache_dir` keeps compiled components across
    /// restarts (`None`: compile every load).
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        // The pool's own ceiling sits above the per-store limit, so that the
        // limiter, which knows it refused, is what says no.
        pool.max_memory_size(limits.memory_bytes.next_multiple_of(65536) + 65536)
            .total_component_instances(POOL.component_instances)
            .total_core_instances(POOL.core_instances)
            .total_memories(POOL.memories)
            .total_tables(POOL.tables)
            .max_core_instances_per_component(POOL.core_instances_per_component)
            .max_memories_per_component(POOL.memories_per_component)
            .max_tables_per_component(POOL.tables_per_component)
            .linear_memory_keep_resident(POOL.keep_resident_bytes)
            .pagemap_scan(Enabled::Auto);

        let mut config = Config::new();
        config
            .consume_fuel(limits.metering == Metering::Fuel)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;
        spawn_epoch_ticker(&engine)?;

        let mut linker = Linker::new(&engine);
        log::add_to_linker::<Guest, HasSelf<Guest>>(&mut linker, |guest| guest)?;

        let cache = cache_dir
            .map(|dir| CompiledCache::new(dir, &engine))
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                limits,
                cache,
                compiles: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            compiles: self.inner.compiles.load(Ordering::Relaxed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            cache_rejected: self.inner.cache.as_ref().map_or(0, |c| c.rejected()),
        }
    }

    /// Checks, compiles (or loads from the cache) and links a strategy component.
    pub fn load(&self, bytes: &[u8]) -> Result<Loaded, LoadError> {
        let info = inspect(bytes)?;
        let component = self.compile(bytes, &info.sha256)?;
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        // Type-checks the export against the contract, not just its name.
        let shape = |e: wasmtime::Error| {
            LoadError::Invalid(format!(
                "`{}` does not match the contract: {e:#}",
                export_name(info.kind)
            ))
        };
        // Export types are checked when instantiating, so instantiate once now:
        // a mismatch is refused at load, not found at the first tick.
        let mut store = sandbox::new_store(&self.inner.engine, &self.inner.limits);
        Ok(match info.kind {
            StrategyKind::Grid => {
                let pre = GridStrategyPre::new(pre).map_err(shape)?;
                pre.instantiate(&mut store).map_err(shape)?;
                Loaded::Grid(GridStrategy {
                    runtime: self.clone(),
                    pre,
                    info,
                })
            }
            StrategyKind::Producer => {
                let pre = ProducerStrategyPre::new(pre).map_err(shape)?;
                pre.instantiate(&mut store).map_err(shape)?;
                Loaded::Producer(ProducerStrategy {
                    runtime: self.clone(),
                    pre,
                    info,
                })
            }
        })
    }

    pub fn load_grid(&self, bytes: &[u8]) -> Result<GridStrategy, LoadError> {
        match self.load(bytes)? {
            Loaded::Grid(s) => Ok(s),
            Loaded::Producer(_) => Err(LoadError::WrongKind {
                expected: StrategyKind::Grid,
                found: StrategyKind::Producer,
            }),
        }
    }

    pub fn load_producer(&self, bytes: &[u8]) -> Result<ProducerStrategy, LoadError> {
        match self.load(bytes)? {
            Loaded::Producer(s) => Ok(s),
            Loaded::Grid(_) => Err(LoadError::WrongKind {
                expected: StrategyKind::Producer,
                found: StrategyKind::Grid,
            }),
        }
    }

    fn compile(
        &self,
        bytes: &[u8],
        sha256: &powerplug_domain::Sha256,
    ) -> Result<Component, LoadError> {
        let inner = &self.inner;
        if let Some(component) = inner
            .cache
            .as_ref()
            .and_then(|c| c.get(&inner.engine, sha256))
        {
            inner.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(component);
        }
        let component = Component::new(&inner.engine, bytes)
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        inner.compiles.fetch_add(1, Ordering::Relaxed);
        if let Some(cache) = &inner.cache {
            cache
                .put(sha256, &component)
                .map_err(|e| LoadError::Cache {
                    path: cache.dir().display().to_string(),
                    message: format!("{e:#}"),
                })?;
        }
        Ok(component)
    }
}

/// Advances the engine's epoch until the engine is gone; this is the clock the
/// per-call deadlines count in.
fn spawn_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("powerplug-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

impl Runtime {
    /// One tick on a fresh instance, under this runtime's limits.
    fn tick<I, D: Decision>(
        &self,
        info: &ComponentInfo,
        instantiate: impl FnOnce(&mut Store<Guest>) -> wasmtime::Result<I>,
        call: impl FnOnce(&I, &mut Store<Guest>) -> wasmtime::Result<Result<D, String>>,
    ) -> Result<TickOutcome<D>, TickFailure> {
        let limits = self.inner.limits;
        let mut store = sandbox::new_store(&self.inner.engine, &limits);
        let instance = instantiate(&mut store)
            .map_err(|e| CallError::Instantiate(crate::text::clean(&format!("{e:#}"))))?;
        sandbox::run(store, &limits, info.language, |store| {
            call(&instance, store)
        })
    }
}

impl GridStrategy {
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// Decides one tick on a fresh instance.
    pub fn tick(
        &self,
        input: &grid::GridInput,
    ) -> Result<TickOutcome<grid::GridDecision>, TickFailure> {
        self.runtime.tick(
            &self.info,
            |store| self.pre.instantiate(store),
            |instance, store| instance.powerplug_strategy_grid().call_tick(store, input),
        )
    }
}

impl ProducerStrategy {
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// Decides one tick on a fresh instance.
    pub fn tick(
        &self,
        input: &producer::ProducerInput,
    ) -> Result<TickOutcome<producer::ProducerDecision>, TickFailure> {
        self.runtime.tick(
            &self.info,
            |store| self.pre.instantiate(store),
            |instance, store| {
                instance
                    .powerplug_strategy_producer()
                    .call_tick(store, input)
            },
        )
    }
}
