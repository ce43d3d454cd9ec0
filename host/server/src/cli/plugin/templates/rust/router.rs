//! {{name}}: a weft router. Sends each request to the healthy engine with the
//! least work (queued + running), preferring one that caches the prompt's prefix.

use weft_sdk::router::{Backend, Rejection, RouteRequest, RouteResult, Router};
use weft_sdk::{Config, Metadata, Plugin};

pub struct LeastWork {
    /// Tokens of cached prefix worth one request of queue.
    prefix_weight: f32,
}

impl Plugin for LeastWork {
    fn metadata() -> Metadata {
        Metadata { name: "{{name}}".into(), version: "0.1.0".into(), description: "least work, prefix-aware".into() }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let w = weft_sdk::config_value(config, "prefix_weight").unwrap_or("256");
        let prefix_weight = w.parse().map_err(|_| format!("prefix_weight `{w}` is not a number"))?;
        Ok(LeastWork { prefix_weight })
    }
}

impl Router for LeastWork {
    fn route(&mut self, _request: &RouteRequest, candidates: &[Backend]) -> RouteResult {
        let cost = |b: &Backend| (b.queue_depth + b.running) as f32 - b.cached_prefix_tokens as f32 / self.prefix_weight;
        match candidates.iter().filter(|b| b.healthy).min_by(|a, b| cost(a).total_cmp(&cost(b))) {
            Some(b) => RouteResult::Backend(b.id.clone()),
            None => RouteResult::Reject(Rejection { status: 503, reason: "no healthy engine".into() }),
        }
    }
}

weft_sdk::export_router!(LeastWork);

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str, load: u32, cached: u32, healthy: bool) -> Backend {
        Backend {
            id: id.into(),
            model: "m".into(),
            queue_depth: load,
            running: 0,
            free_kv_fraction: 1.0,
            cached_prefix_tokens: cached,
            healthy,
        }
    }

    #[test]
    fn least_work_then_prefix_then_503() {
        let mut r = LeastWork::init(&vec![]).unwrap();
        let req = RouteRequest { tenant: String::new(), model: "m".into(), prompt_tokens: 100, prefix_hashes: vec![] };
        let pick = |r: &mut LeastWork, c: &[Backend]| match r.route(&req, c) {
            RouteResult::Backend(id) => id,
            RouteResult::Reject(j) => format!("reject {}", j.status),
        };
        assert_eq!(pick(&mut r, &[backend("a", 3, 0, true), backend("b", 1, 0, true), backend("c", 0, 0, false)]), "b");
        assert_eq!(pick(&mut r, &[backend("a", 0, 0, true), backend("b", 1, 512, true)]), "b");
        assert_eq!(pick(&mut r, &[backend("a", 0, 0, false)]), "reject 503");
    }
}
