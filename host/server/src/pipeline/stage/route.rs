//! The router stage: the Wasm router, and least-in-flight as its native twin.

use std::sync::Arc;

use weft_runtime::{BackendInfo, LoadedPlugin, RouteDecision, RouteRequest, WasmRouter};

use super::{Component, Fault};

/// Picks one of the model's engines for a request, or refuses it.
pub trait Route: Component {
    fn route(&self, req: &RouteRequest, backends: &[BackendInfo]) -> Result<RouteDecision, Fault>;
}

impl Component for WasmRouter {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        Some(WasmRouter::plugin(self))
    }
}

impl Route for WasmRouter {
    fn route(&self, req: &RouteRequest, backends: &[BackendInfo]) -> Result<RouteDecision, Fault> {
        Ok(WasmRouter::route(self, req, backends)?)
    }
}

/// The engine with the fewest sequences in flight (queued plus running); ties go to the first.
pub struct LeastLoaded;

impl Component for LeastLoaded {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        None
    }
}

impl Route for LeastLoaded {
    fn route(&self, _req: &RouteRequest, backends: &[BackendInfo]) -> Result<RouteDecision, Fault> {
        let best = (0..backends.len()).min_by_key(|&i| backends[i].queue_depth + backends[i].running).unwrap_or(0);
        Ok(RouteDecision::Backend(best))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, queue_depth: u32, running: u32) -> BackendInfo {
        BackendInfo {
            id: id.into(),
            model: "m".into(),
            queue_depth,
            running,
            free_kv_fraction: 1.0,
            cached_prefix_tokens: 0,
            healthy: true,
        }
    }

    #[test]
    fn least_loaded_picks_fewest_in_flight_first_on_ties() {
        let req = RouteRequest { tenant: String::new(), model: "m".into(), prompt_tokens: 3, prefix_hashes: vec![] };
        let d = LeastLoaded.route(&req, &[info("a", 2, 1), info("b", 0, 2), info("c", 1, 1)]).unwrap();
        assert!(matches!(d, RouteDecision::Backend(1)));
        let d = LeastLoaded.route(&req, &[info("a", 0, 1), info("b", 1, 0)]).unwrap();
        assert!(matches!(d, RouteDecision::Backend(0)));
    }
}
