//! Who is calling: the tenant a bearer key belongs to, and what it may reach.
//! A missing or unknown key is a 401; a model the tenant may not use is a 404
//! worded exactly like a model that does not exist, so keys reveal nothing
//! about other tenants' models.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};

use super::AppState;
use super::error::ApiError;
use crate::pipeline::ModelService;
use crate::tenancy::{Services, Tenant};

/// The caller: nobody in particular on an open server, else a tenant.
#[derive(Clone)]
pub enum Caller {
    Open,
    Tenant(Arc<Tenant>),
}

impl Caller {
    /// The `tenant` label of metrics and logs (empty when open).
    pub fn label(&self) -> &str {
        match self {
            Caller::Open => "",
            Caller::Tenant(t) => &t.id,
        }
    }
}

fn unauthorized(msg: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_request_error", msg).code("invalid_api_key")
}

/// Identifies the caller from `Authorization: Bearer KEY`; `None` while loading.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Option<(Arc<Services>, Caller)>, ApiError> {
    let Some(services) = state.registry.services.load_full() else { return Ok(None) };
    if let Services::Open(_) = &*services {
        return Ok(Some((services, Caller::Open)));
    }
    let key = crate::tenancy::keys::bearer(headers)
        .ok_or_else(|| unauthorized("no API key: send `Authorization: Bearer <key>`"))?;
    let tenant = services.tenant_for_key(key).cloned().ok_or_else(|| unauthorized("the API key is not valid"))?;
    Ok(Some((services, Caller::Tenant(tenant))))
}

/// The pipeline that serves `model` for this caller.
pub fn service_for(services: &Services, caller: &Caller, model: &str) -> Result<Arc<ModelService>, ApiError> {
    let found = match (services, caller) {
        (Services::Open(m), _) => m.get(model),
        (_, Caller::Tenant(t)) if t.may_use(model) => t.services.get(model),
        _ => None,
    };
    found.cloned().ok_or_else(|| ApiError::not_found_model(model))
}

/// Models the caller may see.
pub fn visible_models<'a>(services: &'a Services, caller: &'a Caller) -> Vec<&'a Arc<ModelService>> {
    match (services, caller) {
        (Services::Open(m), _) => m.values().collect(),
        (_, Caller::Tenant(t)) => t.services.values().filter(|s| t.may_use(&s.name)).collect(),
        _ => Vec::new(),
    }
}
