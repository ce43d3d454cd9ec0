//! What a plugin instance's store holds: its identity and configuration, an
//! empty WASI context (no files, sockets, environment or arguments; frozen
//! clocks whose timers fire at once; stdout/stderr forwarded to tracing,
//! size-capped, never blocking), the memory
//! limiter, and for samplers the model's vocabulary and, during a step, a view
//! of the logits row.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::metrics::PluginMetrics;

/// Bytes of stdout+stderr a plugin instance may write before the rest is dropped.
const OUTPUT_BUDGET: usize = 64 * 1024;

/// Refuses memory growth past the plugin's limit and remembers that it did, so
/// the trap that follows is reported as a memory error rather than a plain trap.
pub struct MemoryLimiter {
    pub max_bytes: usize,
    pub hit: bool,
    /// Linear memory the instance holds (all its memories), for the idle budget.
    pub bytes: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.bytes += desired.saturating_sub(current);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// The logits row of the current sampler step, readable through the `logits` imports.
pub(crate) struct LogitsView {
    ptr: *const f32,
    len: usize,
}

// SAFETY: a view is installed only for the duration of one synchronous call on
// the thread that owns both the row and the store, and removed before returning.
unsafe impl Send for LogitsView {}

impl LogitsView {
    pub(crate) fn new(row: &[f32]) -> Self {
        Self { ptr: row.as_ptr(), len: row.len() }
    }

    pub(crate) fn row(&self) -> &[f32] {
        // SAFETY: see the Send impl: the row outlives the call this view is valid for.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Instances alive now, across every plugin and version (a leak shows here).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Plugin instances (stores) alive in this process.
pub fn live_instances() -> usize {
    LIVE.load(Ordering::Relaxed)
}

impl Drop for HostState {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Store data of every plugin instance.
pub struct HostState {
    pub(crate) plugin: Arc<str>,
    pub(crate) config: Arc<Vec<(String, String)>>,
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) metrics: Arc<PluginMetrics>,
    pub(crate) logits: Option<LogitsView>,
    /// The model's vocabulary, for samplers (empty until a factory installs it).
    pub(crate) vocabulary: Arc<Vocabulary>,
    /// The last bytes the instance wrote to stderr during the current call:
    /// a Rust guest prints its panic message there just before it traps.
    pub(crate) stderr_tail: Arc<std::sync::Mutex<Vec<u8>>>,
    /// The current call's start and CPU budget, read by the epoch callback.
    pub(crate) clock: crate::deadline::CallClock,
}

/// Bytes of stderr kept for the error message of a trap.
const STDERR_TAIL: usize = 2048;

/// A model's tokens as the bytes they add to output text, and its end-of-sequence
/// tokens: what the `vocabulary` import serves to sampler plugins.
#[derive(Debug, Default)]
pub struct Vocabulary {
    /// Indexed by token id; empty for control tokens.
    pub tokens: Vec<Vec<u8>>,
    pub eos: Vec<u32>,
}

impl HostState {
    pub(crate) fn new(
        plugin: Arc<str>,
        config: Arc<Vec<(String, String)>>,
        memory_bytes: usize,
        metrics: Arc<PluginMetrics>,
    ) -> Self {
        LIVE.fetch_add(1, Ordering::Relaxed);
        let budget = Arc::new(AtomicUsize::new(OUTPUT_BUDGET));
        let stderr_tail = Arc::new(std::sync::Mutex::new(Vec::new()));
        let wasi = WasiCtx::builder()
            .stdout(LogSink { plugin: plugin.clone(), stream: "stdout", budget: budget.clone(), tail: None })
            .stderr(LogSink { plugin: plugin.clone(), stream: "stderr", budget, tail: Some(stderr_tail.clone()) })
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            plugin,
            config,
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter { max_bytes: memory_bytes, hit: false, bytes: 0 },
            metrics,
            logits: None,
            vocabulary: Arc::default(),
            stderr_tail,
            clock: crate::deadline::CallClock::start(std::time::Duration::from_secs(1)),
        }
    }

    /// What the guest wrote to stderr since the last [`HostState::clear_stderr_tail`].
    pub(crate) fn stderr_tail(&self) -> String {
        self.stderr_tail.lock().map(|t| String::from_utf8_lossy(&t).trim().to_string()).unwrap_or_default()
    }

    pub(crate) fn clear_stderr_tail(&self) {
        if let Ok(mut t) = self.stderr_tail.lock() {
            t.clear();
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Plugins get no clock: time always reads as the epoch.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// stdout/stderr of a plugin: each write becomes a tracing event carrying the
/// plugin's name, until the instance's byte budget is spent.
#[derive(Clone)]
struct LogSink {
    plugin: Arc<str>,
    stream: &'static str,
    budget: Arc<AtomicUsize>,
    /// stderr only: the recent output, kept even once the log budget is spent.
    tail: Option<Arc<std::sync::Mutex<Vec<u8>>>>,
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

#[async_trait::async_trait]
impl OutputStream for LogSink {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        if let Some(tail) = &self.tail
            && let Ok(mut t) = tail.lock()
        {
            let keep = bytes.len().min(STDERR_TAIL);
            t.extend_from_slice(&bytes[bytes.len() - keep..]);
            if t.len() > STDERR_TAIL {
                let cut = t.len() - STDERR_TAIL;
                t.drain(..cut);
            }
        }
        let left = self.budget.load(Ordering::Relaxed);
        if left == 0 {
            return Ok(());
        }
        let take = bytes.len().min(left);
        self.budget.fetch_sub(take, Ordering::Relaxed);
        let text = String::from_utf8_lossy(&bytes[..take]);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(plugin = %self.plugin, stream = self.stream, "{text}");
        }
        if take < bytes.len() {
            tracing::warn!(plugin = %self.plugin, stream = self.stream, "output budget spent; further output dropped");
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}
