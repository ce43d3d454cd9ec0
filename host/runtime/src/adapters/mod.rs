//! Adapters: host-side types that call a loaded plugin, validate what it
//! returns, and present it the way the rest of weft wants it. The sampler
//! adapter implements the engine's [`weft_engine::sampling::SequenceSampler`],
//! so the engine calls a Wasm sampler exactly as it calls the native one.
//!
//! Every adapter holds an `Arc<LoadedPlugin>`: a sequence or response that
//! started on one version keeps it to the end, whatever is loaded later.
//! Instances are never shared between adapters built from different
//! `LoadedPlugin`s, so each tenant's plugins have their own memory.

pub mod router;
pub mod sampler;
pub mod tokenizer;
pub mod transform;

use std::sync::{Arc, Mutex};

use wasmtime::Store;

use crate::error::{ErrorKind, PluginError, Result};
use crate::runtime::{LoadedPlugin, WorldBindings};
use crate::state::HostState;

/// Idle instances kept per plugin.
const POOL_MAX: usize = 16;

/// Initialised instances of one plugin, reused across calls. An instance that
/// failed is dropped, so the next call gets a fresh one.
pub(crate) struct Pool<B> {
    pub(crate) plugin: Arc<LoadedPlugin>,
    idle: Mutex<Vec<(Store<HostState>, B)>>,
}

impl<B: WorldBindings> Pool<B> {
    pub(crate) fn new(plugin: Arc<LoadedPlugin>) -> Self {
        Self { plugin, idle: Mutex::new(Vec::new()) }
    }

    pub(crate) fn take(&self) -> Result<(Store<HostState>, B)> {
        if let Some(i) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(i);
        }
        self.plugin.instance::<B>()
    }

    pub(crate) fn give(&self, inst: (Store<HostState>, B)) {
        if let Ok(mut v) = self.idle.lock()
            && v.len() < POOL_MAX
        {
            v.push(inst);
        }
    }
}

pub(crate) fn expect_world(plugin: &LoadedPlugin, world: crate::World) -> Result<()> {
    if plugin.world != world {
        return Err(PluginError::new(
            &*plugin.name,
            ErrorKind::Link,
            format!("is a {} plugin, not a {} plugin", plugin.world.as_str(), world.as_str()),
        ));
    }
    Ok(())
}
