//! The wasmtime embedding: one `Engine` (pooling allocator, epoch
//! interruption, optional fuel), one linker per world, an on-disk cache of
//! precompiled components, and loading with every check a new plugin must
//! pass before it may serve: it compiles, exports one of our worlds at a
//! compatible contract version, links, and its `init` accepts its config.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

use crate::bindings;
use crate::cache;
use crate::deadline::CallClock;
use crate::error::{ErrorKind, PluginError, Result};
use crate::metrics::PluginMetrics;
use crate::state::HostState;
use crate::ticker::Ticker;
pub use crate::world::World;

/// The contract version this host serves.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// Epoch ticks per second: deadlines have millisecond resolution.
const TICKS_PER_SEC: u64 = (Duration::from_secs(1).as_nanos() / crate::ticker::TICK.as_nanos()) as u64;

/// Per-plugin resource limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest linear memory the plugin may grow to.
    pub memory_bytes: usize,
    /// Budget of one call, in CPU time, with a wall-clock backstop of
    /// [`crate::deadline::WALL_FACTOR`] times it (see `deadline.rs`).
    pub deadline: Duration,
    /// Fuel per call (only when the runtime meters fuel).
    pub fuel: Option<u64>,
    /// Largest string or list the host accepts from one call, in bytes.
    pub max_output_bytes: usize,
    /// When repeated faults stop the plugin serving for a while.
    pub breaker: crate::breaker::BreakerPolicy,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(2),
            fuel: None,
            max_output_bytes: 16 << 20,
            breaker: Default::default(),
        }
    }
}

/// Runtime-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are kept (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel. Engine-wide, because metering slows every guest loop 2.6-3x.
    pub fuel_metering: bool,
    /// Live instances the pooling allocator reserves room for.
    pub max_instances: u32,
    /// Largest memory any plugin may get (the pool's slot size).
    pub max_memory_bytes: usize,
    /// Linear memory idle instances of all plugins may hold together (see `adapters::idle`).
    pub idle_memory_bytes: usize,
    /// An instance unused this long is dropped.
    pub idle_ttl: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: Some(default_cache_dir()),
            fuel_metering: false,
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            idle_memory_bytes: 1 << 30,
            idle_ttl: Duration::from_secs(60),
        }
    }
}

/// `$WEFT_CACHE_DIR/../wasm` style default: `~/.cache/weft/wasm`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("weft")
        .join("wasm")
}

/// What `metadata` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
}

/// A component that passed every check and can serve.
pub struct LoadedPlugin {
    pub name: Arc<str>,
    pub world: World,
    /// The `weft:plugin` version the component was built for.
    pub contract: semver::Version,
    pub info: PluginInfo,
    /// SHA-256 of the component bytes.
    pub hash: String,
    pub limits: Limits,
    pub config: Arc<Vec<(String, String)>>,
    pub metrics: Arc<PluginMetrics>,
    /// Opens after repeated faults (see [`crate::breaker`]).
    pub breaker: crate::breaker::Breaker,
    pub loaded_at: SystemTime,
    /// Whether compiling was skipped thanks to the precompiled cache.
    pub cache_hit: bool,
    /// A transform that declared it filters no responses (see [`crate::sections`]):
    /// the host opens no response stream for it.
    pub passes_responses_through: bool,
    pub(crate) engine: Engine,
    /// Advances the epoch while this plugin's calls (or any other's) run.
    ticker: Arc<Ticker>,
    pub(crate) pre: InstancePre<HostState>,
    fuel_metering: bool,
    /// The runtime's budget for idle instances, shared by every adapter's pool.
    pub(crate) idle: Arc<crate::adapters::idle::IdleBudget>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("world", &self.world)
            .field("contract", &self.contract.to_string())
            .field("info", &self.info)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// The host side of the plugin system.
pub struct PluginRuntime {
    engine: Engine,
    linkers: Vec<(World, Linker<HostState>)>,
    cfg: RuntimeConfig,
    ticker: Arc<Ticker>,
    idle: Arc<crate::adapters::idle::IdleBudget>,
}

impl PluginRuntime {
    pub fn new(cfg: RuntimeConfig) -> Result<Self> {
        let err = |e: wasmtime::Error| PluginError::new("<runtime>", ErrorKind::Load, format!("{e:#}"));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(cfg.max_instances)
            .total_core_instances(cfg.max_instances * 4)
            .total_memories(cfg.max_instances * 2)
            .total_tables(cfg.max_instances * 4)
            .max_memory_size(cfg.max_memory_bytes)
            .max_memories_per_component(4)
            .max_tables_per_component(8);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(cfg.fuel_metering)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(err)?;

        let mut linkers = Vec::new();
        for world in [World::Tokenizer, World::Sampler, World::Router, World::Transform] {
            let mut l: Linker<HostState> = Linker::new(&engine);
            crate::wasi::add_to_linker(&mut l).map_err(err)?;
            match world {
                World::Tokenizer => {
                    bindings::tokenizer::TokenizerPlugin::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s).map_err(err)?
                }
                World::Sampler => {
                    bindings::sampler::SamplerPlugin::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s).map_err(err)?
                }
                World::Router => {
                    bindings::router::RouterPlugin::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s).map_err(err)?
                }
                World::Transform => {
                    bindings::transform::TransformPlugin::add_to_linker::<_, HasSelf<_>>(&mut l, |s| s).map_err(err)?
                }
            }
            linkers.push((world, l));
        }

        let ticker = Ticker::start(engine.clone())
            .map_err(|e| PluginError::new("<runtime>", ErrorKind::Load, format!("cannot start epoch ticker: {e}")))?;
        let idle = crate::adapters::idle::IdleBudget::new(cfg.idle_memory_bytes, cfg.idle_ttl);
        Ok(Self { engine, linkers, cfg, ticker, idle })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component from disk.
    pub fn load_file(
        &self,
        name: &str,
        path: &std::path::Path,
        limits: Limits,
        config: Vec<(String, String)>,
    ) -> Result<Arc<LoadedPlugin>> {
        let bytes = std::fs::read(path)
            .map_err(|e| PluginError::new(name, ErrorKind::Load, format!("cannot read {}: {e}", path.display())))?;
        self.load(name, &bytes, limits, config)
    }

    /// Compiles (or fetches from the cache), checks and initialises a component.
    pub fn load(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Limits,
        config: Vec<(String, String)>,
    ) -> Result<Arc<LoadedPlugin>> {
        let hash = format!("{:x}", Sha256::digest(bytes));
        let (component, cache_hit) = self.compile(name, bytes, &hash)?;
        let (world, contract) = identify(name, &self.engine, &component)?;
        let linker = &self.linkers.iter().find(|(w, _)| *w == world).expect("a linker per world").1;
        let pre = linker.instantiate_pre(&component).map_err(|e| {
            PluginError::new(name, ErrorKind::Link, format!("the component's imports cannot be satisfied: {e:#}"))
        })?;
        if limits.memory_bytes > self.cfg.max_memory_bytes {
            return Err(PluginError::new(
                name,
                ErrorKind::Load,
                format!(
                    "memory limit {} exceeds the runtime maximum {}",
                    limits.memory_bytes, self.cfg.max_memory_bytes
                ),
            ));
        }
        let mut plugin = LoadedPlugin {
            name: Arc::from(name),
            world,
            contract,
            info: PluginInfo { name: String::new(), version: String::new(), description: String::new() },
            hash,
            limits,
            config: Arc::new(config),
            metrics: Arc::new(PluginMetrics::default()),
            breaker: crate::breaker::Breaker::new(limits.breaker),
            loaded_at: SystemTime::now(),
            cache_hit,
            passes_responses_through: world == World::Transform && crate::sections::passes_responses_through(bytes),
            engine: self.engine.clone(),
            ticker: self.ticker.clone(),
            pre,
            fuel_metering: self.cfg.fuel_metering,
            idle: self.idle.clone(),
        };
        // A first instance proves it runs: metadata answers and init accepts the config.
        let (mut store, instance) = plugin.instantiate()?;
        plugin.info = plugin.describe(&mut store, &instance)?;
        plugin.init(&mut store, &instance)?;
        Ok(Arc::new(plugin))
    }

    /// The names a component imports (`weft plugin check` prints them). Which
    /// of them the host provides is decided by the load's link step, whose
    /// error names the first one it lacks.
    pub fn imports(&self, name: &str, bytes: &[u8]) -> Result<Vec<String>> {
        let hash = format!("{:x}", Sha256::digest(bytes));
        let (component, _) = self.compile(name, bytes, &hash)?;
        let mut out: Vec<String> =
            component.component_type().imports(&self.engine).map(|(n, _)| n.to_string()).collect();
        out.sort();
        Ok(out)
    }

    fn compile(&self, name: &str, bytes: &[u8], hash: &str) -> Result<(Component, bool)> {
        let load_err =
            |e: wasmtime::Error| PluginError::new(name, ErrorKind::Load, format!("not a valid component: {e:#}"));
        let Some(dir) = &self.cfg.cache_dir else {
            return Ok((Component::new(&self.engine, bytes).map_err(load_err)?, false));
        };
        // The key covers the component and everything that affects code generation.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut h);
        let key = format!("{hash}-{:016x}.cwasm", std::hash::Hasher::finish(&h));
        let path = dir.join(key);
        let trusted = match cache::trusted_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(why) => {
                tracing::warn!(plugin = name, dir = %dir.display(), "precompiled cache not used: {why}");
                false
            }
        };
        if trusted && cache::trusted_file(&path).is_ok() {
            // SAFETY: the file was written by `precompile_component` of an engine with
            // the same compatibility hash, into a directory and file that only this
            // user can write (checked just above), so nobody else can have put native
            // code there.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok((c, true)),
                Err(e) => tracing::warn!(plugin = name, error = %e, "precompiled cache entry unusable; recompiling"),
            }
        }
        let t0 = Instant::now();
        let compiled = self.engine.precompile_component(bytes).map_err(load_err)?;
        // SAFETY: bytes just produced by this engine.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(load_err)?;
        tracing::debug!(plugin = name, ms = t0.elapsed().as_millis() as u64, "compiled component");
        if trusted || (cache::create_private(dir).is_ok() && cache::trusted_dir(dir).is_ok()) {
            let tmp = dir.join(format!(".{}.{}.tmp", hash, std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok((component, false))
    }
}

/// Finds which world a component implements and which contract version it was built for.
fn identify(name: &str, engine: &Engine, component: &Component) -> Result<(World, semver::Version)> {
    let ty = component.component_type();
    let mut found = None;
    for (export, item) in ty.exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            continue;
        }
        let Some(rest) = export.strip_prefix("weft:plugin/") else { continue };
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if let Some(world) = World::from_interface(iface) {
            let v = semver::Version::parse(version).map_err(|_| {
                PluginError::new(
                    name,
                    ErrorKind::Version,
                    format!("export `{export}` carries no valid contract version"),
                )
            })?;
            found = Some((world, v));
        }
    }
    let Some((world, v)) = found else {
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_string()).collect();
        return Err(PluginError::new(
            name,
            ErrorKind::Link,
            format!(
                "exports no weft:plugin role (tokenizer, sampler, router or transform); it exports [{}]",
                exports.join(", ")
            ),
        ));
    };
    let host = semver::Version::parse(CONTRACT_VERSION).expect("valid constant");
    if !compatible(&host, &v) {
        return Err(PluginError::new(
            name,
            ErrorKind::Version,
            format!(
                "built for weft:plugin@{v}, but this host serves weft:plugin@{host} (compatible: {})",
                compatible_range(&host)
            ),
        ));
    }
    Ok((world, v))
}

/// Semver compatibility as cargo reads it: same major, and while the major is
/// 0, same minor too. A component may be built against an older patch (or
/// minor, for 1.x) than the host, never a newer one.
pub fn compatible(host: &semver::Version, component: &semver::Version) -> bool {
    if host.major != component.major {
        return false;
    }
    if host.major == 0 {
        return host.minor == component.minor && component.patch <= host.patch;
    }
    component.minor <= host.minor
}

fn compatible_range(host: &semver::Version) -> String {
    if host.major == 0 { format!("0.{}.0 ..= {host}", host.minor) } else { format!("{}.0.0 ..= {host}", host.major) }
}

/// The typed bindings of each world, behind one interface for instantiation and init.
pub(crate) trait WorldBindings: Sized {
    fn bind(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Self>;
}

macro_rules! world_bindings {
    ($($t:path),*) => {$(
        impl WorldBindings for $t {
            fn bind(store: &mut Store<HostState>, instance: &Instance) -> wasmtime::Result<Self> {
                <$t>::new(store, instance)
            }
        }
    )*};
}
world_bindings!(
    bindings::tokenizer::TokenizerPlugin,
    bindings::sampler::SamplerPlugin,
    bindings::router::RouterPlugin,
    bindings::transform::TransformPlugin
);

impl LoadedPlugin {
    /// Linear memory held right now by idle instances of every plugin of this runtime.
    pub fn idle_memory_bytes(&self) -> usize {
        self.idle.bytes()
    }

    /// A fresh store and instance, with this plugin's limits.
    pub(crate) fn instantiate(&self) -> Result<(Store<HostState>, Instance)> {
        let state =
            HostState::new(self.name.clone(), self.config.clone(), self.limits.memory_bytes, self.metrics.clone());
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Past the first deadline, each tick asks the call's clock: CPU budget left, or time up.
        store.epoch_deadline_callback(|ctx| ctx.data().clock.on_epoch(TICKS_PER_SEC));
        self.arm(&mut store);
        let _running = self.ticker.enter();
        let instance = self.pre.instantiate(&mut store).map_err(|e| self.classify(&store, e, "instantiate"))?;
        Ok((store, instance))
    }

    /// A new instance with typed bindings and `init` already run.
    pub(crate) fn instance<B: WorldBindings>(&self) -> Result<(Store<HostState>, B)> {
        let (mut store, instance) = self.instantiate()?;
        self.init(&mut store, &instance)?;
        let b = B::bind(&mut store, &instance)
            .map_err(|e| PluginError::new(&*self.name, ErrorKind::Link, format!("{e:#}")))?;
        Ok((store, b))
    }

    /// Starts a call's budgets: its CPU-time clock, the first epoch deadline, its fuel.
    fn arm(&self, store: &mut Store<HostState>) {
        store.data_mut().clock = CallClock::start(self.limits.deadline);
        store.set_epoch_deadline((self.limits.deadline.as_millis() as u64).max(1) * TICKS_PER_SEC / 1000);
        if self.fuel_metering {
            let _ = store.set_fuel(self.limits.fuel.unwrap_or(u64::MAX));
        }
    }

    fn world_func<P, R>(
        &self,
        store: &mut Store<HostState>,
        instance: &Instance,
        name: &str,
    ) -> Result<wasmtime::component::TypedFunc<P, R>>
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        instance
            .get_typed_func::<P, R>(&mut *store, name)
            .map_err(|e| PluginError::new(&*self.name, ErrorKind::Link, format!("export `{name}`: {e:#}")))
    }

    fn describe(&self, store: &mut Store<HostState>, instance: &Instance) -> Result<PluginInfo> {
        let f = self.world_func::<(), (bindings::Metadata,)>(store, instance, "metadata")?;
        let (m,) = self.call(store, "metadata", |s| f.call(&mut *s, ()))?;
        for (field, v) in [("name", &m.name), ("version", &m.version), ("description", &m.description)] {
            if v.len() > 4096 {
                return Err(PluginError::new(
                    &*self.name,
                    ErrorKind::InvalidOutput,
                    format!("metadata {field} is over 4 KiB"),
                ));
            }
        }
        Ok(PluginInfo { name: m.name, version: m.version, description: m.description })
    }

    fn init(&self, store: &mut Store<HostState>, instance: &Instance) -> Result<()> {
        let f =
            self.world_func::<(&[(String, String)],), (std::result::Result<(), String>,)>(store, instance, "init")?;
        let config = self.config.clone();
        let (r,) = self.call(store, "init", |s| f.call(&mut *s, (config.as_slice(),)))?;
        r.map_err(|msg| {
            self.metrics.record_error(ErrorKind::Init.as_str());
            PluginError::new(&*self.name, ErrorKind::Init, format!("init refused its configuration: {msg}"))
        })
    }

    /// Runs one call into the guest under the plugin's deadline and fuel,
    /// records its duration, and turns any failure into a typed error.
    pub(crate) fn call<T>(
        &self,
        store: &mut Store<HostState>,
        what: &str,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        self.arm(store);
        let t0 = Instant::now();
        store.data().clear_stderr_tail();
        let running = self.ticker.enter();
        let r = f(store);
        drop(running);
        self.metrics.record_call(t0.elapsed().as_secs_f64());
        self.breaker.record(r.is_err());
        r.map_err(|e| {
            let err = self.classify(store, e, what);
            self.metrics.record_error(err.kind.as_str());
            err
        })
    }

    fn classify(&self, store: &Store<HostState>, e: wasmtime::Error, what: &str) -> PluginError {
        let kind = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => ErrorKind::Timeout,
            Some(wasmtime::Trap::OutOfFuel) => ErrorKind::Timeout,
            _ if store.data().limiter.hit => ErrorKind::Memory,
            Some(_) => ErrorKind::Trap,
            None => {
                let msg = format!("{e:#}");
                // "too much data is being copied": wasmtime's cap on one call's copying (hostcall fuel).
                if msg.contains("utf-8")
                    || msg.contains("invalid")
                    || msg.contains("out of bounds")
                    || msg.contains("too much data")
                {
                    ErrorKind::InvalidOutput
                } else {
                    ErrorKind::Trap
                }
            }
        };
        let out_of_fuel = matches!(e.downcast_ref::<wasmtime::Trap>(), Some(wasmtime::Trap::OutOfFuel));
        let detail = match kind {
            ErrorKind::Timeout if out_of_fuel => {
                format!("`{what}` ran out of fuel ({} units)", self.limits.fuel.unwrap_or(0))
            }
            ErrorKind::Timeout => format!("`{what}` ran past its deadline of {:?}", self.limits.deadline),
            ErrorKind::Memory => {
                format!("`{what}` tried to grow memory past its limit of {} bytes", self.limits.memory_bytes)
            }
            ErrorKind::Trap => match crate::error::panic_message(&store.data().stderr_tail()) {
                Some(panic) => format!("`{what}` panicked: {panic}"),
                None => format!("`{what}`: {}", first_lines(&format!("{e:?}"), 6)),
            },
            _ => format!("`{what}`: {}", first_lines(&format!("{e:?}"), 6)),
        };
        PluginError::new(&*self.name, kind, detail)
    }

    /// Checks a guest-provided string or list length against the output cap.
    pub(crate) fn check_size(&self, what: &str, bytes: usize) -> Result<()> {
        if bytes > self.limits.max_output_bytes {
            self.breaker.record(true);
            self.metrics.record_error(ErrorKind::InvalidOutput.as_str());
            return Err(PluginError::new(
                &*self.name,
                ErrorKind::InvalidOutput,
                format!("{what} is {bytes} bytes, over the limit of {}", self.limits.max_output_bytes),
            ));
        }
        Ok(())
    }

    pub(crate) fn invalid(&self, message: String) -> PluginError {
        self.breaker.record(true);
        self.metrics.record_error(ErrorKind::InvalidOutput.as_str());
        PluginError::new(&*self.name, ErrorKind::InvalidOutput, message)
    }

    /// `Err` with a typed error while the plugin's breaker is open.
    pub fn check_breaker(&self) -> Result<()> {
        self.breaker.check().map_err(|left| {
            PluginError::new(
                &*self.name,
                ErrorKind::Unavailable,
                format!("failed repeatedly and is paused for another {:.1}s", left.as_secs_f64()),
            )
            .retry_after(left)
        })
    }

    pub(crate) fn plugin_error(&self, message: String) -> PluginError {
        self.metrics.record_error(ErrorKind::Plugin.as_str());
        PluginError::new(&*self.name, ErrorKind::Plugin, message)
    }
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join(" | ")
}

mod measure;
#[cfg(test)]
mod tests;
