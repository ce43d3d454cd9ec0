//! The HTTP API: OpenAI-compatible chat and completions (streaming or not),
//! models, health, readiness and metrics.

pub mod auth;
mod body;
pub mod error;
pub mod gateway;
mod handlers;
pub mod openai;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::metrics::ServerMetrics;
use crate::tenancy::Registry;

/// Shared by every handler.
pub struct AppState {
    /// What serves requests, as the reloader last published it.
    pub registry: Arc<Registry>,
    /// Builds and publishes new versions; set once loading is done.
    pub reloader: std::sync::OnceLock<Arc<crate::reload::Reloader>>,
    pub draining: AtomicBool,
    pub metrics: Arc<ServerMetrics>,
    pub inflight: AtomicUsize,
    pub max_inflight: usize,
    pub next_id: AtomicU64,
    /// Longest a request may run before it is ended with a 504 (or an error event).
    pub request_timeout: std::time::Duration,
    /// Where the request path's plugin calls run: never on a tokio worker.
    pub executor: weft_runtime::PluginExecutor,
    /// Digest of the admin key: with tenants, `/metrics` answers only to it.
    pub admin_key: std::sync::OnceLock<[u8; 32]>,
    /// Plugin instances requests in flight may hold (global and per tenant).
    pub instances: Arc<crate::tenancy::instances::InstanceBudget>,
    /// Set when `server.trusted_gateway`: whose headers name fairness ids and objectives.
    pub gateway: Option<gateway::Gateway>,
}

impl AppState {
    pub fn new(max_inflight: usize, request_timeout: std::time::Duration) -> Self {
        let registry: Arc<Registry> = Default::default();
        // The executor shares its threads by the same tenant weights as the engines' scheduler.
        let shares = registry.shares.clone();
        let weights: weft_runtime::executor::Weights = Arc::new(move |tenant: &str| {
            shares.read().ok().and_then(|s| s.get(tenant).map(|s| s.weight)).unwrap_or(1.0)
        });
        Self {
            registry,
            reloader: std::sync::OnceLock::new(),
            draining: AtomicBool::new(false),
            metrics: Arc::new(ServerMetrics::default()),
            inflight: AtomicUsize::new(0),
            max_inflight,
            next_id: AtomicU64::new(1),
            request_timeout,
            executor: weft_runtime::PluginExecutor::for_machine(weights),
            admin_key: std::sync::OnceLock::new(),
            instances: Arc::new(crate::tenancy::instances::InstanceBudget::for_runtime(
                weft_runtime::RuntimeConfig::default().max_instances as usize,
            )),
            gateway: None,
        }
    }

    /// Reads the gateway headers (see [`gateway`]) from now on.
    pub fn trusting(mut self, g: gateway::Gateway) -> Self {
        self.gateway = Some(g);
        self
    }

    pub fn ready(&self) -> bool {
        self.registry.services.load().is_some() && !self.draining.load(Ordering::Relaxed)
    }
}

/// `/metrics` alone, for the admin listener.
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new().route("/metrics", get(handlers::metrics)).with_state(state)
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize, body_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/models", get(handlers::models))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics))
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
            body::body_deadline(body_timeout, max_body_bytes, req, next)
        }))
        .with_state(state)
}
