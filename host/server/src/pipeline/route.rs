//! Choosing the engine for a request when several serve one model.
//!
//! The router plugin sees each backend's exact in-flight count (kept here,
//! not sampled from the engine's last step, so a burst of arrivals between
//! two steps is still spread evenly) split into queued and running by the
//! engine's latest snapshot, its free KV fraction, and how many of the
//! prompt's leading tokens its prefix cache holds right now.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_engine::EngineHandle;
use weft_runtime::{BackendInfo, RouteDecision, RouteRequest};

use super::ModelService;
use super::error::{PipelineError, Stage};
use super::guard::Outcome;

/// One engine of a model.
pub struct Backend {
    pub id: String,
    pub engine: EngineHandle,
    /// Sequences submitted and not yet finished.
    pub in_flight: Arc<AtomicUsize>,
}

impl Backend {
    pub fn new(id: String, engine: EngineHandle) -> Self {
        Self { id, engine, in_flight: Arc::default() }
    }
}

/// The engines of a model, shared by every pipeline version and every tenant,
/// with the lock that serializes routing decisions across all of them.
pub struct Backends {
    list: Vec<Backend>,
    route_lock: std::sync::Mutex<()>,
}

impl Backends {
    pub fn new(list: Vec<Backend>) -> Self {
        assert!(!list.is_empty(), "a model has at least one engine");
        Self { list, route_lock: Default::default() }
    }
}

impl std::ops::Deref for Backends {
    type Target = [Backend];
    fn deref(&self) -> &[Backend] {
        &self.list
    }
}

/// Counts a sequence as in flight on its backend until dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(b: &Backend) -> Self {
        b.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(b.in_flight.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The backend for a prompt, already counting one sequence in flight on it;
/// with one backend, no router call. Decisions are serialized (across tenants
/// and pipeline versions too) so that two requests arriving together do not
/// both see the same "least loaded" engine.
pub fn choose<'a>(
    svc: &'a ModelService,
    tenant: &str,
    prompt: &[u32],
) -> Result<(&'a Backend, InFlight), PipelineError> {
    let (Some(router), true) = (&svc.router, svc.backends.len() > 1) else {
        return Ok((&svc.backends[0], InFlight::new(&svc.backends[0])));
    };
    let _serial = svc.backends.route_lock.lock().unwrap_or_else(|e| e.into_inner());
    let hashes = svc.engine().prefix_hashes(prompt, svc.cache_salt());
    let infos: Vec<BackendInfo> = svc
        .backends
        .iter()
        .map(|b| {
            let m = b.engine.metrics();
            let in_flight = b.in_flight.load(Ordering::Relaxed);
            let running = m.running.min(in_flight);
            let kv = m.kv;
            let free = if kv.total_blocks == 0 {
                0.0
            } else {
                (kv.total_blocks - kv.used_blocks) as f32 / kv.total_blocks as f32
            };
            BackendInfo {
                id: b.id.clone(),
                model: svc.name.clone(),
                queue_depth: (in_flight - running) as u32,
                running: running as u32,
                free_kv_fraction: free,
                cached_prefix_tokens: b.engine.cached_prefix_tokens(&hashes) as u32,
                healthy: true,
            }
        })
        .collect();
    let req = RouteRequest {
        tenant: tenant.to_string(),
        model: svc.name.clone(),
        prompt_tokens: prompt.len() as u32,
        prefix_hashes: hashes,
    };
    // The guard's policy is `fallback` to least in flight: a broken router does not take the model down.
    let chosen = match router.call(|r| r.route(&req, &infos))? {
        Outcome::Done(RouteDecision::Backend(i)) => &svc.backends[i],
        Outcome::Done(RouteDecision::Reject { status, reason }) => {
            return Err(PipelineError::Rejected { stage: Stage::Router, status, message: reason });
        }
        Outcome::Skipped => &svc.backends[0],
    };
    Ok((chosen, InFlight::new(chosen)))
}
