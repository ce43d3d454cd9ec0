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
use weft_runtime::{Limits, PluginRuntime, RuntimeConfig, WasmRouter, WasmSamplerFactory, WasmTokenizer, WasmTransform};

use crate::api::{self, AppState};
use crate::config::Config;
use crate::pipeline::{ModelService, TransformStage};

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
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let addr: SocketAddr = format!("{}:{}", cfg.server.host, cfg.server.port).parse().context("server host/port")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let state = Arc::new(AppState::new(cfg.server.max_queued_requests, Duration::from_secs(cfg.server.request_timeout_secs)));
    let app = api::router(state.clone(), cfg.server.max_request_body_bytes);
    tracing::warn!("weft listening on http://{local} (loading the model; /ready turns 200 when done)");
    eprintln!("weft: listening on http://{local}");

    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    {
        let (state, cfg) = (state.clone(), cfg.clone());
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || load(&state, &cfg)).await;
            let err = match r {
                Ok(Ok(())) => return,
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("loader panicked: {e}"),
            };
            let _ = fail_tx.send(err);
        });
    }
    let shutdown = {
        let state = state.clone();
        async move {
            shutdown_signal().await;
            state.draining.store(true, Ordering::Relaxed);
            eprintln!("weft: shutting down; no new requests, finishing those in flight");
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let grace = Duration::from_secs(cfg.server.grace_secs);
    let state2 = state.clone();
    tokio::select! {
        r = server => r?,
        Ok(e) = fail_rx => {
            // A server that can never be ready is no use: report and stop.
            return Err(e.context("loading the model"));
        }
        _ = async { loop { if state2.draining.load(Ordering::Relaxed) { tokio::time::sleep(grace).await; break; } tokio::time::sleep(Duration::from_millis(100)).await; } } => {
            eprintln!("weft: grace period over; exiting");
        }
    }
    Ok(())
}

/// Loads the model and plugins and publishes them in `state`.
fn load(state: &AppState, cfg: &Config) -> anyhow::Result<()> {
    let mc = &cfg.models[0];
    let path = if mc.source == "default" { crate::model_source::resolve(None)? } else { PathBuf::from(&mc.source) };
    let settings = mc.engine_settings();
    let mut backends = Vec::new();
    let (mut spec, mut template, mut model_name) = (None, None, String::new());
    for (i, (quantize, kv_mib)) in settings.iter().enumerate() {
        let quantize: Quantize = quantize.parse()?;
        eprintln!("weft: loading {} (engine {i}, quantize {quantize:?})", path.display());
        let model = weft_engine::model::load(&path, LoadOptions::quantized(quantize))?;
        if i == 0 {
            spec = Some(model.tokenizer.clone().with_context(|| format!("{} carries no tokenizer", path.display()))?);
            template = model.chat_template.clone();
            model_name = model.name.clone();
        }
        let engine = Engine::start(
            model,
            EngineConfig {
                kv_capacity: KvCapacity::Bytes(kv_mib << 20),
                scheduler: SchedulerConfig { max_batched_tokens: mc.max_tokens_per_step, max_num_seqs: mc.max_sequences, ..Default::default() },
                ..Default::default()
            },
        )?;
        backends.push(crate::pipeline::Backend::new(format!("engine-{i}"), engine));
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

    let fuel = cfg.plugins.iter().any(|p| p.limits.fuel.is_some());
    let prt = PluginRuntime::new(RuntimeConfig { fuel_metering: fuel, ..Default::default() })?;
    let mut plugins = Vec::new();
    // A pipeline name is a configured plugin, or a built-in with default limits.
    let mut load_plugin = |pname: &str, extra: Vec<(String, String)>| -> anyhow::Result<Arc<weft_runtime::LoadedPlugin>> {
        let p = match cfg.plugins.iter().find(|p| p.name == pname) {
            Some(sec) => {
                let mut config = sec.config_pairs();
                for (k, v) in extra {
                    if !config.iter().any(|(ck, _)| *ck == k) {
                        config.push((k, v));
                    }
                }
                match (&sec.file, &sec.builtin) {
                    (Some(f), _) => prt.load_file(pname, f, sec.limits(), config)?,
                    (None, Some(b)) => prt.load(pname, weft_runtime::builtin::get(b).context("built-in plugin")?, sec.limits(), config)?,
                    _ => anyhow::bail!("plugin `{pname}` has neither file nor builtin"),
                }
            }
            None => prt.load(pname, weft_runtime::builtin::get(pname).context("built-in plugin")?, Limits::default(), extra)?,
        };
        plugins.push(p.clone());
        Ok(p)
    };
    let pl = &mc.pipeline;
    let tokenizer = WasmTokenizer::new(load_plugin(&pl.tokenizer, vec![])?, &spec)?;
    let native_tokenizer = weft_runtime::native_tokenizer(&spec);
    let mut transforms = Vec::new();
    for t in &pl.transforms {
        let is_template = t == "transform-chat-template"
            || cfg.plugins.iter().any(|p| p.name == *t && p.builtin.as_deref() == Some("transform-chat-template"));
        let mut extra = Vec::new();
        let mut native_template = None;
        if is_template {
            let Some(src) = &template else {
                tracing::warn!("the model has no chat template; `{t}` is left out and chat requests will be refused");
                continue;
            };
            extra = vec![("chat_template".into(), src.clone()), ("bos_token".into(), bos.clone()), ("eos_token".into(), eos.clone())];
            native_template = transform_chat_template::ChatTemplate::new(src, &bos, &eos, None).ok();
        }
        transforms.push(TransformStage { plugin: WasmTransform::new(load_plugin(t, extra)?)?, native_template });
    }
    let info = backends[0].engine.model();
    let vocabulary = Arc::new(tokenizer.vocabulary(info.config.vocab_size, info.eos_token_ids.clone())?);
    let sampler = match pl.sampler.as_str() {
        "native" => None,
        s => Some(WasmSamplerFactory::new(load_plugin(s, vec![])?)?.with_vocabulary(vocabulary.clone())),
    };
    let structured = match pl.structured_sampler.as_str() {
        "none" => None,
        s => Some(WasmSamplerFactory::new(load_plugin(s, vec![])?)?.with_vocabulary(vocabulary.clone())),
    };
    let router = if backends.len() > 1 { Some(WasmRouter::new(load_plugin(&pl.router, vec![])?)?) } else { None };
    let _ = state.plugins.set(plugins);
    let _ = state.runtime.set(prt);
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let service = ModelService {
        name: name.clone(),
        backends,
        router,
        route_lock: Default::default(),
        tokenizer,
        native_tokenizer,
        transforms,
        sampler,
        structured,
        failure: pl.failure.clone(),
        created,
    };
    let _ = state.model.set(Arc::new(service));
    eprintln!("weft: ready, serving model `{name}`");
    Ok(())
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
