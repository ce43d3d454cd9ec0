//! Routing plugins: choose a backend among candidates, or reject.

use std::sync::Arc;

use super::{Pool, expect_world};
use crate::bindings::router::RouterPlugin;
use crate::bindings::router::exports::weft::plugin::router as wit;
use crate::error::Result;
use crate::runtime::LoadedPlugin;

/// What the router knows of the request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteRequest {
    pub tenant: String,
    pub model: String,
    pub prompt_tokens: u32,
    pub prefix_hashes: Vec<u64>,
}

/// One candidate backend and its load.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendInfo {
    pub id: String,
    pub model: String,
    pub queue_depth: u32,
    pub running: u32,
    pub free_kv_fraction: f32,
    pub cached_prefix_tokens: u32,
    pub healthy: bool,
}

/// The router's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Index into the candidates.
    Backend(usize),
    Reject {
        status: u16,
        reason: String,
    },
}

/// A loaded router plugin.
pub struct WasmRouter {
    pool: Pool<RouterPlugin>,
}

impl WasmRouter {
    pub fn new(plugin: Arc<LoadedPlugin>) -> Result<Arc<Self>> {
        expect_world(&plugin, crate::World::Router)?;
        Ok(Arc::new(Self { pool: Pool::new(plugin) }))
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.pool.plugin
    }

    pub fn route(&self, req: &RouteRequest, candidates: &[BackendInfo]) -> Result<RouteDecision> {
        let p = self.pool.plugin.clone();
        let (mut store, b) = self.pool.take()?;
        let r = wit::RouteRequest {
            tenant: req.tenant.clone(),
            model: req.model.clone(),
            prompt_tokens: req.prompt_tokens,
            prefix_hashes: req.prefix_hashes.clone(),
        };
        let c: Vec<wit::Backend> = candidates
            .iter()
            .map(|c| wit::Backend {
                id: c.id.clone(),
                model: c.model.clone(),
                queue_depth: c.queue_depth,
                running: c.running,
                free_kv_fraction: c.free_kv_fraction,
                cached_prefix_tokens: c.cached_prefix_tokens,
                healthy: c.healthy,
            })
            .collect();
        let out = p.call(&mut store, "route", |s| b.weft_plugin_router().call_route(s, &r, &c))?;
        self.pool.give((store, b));
        match out {
            wit::RouteResult::Backend(id) => candidates
                .iter()
                .position(|c| c.id == id)
                .map(RouteDecision::Backend)
                .ok_or_else(|| p.invalid(format!("chose backend `{id}`, which is not among the candidates"))),
            wit::RouteResult::Reject(rej) => {
                if !(400..=599).contains(&rej.status) {
                    return Err(p.invalid(format!("rejected with status {}, not an HTTP error status", rej.status)));
                }
                Ok(RouteDecision::Reject { status: rej.status, reason: rej.reason })
            }
        }
    }
}
