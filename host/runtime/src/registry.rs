//! The set of loaded plugins, by tenant and name.
//!
//! A slot holds an `Arc<LoadedPlugin>`; replacing it never touches the old
//! value, so every adapter (sampler session, response stream, tokenizer)
//! created from the old version keeps using it until it is dropped, and the
//! old version's instances are freed with the last such adapter. Tenants get
//! separate slots, hence separate loaded plugins, configs and instances.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::runtime::LoadedPlugin;

/// Key of a slot: the tenant (`None` for the shared, tenant-less pipeline) and the plugin name.
pub type SlotKey = (Option<String>, String);

/// Loaded plugins, current version per slot plus the previous one for rollback.
#[derive(Default)]
pub struct PluginRegistry {
    slots: RwLock<HashMap<SlotKey, Slot>>,
}

#[derive(Clone)]
struct Slot {
    current: Arc<LoadedPlugin>,
    previous: Option<Arc<LoadedPlugin>>,
}

impl PluginRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current version in a slot.
    pub fn get(&self, tenant: Option<&str>, name: &str) -> Option<Arc<LoadedPlugin>> {
        let key = (tenant.map(str::to_string), name.to_string());
        self.slots.read().ok()?.get(&key).map(|s| s.current.clone())
    }

    /// Makes `plugin` current; returns the version it replaced (kept for rollback).
    pub fn install(&self, tenant: Option<&str>, plugin: Arc<LoadedPlugin>) -> Option<Arc<LoadedPlugin>> {
        let key = (tenant.map(str::to_string), plugin.name.to_string());
        let mut slots = self.slots.write().expect("registry lock");
        let previous = slots.get(&key).map(|s| s.current.clone());
        slots.insert(key, Slot { current: plugin, previous: previous.clone() });
        previous
    }

    /// Puts the previous version back; returns it, or `None` if there is none.
    pub fn rollback(&self, tenant: Option<&str>, name: &str) -> Option<Arc<LoadedPlugin>> {
        let key = (tenant.map(str::to_string), name.to_string());
        let mut slots = self.slots.write().expect("registry lock");
        let slot = slots.get_mut(&key)?;
        let prev = slot.previous.take()?;
        slot.previous = Some(std::mem::replace(&mut slot.current, prev.clone()));
        Some(prev)
    }

    /// Every current plugin with its tenant.
    pub fn list(&self) -> Vec<(Option<String>, Arc<LoadedPlugin>)> {
        self.slots
            .read()
            .map(|s| s.iter().map(|((t, _), v)| (t.clone(), v.current.clone())).collect())
            .unwrap_or_default()
    }
}
