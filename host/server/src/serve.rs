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
use weft_runtime::{Limits, PluginRuntime, RuntimeConfig, WasmSamplerFactory, WasmTokenizer, WasmTransform};

use crate::api::{self, AppState};
use crate::pipeline::ModelService;

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// A GGUF file or Hugging Face directory (default: SmolLM2-135M-Instruct, fetched on first use).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Name the model is served under (default: the model's own name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Post-training weight quantization at load: none or q8_0.
    #[arg(long, default_value = "none")]
    pub quantize: String,
    /// KV cache size in MiB.
    #[arg(long, default_value_t = 512)]
    pub kv_cache_mib: usize,
    /// Requests in flight (queued or running) before new ones get 429.
    #[arg(long, default_value_t = 256)]
    pub max_queued: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// Use the engine's native sampler instead of the sampler-standard plugin.
    #[arg(long)]
    pub native_sampler: bool,
    /// Seconds in-flight requests get to finish after SIGTERM.
    #[arg(long, default_value_t = 30)]
    pub grace_secs: u64,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{}:{}", args.host, args.port).parse().context("--host/--port")?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let state = Arc::new(AppState::new(args.max_queued));
    let app = api::router(state.clone(), args.max_body_bytes);
    tracing::warn!("weft listening on http://{local} (loading the model; /ready turns 200 when done)");
    eprintln!("weft: listening on http://{local}");

    let (fail_tx, fail_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    {
        let (state, args) = (state.clone(), args.clone());
        tokio::spawn(async move {
            let r = tokio::task::spawn_blocking(move || load(&state, &args)).await;
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
    let grace = Duration::from_secs(args.grace_secs);
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
fn load(state: &AppState, args: &ServeArgs) -> anyhow::Result<()> {
    let path = crate::model_source::resolve(args.model.as_deref())?;
    let quantize: Quantize = args.quantize.parse()?;
    eprintln!("weft: loading {}", path.display());
    let model = weft_engine::model::load(&path, LoadOptions::quantized(quantize))?;
    let spec = model.tokenizer.clone().with_context(|| format!("{} carries no tokenizer", path.display()))?;
    let template = model.chat_template.clone();
    let name = args.served_model_name.clone().unwrap_or_else(|| {
        if args.model.is_none() { weft_engine::DefaultModel::NAME.to_string() } else { model.name.clone() }
    });
    let (bos, eos) = match &spec {
        weft_engine::TokenizerSpec::Gguf(g) => {
            let t = |id: Option<u32>| id.and_then(|i| g.tokens.get(i as usize).cloned()).unwrap_or_default();
            (t(g.bos_token_id), t(g.eos_token_id))
        }
        _ => (String::new(), String::new()),
    };
    let engine = Engine::start(
        model,
        EngineConfig {
            kv_capacity: KvCapacity::Bytes(args.kv_cache_mib << 20),
            scheduler: SchedulerConfig::default(),
            ..Default::default()
        },
    )?;

    let prt = PluginRuntime::new(RuntimeConfig::default())?;
    let builtin = |name: &str, config: Vec<(String, String)>| -> anyhow::Result<Arc<weft_runtime::LoadedPlugin>> {
        let bytes = weft_runtime::builtin::get(name).context("built-in plugin")?;
        Ok(prt.load(name, bytes, Limits::default(), config)?)
    };
    let mut plugins = Vec::new();
    let tok_plugin = builtin("tokenizer-bpe", vec![])?;
    plugins.push(tok_plugin.clone());
    let tokenizer = WasmTokenizer::new(tok_plugin, &spec)?;
    let mut transforms = Vec::new();
    if let Some(t) = template {
        let p = builtin("transform-chat-template", vec![("chat_template".into(), t), ("bos_token".into(), bos), ("eos_token".into(), eos)])?;
        plugins.push(p.clone());
        transforms.push(WasmTransform::new(p)?);
    } else {
        tracing::warn!("the model has no chat template; /v1/chat/completions will refuse messages");
    }
    let sampler = if args.native_sampler {
        None
    } else {
        let p = builtin("sampler-standard", vec![])?;
        plugins.push(p.clone());
        Some(WasmSamplerFactory::new(p)?)
    };
    let _ = state.plugins.set(plugins);
    let _ = state.runtime.set(prt);
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let _ = state.model.set(Arc::new(ModelService { name: name.clone(), engine, tokenizer, transforms, sampler, created }));
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
