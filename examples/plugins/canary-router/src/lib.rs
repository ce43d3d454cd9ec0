//! A canary router: exactly `percent` of requests (spread evenly, not by
//! chance) go to the canary backend, the rest to the least-loaded of the
//! others. If the canary is unhealthy, everything goes to the others.
//!
//! Configuration: `canary = "engine-1"` (a backend id) and `percent = "10"`.

use weft_sdk::router::{Backend, Rejection, RouteRequest, RouteResult, Router};
use weft_sdk::{Config, Metadata, Plugin, config_value};

struct Canary {
    canary: String,
    percent: u32,
    /// Accumulates `percent` per request; each time it passes 100 the canary gets one.
    credit: u32,
}

impl Plugin for Canary {
    fn metadata() -> Metadata {
        Metadata {
            name: "canary-router".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let canary = config_value(config, "canary").ok_or("set `canary` to a backend id")?;
        let percent: u32 = config_value(config, "percent")
            .ok_or("set `percent`")?
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or("`percent` must be an integer from 0 to 100")?;
        Ok(Canary { canary: canary.to_string(), percent, credit: 0 })
    }
}

impl Router for Canary {
    fn route(&mut self, _request: &RouteRequest, candidates: &[Backend]) -> RouteResult {
        let canary = self.canary.clone();
        let canary_up = candidates.iter().any(|b| b.id == canary && b.healthy);
        if canary_up {
            let credit = self.credit + self.percent;
            let to_canary = credit >= 100;
            self.credit = if to_canary { credit - 100 } else { credit };
            if to_canary {
                return RouteResult::Backend(canary);
            }
        }
        match candidates.iter().filter(|b| b.healthy && b.id != canary).min_by_key(|b| b.queue_depth + b.running) {
            Some(b) => RouteResult::Backend(b.id.clone()),
            None if canary_up => RouteResult::Backend(canary),
            None => RouteResult::Reject(Rejection { status: 503, reason: "no healthy backend".into() }),
        }
    }
}

weft_sdk::export_router!(Canary);
