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

/// One tenant as the request path sees it (its quotas and meter are in its
/// pipeline's [`crate::pipeline::TenantCtx`]).
pub struct Tenant {
    pub id: String,
    pub service: Arc<ModelService>,
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
    /// No tenants configured: no keys, one pipeline for everyone.
    Open(Arc<ModelService>),
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

    /// Any pipeline version (for facts that are the same for all: engines, model name).
    pub fn any(&self) -> Option<&Arc<ModelService>> {
        match self {
            Services::Open(s) => Some(s),
            Services::Tenants { by_id, .. } => {
                let mut ids: Vec<&String> = by_id.keys().collect();
                ids.sort();
                ids.first().map(|id| &by_id[*id].service)
            }
        }
    }

    /// Every pipeline version with its tenant id (`None` in open mode).
    pub fn all(&self) -> Vec<(Option<&str>, &Arc<ModelService>)> {
        match self {
            Services::Open(s) => vec![(None, s)],
            Services::Tenants { by_id, .. } => {
                let mut v: Vec<_> = by_id.values().map(|t| (Some(t.id.as_str()), &t.service)).collect();
                v.sort_by_key(|(id, _)| *id);
                v
            }
        }
    }
}
