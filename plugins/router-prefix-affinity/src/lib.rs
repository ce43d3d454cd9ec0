//! Prefix-affinity routing: requests sharing a prefix go to the backend that
//! already holds it in its KV cache, so they prefill only their suffix.
//!
//! Among healthy backends of the model, the one with the most cached prefix
//! tokens wins, unless its load (queued + running) exceeds the least-loaded
//! backend's by more than `max_extra_load` (config, default 4) or its KV cache
//! is nearly full (`min_free_kv`, default 0.05): then the request falls back to
//! least-loaded. With no cached prefix anywhere it is least-loaded too.

use weft_sdk::router::{Backend, Rejection, RouteRequest, RouteResult, Router};
use weft_sdk::{Config, Metadata, Plugin, config_value};

struct PrefixAffinity {
    /// How much busier than the least-loaded backend an affine one may be.
    max_extra_load: u32,
    /// Below this free KV fraction an affine backend is passed over.
    min_free_kv: f32,
}

impl Plugin for PrefixAffinity {
    fn metadata() -> Metadata {
        Metadata {
            name: "router-prefix-affinity".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let mut me = PrefixAffinity { max_extra_load: 4, min_free_kv: 0.05 };
        if let Some(v) = config_value(config, "max_extra_load") {
            me.max_extra_load = v.parse().map_err(|_| format!("max_extra_load `{v}` is not a number"))?;
        }
        if let Some(v) = config_value(config, "min_free_kv") {
            let f: f32 = v.parse().map_err(|_| format!("min_free_kv `{v}` is not a number"))?;
            me.min_free_kv = f.clamp(0.0, 1.0);
        }
        Ok(me)
    }
}

fn load(b: &Backend) -> u32 {
    b.queue_depth + b.running
}

impl Router for PrefixAffinity {
    fn route(&mut self, request: &RouteRequest, candidates: &[Backend]) -> RouteResult {
        let live: Vec<(usize, &Backend)> = candidates
            .iter()
            .enumerate()
            .filter(|(_, b)| b.healthy && (b.model == request.model || request.model.is_empty()))
            .collect();
        let Some(&(_, least)) = live.iter().min_by(|(ia, a), (ib, b)| load(a).cmp(&load(b)).then(ia.cmp(ib))) else {
            return RouteResult::Reject(Rejection {
                status: 503,
                reason: format!("no healthy backend serves model `{}`", request.model),
            });
        };
        let (extra, min_free) = (self.max_extra_load, self.min_free_kv);
        let affine = live
            .iter()
            .filter(|(_, b)| b.cached_prefix_tokens > 0)
            .max_by(|(ia, a), (ib, b)| a.cached_prefix_tokens.cmp(&b.cached_prefix_tokens).then(ib.cmp(ia)))
            .map(|(_, b)| *b);
        match affine {
            Some(b) if load(b) <= load(least) + extra && b.free_kv_fraction >= min_free => {
                RouteResult::Backend(b.id.clone())
            }
            _ => RouteResult::Backend(least.id.clone()),
        }
    }
}

weft_sdk::export_router!(PrefixAffinity);
