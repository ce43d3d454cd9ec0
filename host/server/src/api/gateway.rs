//! Hints a trusted gateway puts in request headers: the Gateway API Inference
//! Extension's (and llm-d's) fairness id and inference objective.
//!
//! The headers are read only with `server.trusted_gateway = true`: anyone
//! who can reach the server directly could otherwise pick their own fairness
//! bucket or raise their own priority. With tenants, the tenant of the API key
//! stays the fair scheduler's key (its weight and KV share are configured; a
//! header must not let a caller step outside them), and only the priority is taken.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

pub const FAIRNESS_HEADERS: [&str; 2] = ["x-gateway-inference-fairness-id", "x-llm-d-inference-fairness-id"];
pub const OBJECTIVE_HEADER: &str = "x-gateway-inference-objective";

/// Longest fairness id taken; longer ones are ignored (they key scheduler state).
const MAX_ID: usize = 128;

/// What the server trusts of a gateway's headers.
#[derive(Debug, Clone, Default)]
pub struct Gateway {
    /// Priority per objective name; a numeric header value is the priority itself.
    pub priorities: BTreeMap<String, i32>,
}

/// What the headers ask for.
#[derive(Debug, Default, PartialEq)]
pub struct Hints {
    pub fairness: Option<String>,
    pub priority: i32,
}

impl Gateway {
    pub fn hints(&self, headers: &HeaderMap) -> Hints {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
        let fairness = FAIRNESS_HEADERS
            .iter()
            .find_map(|h| get(h).filter(|v| v.len() <= MAX_ID && v.chars().all(|c| c.is_ascii_graphic())))
            .map(str::to_string);
        let priority = get(OBJECTIVE_HEADER)
            .and_then(|o| o.parse::<i32>().ok().or_else(|| self.priorities.get(o).copied()))
            .unwrap_or(0);
        Hints { fairness, priority }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_become_fairness_key_and_priority() {
        let g = Gateway { priorities: [("critical".to_string(), 10)].into() };
        let mut h = HeaderMap::new();
        assert_eq!(g.hints(&h), Hints::default());
        h.insert("x-llm-d-inference-fairness-id", "team-a".parse().unwrap());
        h.insert(OBJECTIVE_HEADER, "critical".parse().unwrap());
        assert_eq!(g.hints(&h), Hints { fairness: Some("team-a".into()), priority: 10 });
        h.insert("x-gateway-inference-fairness-id", "team-b".parse().unwrap());
        h.insert(OBJECTIVE_HEADER, "-3".parse().unwrap());
        assert_eq!(g.hints(&h), Hints { fairness: Some("team-b".into()), priority: -3 });
        h.insert("x-gateway-inference-fairness-id", "x".repeat(200).parse().unwrap());
        h.insert(OBJECTIVE_HEADER, "unknown".parse().unwrap());
        assert_eq!(g.hints(&h).priority, 0);
        assert_eq!(g.hints(&h).fairness.as_deref(), Some("team-a"), "an overlong id falls to the next header");
    }
}
