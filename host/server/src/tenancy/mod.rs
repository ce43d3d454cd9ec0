//! Tenants at serving time: who a request belongs to (API key → tenant),
//! which pipeline version serves it (each tenant has its own, with its own
//! plugin instances), and whether its quotas admit it.
//!
//! [`Services`] is published as one value by the reloader, so a key rotation,
//! a new tenant or a changed pipeline reaches new requests all at once.
//! Quota usage lives outside it, in [`Meters`], so reloads do not reset it.

pub mod instances;
pub mod keys;

use std::collections::HashMap;
use std::sync::Arc;

use crate::pipeline::ModelService;
use crate::quota::Meters;

/// What the reloader publishes and the request path reads: the serving
/// version of every pipeline with the key table, quota usage per tenant (kept
/// across reloads), and the tenant weights and KV caps the engines' fair
/// scheduler reads.
#[derive(Default)]
pub struct Registry {
    /// A request keeps the version it was admitted with.
    pub services: arc_swap::ArcSwapOption<Services>,
    pub meters: Meters,
    pub shares: weft_engine::TenantShares,
}

/// The pipelines of one owner (the open server, or one tenant), by model name.
pub type ByModel = std::collections::BTreeMap<String, Arc<ModelService>>;

/// One tenant as the request path sees it (its quotas and meter are in its
/// pipelines' [`crate::pipeline::TenantCtx`]).
pub struct Tenant {
    pub id: String,
    /// The tenant's own pipeline for every model it may use.
    pub services: ByModel,
    /// `None`: every model.
    pub models: Option<Vec<String>>,
}

impl Tenant {
    pub fn may_use(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|m| m.iter().any(|x| x == model))
    }
}

/// Everything that serves requests, as one published version.
pub enum Services {
    /// No tenants configured: no keys, one pipeline per model for everyone.
    Open(ByModel),
    Tenants {
        by_id: HashMap<String, Arc<Tenant>>,
        /// SHA-256 digests of API keys (hex) → tenant id.
        keys: HashMap<String, String>,
    },
}

impl Services {
    /// The tenant a bearer key belongs to.
    pub fn tenant_for_key(&self, key: &str) -> Option<&Arc<Tenant>> {
        let Services::Tenants { by_id, keys } = self else { return None };
        keys.get(&crate::config::hash_key(key)).and_then(|id| by_id.get(id))
    }

    /// Every pipeline version with its tenant id (`None` in open mode), by tenant then model.
    pub fn all(&self) -> Vec<(Option<&str>, &Arc<ModelService>)> {
        match self {
            Services::Open(m) => m.values().map(|s| (None, s)).collect(),
            Services::Tenants { by_id, .. } => {
                let mut v: Vec<_> =
                    by_id.values().flat_map(|t| t.services.values().map(|s| (Some(t.id.as_str()), s))).collect();
                v.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
                v
            }
        }
    }

    /// One pipeline per model (for facts the same for every tenant: engines, name), by model name.
    pub fn per_model(&self) -> Vec<&Arc<ModelService>> {
        let mut seen = std::collections::BTreeMap::new();
        for (_, s) in self.all() {
            seen.entry(s.name.as_str()).or_insert(s);
        }
        seen.into_values().collect()
    }
}
