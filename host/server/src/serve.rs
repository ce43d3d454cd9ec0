//! `weft serve`: start listening at once (so `/health` and `/ready` answer
//! during loading), then fetch and load the model, compile the plugins, wire
//! the pipeline, and flip `/ready`. SIGTERM/SIGINT: stop admitting (503 on
//! `/ready` and new requests), let in-flight requests finish within the grace
//! period, exit 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use weft_engine::{Engine, EngineConfig, KvCapacity, LoadOptions, Quantize, SchedulerConfig};
use weft_runtime::{PluginRuntime, RuntimeConfig};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::pipeline::{Backend, Backends};
use crate::reload::Reloader;
use crate::reload::build::ModelBase;

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// The full configuration (see examples/weft.toml). Flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A GGUF file or Hugging Face directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Name the model is served under.
    #[arg(long)]
    pub served_model_name: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// Post-training weight quantization at load: none or q8_0.
    #[arg(long)]
    pub quantize: Option<String>,
    /// KV cache size in MiB.
    #[arg(long)]
    pub kv_cache_mib: Option<usize>,
    /// Requests in flight (queued or running) before new ones get 429.
    #[arg(long)]
    pub max_queued: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long)]
    pub max_body_bytes: Option<usize>,
    /// Use the engine's native sampler instead of the configured sampler plugin.
    #[arg(long)]
    pub native_sampler: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long)]
    pub grace_secs: Option<u64>,
}

impl ServeArgs {
    /// The configuration file (or the built-in default) with the flags applied.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default_serving(),
        };
        let s = &mut c.server;
        if let Some(h) = &self.host {
            s.host = h.clone();
        }
        if let Some(p) = self.port {
            s.port = p;
        }
        if let Some(v) = self.max_queued {
            s.max_queued_requests = v;
        }
        if let Some(v) = self.max_body_bytes {
            s.max_request_body_bytes = v;
        }
        if let Some(v) = self.grace_secs {
            s.grace_secs = v;
        }
        let m = &mut c.models[0];
        if let Some(p) = &self.model {
            m.source = p.display().to_string();
            if self.served_model_name.is_none() && self.config.is_none() {
                m.name = String::new(); // filled from the model file
            }
        }
        if let Some(n) = &self.served_model_name {
            m.name = n.clone();
        }
        if let Some(q) = &self.quantize {
            m.quantize = q.clone();
        }
        if let Some(k) = self.kv_cache_mib {
            m.kv_cache_mib = k;
        }
        if self.native_sampler {
            m.pipeline.sampler = "native".into();
        }
        Ok(c)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    // HTTP work yields to the engine's forward pass (nice 5; see docs/architecture.md).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(|| weft_engine::sampling::pool::lower_thread_priority(5))
        .build()?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let addr: SocketAddr = format!("{}:{}", cfg.server.host, cfg.server.port).parse().context("server host/port")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let mut state = AppState::new(cfg.server.max_queued_requests, Duration::from_secs(cfg.server.request_timeout_secs));
    if cfg.server.trusted_gateway {
        state = state.trusting(crate::api::gateway::Gateway { priorities: cfg.server.objective_priorities.clone() });
    }
    let state = Arc::new(state);
    let app = api::router(
        state.clone(),
        cfg.server.max_request_body_bytes,
        Duration::from_secs(cfg.server.body_read_timeout_secs),
    );
    tracing::warn!("weft listening on http://{local} (loading the model; /ready turns 200 when done)");
    eprintln!("weft: listening on http://{local}");

    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    {
        let (state, cfg, args) = (state.clone(), cfg.clone(), args.clone());
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || load(&state, &cfg, args)).await;
            let err = match r {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("loader panicked: {e}"),
            };
            let _ = fail_tx.send(err);
        });
    }
    let (signalled_tx, mut signalled) = tokio::sync::watch::channel(false);
    let drain = Duration::from_secs(cfg.server.drain_secs.min(cfg.server.grace_secs));
    let shutdown = {
        let state = state.clone();
        async move {
            shutdown_signal().await;
            state.draining.store(true, Ordering::Relaxed);
            let _ = signalled_tx.send(true);
            eprintln!(
                "weft: shutting down; /ready is 503, serving for {}s more, then finishing requests in flight",
                drain.as_secs()
            );
            tokio::time::sleep(drain).await;
            eprintln!("weft: listener closed; finishing requests in flight");
        }
    };
    let server = crate::http::serve(listener, app, Duration::from_secs(cfg.server.header_read_timeout_secs), shutdown);
    let grace = Duration::from_secs(cfg.server.grace_secs);
    tokio::select! {
        r = server => {
            r?;
            eprintln!("weft: every request finished; exiting");
        }
        Ok(e) = fail_rx => {
            // A server that can never be ready is no use: report and stop.
            return Err(e.context("loading the model"));
        }
        _ = async { let _ = signalled.wait_for(|s| *s).await; tokio::time::sleep(grace).await } => {
            eprintln!("weft: grace period over; exiting with requests still in flight");
        }
    }
    Ok(())
}

/// Where each model's weights come from (the default model is fetched here, once).
fn model_paths(cfg: &Config) -> anyhow::Result<Vec<PathBuf>> {
    let mut default = None;
    cfg.models
        .iter()
        .map(|m| {
            if m.source != "default" {
                return Ok(PathBuf::from(&m.source));
            }
            if default.is_none() {
                default = Some(crate::model_source::resolve(None)?);
            }
            Ok(default.clone().expect("just set"))
        })
        .collect()
}

/// Refuses, naming every model's share, a configuration whose weights and KV
/// caches cannot fit `server.memory_budget_mib` (default: the memory the
/// machine has available now), before any model is loaded.
fn check_memory(cfg: &Config, paths: &[PathBuf]) -> anyhow::Result<()> {
    const MIB: u64 = 1 << 20;
    let budget = match cfg.server.memory_budget_mib {
        Some(m) => m as u64 * MIB,
        None => available_memory().unwrap_or(u64::MAX),
    };
    let mut parts = Vec::new();
    let mut total = 0u64;
    for (m, path) in cfg.models.iter().zip(paths) {
        let mut weights = 0;
        let mut kv = 0;
        for (quantize, kv_mib) in m.engine_settings() {
            weights += weft_engine::model::estimate::weight_bytes(path, quantize.parse()?)
                .with_context(|| format!("model `{}`", m.name))?;
            kv += kv_mib as u64 * MIB;
        }
        total += weights + kv;
        let name = if m.name.is_empty() { path.display().to_string() } else { m.name.clone() };
        parts.push(format!("`{name}`: weights {} MiB + KV {} MiB", weights / MIB, kv / MIB));
    }
    if total > budget {
        anyhow::bail!(
            "the models need about {} MiB but the memory budget is {} MiB ({}): {}. Lower kv_cache_mib, \
             quantize less, serve fewer models or raise server.memory_budget_mib",
            total / MIB,
            budget / MIB,
            if cfg.server.memory_budget_mib.is_some() { "server.memory_budget_mib" } else { "available memory" },
            parts.join("; ")
        );
    }
    eprintln!("weft: models need about {} MiB of {} MiB ({})", total / MIB, budget / MIB, parts.join("; "));
    Ok(())
}

fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib << 10)
}

/// Loads the models and plugins and publishes them in `state`.
fn load(state: &Arc<AppState>, cfg: &Config, args: ServeArgs) -> anyhow::Result<()> {
    let config_path = args.config.clone();
    let paths = model_paths(cfg)?;
    check_memory(cfg, &paths)?;
    let mut bases = Vec::new();
    for (mc, path) in cfg.models.iter().zip(&paths) {
        bases.push(load_model(state, cfg, mc, path)?);
    }
    let names: Vec<String> = bases.iter().map(|b| b.name.clone()).collect();
    let fuel = cfg.wants_fuel();
    let rt = PluginRuntime::new(RuntimeConfig {
        fuel_metering: fuel,
        idle_memory_bytes: cfg.server.plugin_idle_memory_mib << 20,
        idle_ttl: Duration::from_secs(cfg.server.plugin_idle_secs),
        ..Default::default()
    })?;
    let read_config: crate::reload::ConfigSource = Box::new(move || args.resolve());
    let reloader = Reloader::start(
        state.registry.clone(),
        state.metrics.clone(),
        rt,
        bases,
        cfg.clone(),
        config_path.clone(),
        read_config,
    )?;
    let _ = state.reloader.set(reloader.clone());
    eprintln!("weft: ready, serving {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "));

    if cfg.admin.watch && (config_path.is_some() || cfg.plugins.iter().any(|p| p.file.is_some())) {
        match crate::reload::watch::spawn(reloader.clone()) {
            Ok(w) => std::mem::forget(w), // watches for the life of the process
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config and plugin files; reload through the admin API")
            }
        }
    }
    match &cfg.admin.key {
        Some(key) => {
            let _ = state.admin_key.set(crate::tenancy::keys::digest(key));
            let app = crate::reload::admin::router(reloader, key).merge(crate::api::metrics_router(state.clone()));
            let addr: SocketAddr = cfg.admin.listen.parse()?;
            let std_listener =
                std::net::TcpListener::bind(addr).with_context(|| format!("admin API: cannot listen on {addr}"))?;
            std_listener.set_nonblocking(true)?;
            let listener = tokio::net::TcpListener::from_std(std_listener)?;
            eprintln!("weft: admin API on http://{}", listener.local_addr()?);
            let header_timeout = Duration::from_secs(cfg.server.header_read_timeout_secs);
            tokio::runtime::Handle::current().spawn(async move {
                let _ = crate::http::serve(listener, app, header_timeout, std::future::pending()).await;
            });
        }
        None => tracing::info!("no admin.key in the config: the admin API is off"),
    }
    Ok(())
}

/// Starts one model's engines and describes it for its pipelines.
fn load_model(
    state: &Arc<AppState>,
    cfg: &Config,
    mc: &crate::config::ModelSection,
    path: &std::path::Path,
) -> anyhow::Result<ModelBase> {
    let mut backends = Vec::new();
    let (mut spec, mut template, mut model_name) = (None, None, String::new());
    for (i, (quantize, kv_mib)) in mc.engine_settings().iter().enumerate() {
        let quantize: Quantize = quantize.parse()?;
        eprintln!(
            "weft: loading {} (engine {i}, quantize {quantize:?}, int8 kernel {})",
            path.display(),
            weft_engine::model::kernels::q8gemm::kernel().as_str()
        );
        let model = weft_engine::model::load(path, LoadOptions::quantized(quantize))?;
        if i == 0 {
            spec = Some(model.tokenizer.clone().with_context(|| format!("{} carries no tokenizer", path.display()))?);
            template = model.chat_template.clone();
            model_name = model.name.clone();
        }
        let engine_cfg = EngineConfig {
            kv_capacity: KvCapacity::Bytes(kv_mib << 20),
            scheduler: SchedulerConfig {
                max_batched_tokens: mc.max_tokens_per_step,
                max_num_seqs: mc.max_sequences,
                ..Default::default()
            },
            sample_budget: Duration::from_secs_f64(mc.sample_budget_ms.clamp(0.0, 10_000.0) / 1e3),
            kv_dtype: mc.kv_dtype.parse().map_err(|e: String| anyhow::anyhow!("models.kv_dtype: {e}"))?,
            ..Default::default()
        };
        // Fair sharing between tenants (or a trusted gateway's fairness ids)
        // unless the config asks for first come, first served.
        let fair = mc
            .scheduler
            .as_deref()
            .map(|s| s == "vtc")
            .unwrap_or(!cfg.tenants.is_empty() || cfg.server.trusted_gateway);
        let policy: Box<dyn weft_engine::SchedulingPolicy> = if fair {
            Box::new(weft_engine::Vtc::new(state.registry.shares.clone()))
        } else {
            Box::new(weft_engine::Fcfs)
        };
        let engine = Engine::start_with_policy(model, engine_cfg, policy)?;
        backends.push(Backend::new(format!("engine-{i}"), engine));
    }
    let spec = spec.context("no engine configured")?;
    let name = if mc.name.is_empty() { model_name } else { mc.name.clone() };
    let (bos, eos) = match &spec {
        weft_engine::TokenizerSpec::Gguf(g) => {
            let t = |id: Option<u32>| id.and_then(|i| g.tokens.get(i as usize).cloned()).unwrap_or_default();
            (t(g.bos_token_id), t(g.eos_token_id))
        }
        _ => (String::new(), String::new()),
    };
    Ok(ModelBase {
        name,
        backends: Arc::new(Backends::new(backends)),
        native_tokenizer: weft_runtime::native_tokenizer(&spec).map(Arc::new),
        native_template: template
            .as_ref()
            .and_then(|src| transform_chat_template::ChatTemplate::new(src, &bos, &eos, None).ok())
            .map(Arc::new),
        spec,
        template,
        bos,
        eos,
        vocabulary: Default::default(),
        created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
