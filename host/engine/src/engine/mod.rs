//! The engine: a step loop on its own OS thread, and the cheap, cloneable
//! [`EngineHandle`] through which callers submit requests.
//!
//! The loop owns the model, the KV store and the scheduler outright, so a step
//! takes no lock. Callers meet it only through channels: commands in, one event
//! stream per request out. Dropping a [`RequestStream`] cancels its sequence;
//! the next step removes it and frees its blocks.

mod metrics;
mod request;
mod step;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

pub use metrics::EngineMetrics;
pub use request::{Event, FinishReason, Request, Usage};

use crate::error::{EngineError, Result};
use crate::kv::{BlockManager, KvCapacity, KvDtype, KvStore};
use crate::model::{LlamaConfig, LlamaModel, LoadedModel, TokenizerSpec};
use crate::scheduler::{Fcfs, Scheduler, SchedulerConfig, SchedulingPolicy};

/// Engine settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Tokens per KV block.
    pub block_size: usize,
    pub kv_capacity: KvCapacity,
    pub scheduler: SchedulerConfig,
    pub prefix_caching: bool,
    /// How long a step waits for external (plugin) samplers before going on
    /// without the late ones.
    pub sample_budget: std::time::Duration,
    /// The KV cache's element type (f16: half the bytes each step reads).
    pub kv_dtype: KvDtype,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            block_size: 16,
            kv_capacity: KvCapacity::Bytes(512 << 20),
            scheduler: SchedulerConfig::default(),
            prefix_caching: true,
            sample_budget: std::time::Duration::from_millis(5),
            kv_dtype: KvDtype::default(),
        }
    }
}

/// What callers may know about the served model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub name: String,
    pub architecture: String,
    pub config: LlamaConfig,
    pub eos_token_ids: Vec<u32>,
    pub tokenizer: Option<TokenizerSpec>,
    pub chat_template: Option<String>,
    /// Longest prompt + completion, in tokens.
    pub max_context: usize,
    pub num_blocks: usize,
    pub block_size: usize,
    /// Bytes of the projection weights streamed each step.
    pub weight_bytes: usize,
    /// Bytes of dense f32 copies kept for batched steps.
    pub dense_bytes: usize,
    /// Bytes of the embedding table held apart from the projections (0 when it is the tied head's).
    pub embedding_bytes: usize,
}

enum Command {
    Add { id: u64, req: Box<Request>, tx: tokio::sync::mpsc::UnboundedSender<Event> },
    CheckIdle(mpsc::Sender<std::result::Result<(), String>>),
}

/// The stream of events of one request. Dropping it cancels the request.
pub struct RequestStream {
    id: u64,
    rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
}

impl RequestStream {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Next event, for async callers; `None` after the final event.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Next event, blocking the current (non-async) thread.
    pub fn blocking_next(&mut self) -> Option<Event> {
        self.rx.blocking_recv()
    }
}

/// Submits requests to a running engine. Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Command>,
    info: Arc<ModelInfo>,
    metrics: Arc<Mutex<EngineMetrics>>,
    next_id: Arc<AtomicU64>,
    prefix_index: crate::kv::PrefixIndex,
}

/// Starts engines.
pub struct Engine;

impl Engine {
    /// Starts the step loop on its own thread with the FCFS policy.
    pub fn start(model: LoadedModel, cfg: EngineConfig) -> Result<EngineHandle> {
        Self::start_with_policy(model, cfg, Box::new(Fcfs))
    }

    /// Starts the step loop with a custom scheduling policy.
    pub fn start_with_policy(
        model: LoadedModel,
        cfg: EngineConfig,
        policy: Box<dyn SchedulingPolicy>,
    ) -> Result<EngineHandle> {
        let mc = model.config.clone();
        let bytes_per_block = KvStore::bytes_per_block(mc.num_layers, cfg.block_size, mc.kv_dim(), cfg.kv_dtype);
        let num_blocks = cfg.kv_capacity.blocks(bytes_per_block);
        if num_blocks == 0 || cfg.block_size == 0 {
            return Err(EngineError::InvalidRequest(format!(
                "KV capacity {:?} holds no block of {bytes_per_block} bytes",
                cfg.kv_capacity
            )));
        }
        let llama = LlamaModel::new(model.config, model.weights);
        let info = Arc::new(ModelInfo {
            name: model.name,
            architecture: model.architecture,
            max_context: llama.max_context(),
            config: mc.clone(),
            eos_token_ids: model.eos_token_ids,
            tokenizer: model.tokenizer,
            chat_template: model.chat_template,
            num_blocks,
            block_size: cfg.block_size,
            weight_bytes: llama.weights().matmul_bytes(),
            dense_bytes: llama.weights().dense_bytes(),
            embedding_bytes: llama.weights().embedding_bytes(),
        });
        let kv = KvStore::new(mc.num_layers, num_blocks, cfg.block_size, mc.kv_dim(), cfg.kv_dtype);
        let blocks = BlockManager::new(num_blocks, cfg.block_size, cfg.prefix_caching);
        let prefix_index = blocks.index();
        let sched = Scheduler::new(cfg.scheduler, blocks, policy);
        let metrics = Arc::new(Mutex::new(EngineMetrics::default()));
        let (tx, rx) = mpsc::channel();
        let lp = step::StepLoop::new(llama, kv, sched, info.clone(), metrics.clone(), rx, cfg.sample_budget);
        std::thread::Builder::new()
            .name("weft-engine".into())
            .spawn(move || lp.run())
            .map_err(|e| EngineError::Forward(format!("cannot spawn engine thread: {e}")))?;
        Ok(EngineHandle { tx, info, metrics, next_id: Arc::new(AtomicU64::new(1)), prefix_index })
    }
}

impl EngineHandle {
    pub fn model(&self) -> &ModelInfo {
        &self.info
    }

    /// Hashes of the full KV blocks of `prompt` under `cache_salt` (see
    /// [`Request::cache_salt`]), comparable with this engine's cache.
    pub fn prefix_hashes(&self, prompt: &[u32], cache_salt: &str) -> Vec<u64> {
        crate::kv::prefix_hashes_from(crate::kv::cache_root(cache_salt), prompt, self.info.block_size)
    }

    /// How many leading tokens of a prompt with these block hashes this engine
    /// holds in its prefix cache right now (a hint: it can change before admission).
    pub fn cached_prefix_tokens(&self, hashes: &[u64]) -> usize {
        self.prefix_index.cached_prefix_len(hashes) * self.info.block_size
    }

    /// A copy of the latest metrics.
    pub fn metrics(&self) -> EngineMetrics {
        self.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Checks a request against the model and cache before it is queued.
    pub fn validate(&self, req: &Request) -> Result<()> {
        let info = &self.info;
        if req.prompt.is_empty() {
            return Err(EngineError::InvalidRequest("prompt is empty".into()));
        }
        if let Some(&bad) = req.prompt.iter().find(|&&t| t as usize >= info.config.vocab_size) {
            return Err(EngineError::InvalidRequest(format!(
                "prompt token {bad} is outside the vocabulary of {} tokens",
                info.config.vocab_size
            )));
        }
        if req.prompt.len() >= info.max_context {
            return Err(EngineError::PromptTooLong { prompt_tokens: req.prompt.len(), max_context: info.max_context });
        }
        let needed = (req.prompt.len() + 1).div_ceil(info.block_size);
        if needed > info.num_blocks {
            return Err(EngineError::KvCapacity { needed, capacity: info.num_blocks });
        }
        if req.max_tokens == 0 {
            return Err(EngineError::InvalidRequest("max_tokens must be at least 1".into()));
        }
        req.params.validate_for(info.config.vocab_size)?;
        Ok(())
    }

    /// Asks the engine thread to verify the KV invariant that holds when no
    /// request is live: every block is free or cached-and-unreferenced.
    pub fn check_idle(&self) -> std::result::Result<(), String> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Command::CheckIdle(tx)).map_err(|_| "engine is shut down".to_string())?;
        rx.recv().map_err(|_| "engine is shut down".to_string())?
    }

    /// Queues a request and returns its event stream.
    pub fn submit(&self, req: Request) -> Result<RequestStream> {
        self.validate(&req)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.tx.send(Command::Add { id, req: Box::new(req), tx }).map_err(|_| EngineError::Shutdown)?;
        Ok(RequestStream { id, rx })
    }
}
