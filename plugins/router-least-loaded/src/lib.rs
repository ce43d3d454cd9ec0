//! Least-loaded routing: among healthy backends serving the request's model,
//! pick the one with the smallest `queue_depth + running`; ties go to the
//! most free KV cache, then to the first listed. Rejects with 503 when no
//! backend is healthy.

use weft_sdk::router::{Backend, Rejection, RouteRequest, RouteResult, Router};
use weft_sdk::{Config, Metadata, Plugin};

struct LeastLoaded;

impl Plugin for LeastLoaded {
    fn metadata() -> Metadata {
        Metadata {
            name: "router-least-loaded".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(LeastLoaded)
    }
}

impl Router for LeastLoaded {
    fn route(&mut self, request: &RouteRequest, candidates: &[Backend]) -> RouteResult {
        let best = candidates
            .iter()
            .enumerate()
            .filter(|(_, b)| b.healthy && (b.model == request.model || request.model.is_empty()))
            .min_by(|(ia, a), (ib, b)| {
                (a.queue_depth + a.running)
                    .cmp(&(b.queue_depth + b.running))
                    .then(b.free_kv_fraction.total_cmp(&a.free_kv_fraction))
                    .then(ia.cmp(ib))
            });
        match best {
            Some((_, b)) => RouteResult::Backend(b.id.clone()),
            None => RouteResult::Reject(Rejection {
                status: 503,
                reason: format!("no healthy backend serves model `{}`", request.model),
            }),
        }
    }
}

weft_sdk::export_router!(LeastLoaded);
