//! A canary router: exactly `percent` of requests (spread evenly, not by
//! chance) go to the canary backend, the rest to the least-loaded of the
//! others. If the canary is unhealthy, everything goes to the others.
//!
//! Configuration: `canary = "engine-1"` (a backend id) and `percent = "10"`.

use std::cell::Cell;

use weft_sdk::router::{Backend, Rejection, RouteRequest, RouteResult, Router};
use weft_sdk::{Config, Metadata, Plugin, config_value};

thread_local! {
    static CANARY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    static PERCENT: Cell<u32> = const { Cell::new(0) };
    /// Accumulates `percent` per request; each time it passes 100 the canary gets one.
    static CREDIT: Cell<u32> = const { Cell::new(0) };
}

struct Canary;

impl Plugin for Canary {
    fn metadata() -> Metadata {
        Metadata {
            name: "canary-router".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<(), String> {
        let canary = config_value(config, "canary").ok_or("set `canary` to a backend id")?;
        let percent: u32 = config_value(config, "percent")
            .ok_or("set `percent`")?
            .parse()
            .ok()
            .filter(|p| *p <= 100)
            .ok_or("`percent` must be an integer from 0 to 100")?;
        CANARY.with(|c| *c.borrow_mut() = canary.to_string());
        PERCENT.with(|p| p.set(percent));
        Ok(())
    }
}

impl Router for Canary {
    fn route(_request: &RouteRequest, candidates: &[Backend]) -> RouteResult {
        let canary = CANARY.with(|c| c.borrow().clone());
        let canary_up = candidates.iter().any(|b| b.id == canary && b.healthy);
        if canary_up {
            let credit = CREDIT.with(|c| c.get()) + PERCENT.with(|p| p.get());
            let to_canary = credit >= 100;
            CREDIT.with(|c| c.set(if to_canary { credit - 100 } else { credit }));
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
