//! Adapters: host-side types that call a loaded plugin, validate what it
//! returns, and present it the way the rest of weft wants it. The sampler
//! adapter implements the engine's [`weft_engine::sampling::SequenceSampler`],
//! so the engine calls a Wasm sampler exactly as it calls the native one.
//!
//! Every adapter holds an `Arc<LoadedPlugin>`: a sequence or response that
//! started on one version keeps it to the end, whatever is loaded later.
//! Instances are never shared between adapters built from different
//! `LoadedPlugin`s, so each tenant's plugins have their own memory.

pub(crate) mod idle;
pub mod router;
pub mod sampler;
pub mod tokenizer;
pub mod transform;

use std::sync::Arc;

use wasmtime::Store;

use crate::error::{ErrorKind, PluginError, Result};
use crate::runtime::{LoadedPlugin, WorldBindings};
use crate::state::HostState;

/// Idle instances kept per plugin (see [`idle`] for the memory and time bounds).
const POOL_MAX: usize = 16;

/// Initialised instances of one plugin, reused across calls. An instance that
/// failed is dropped, so the next call gets a fresh one.
pub(crate) struct Pool<B: Send + 'static> {
    pub(crate) plugin: Arc<LoadedPlugin>,
    idle: Arc<idle::IdleList<(Store<HostState>, B)>>,
}

impl<B: WorldBindings + Send + 'static> Pool<B> {
    pub(crate) fn new(plugin: Arc<LoadedPlugin>) -> Self {
        let idle = idle::IdleList::new(&plugin.idle, POOL_MAX);
        Self { plugin, idle }
    }

    pub(crate) fn take(&self) -> Result<(Store<HostState>, B)> {
        match self.idle.take() {
            Some(i) => Ok(i),
            None => self.plugin.instance::<B>(),
        }
    }

    pub(crate) fn give(&self, inst: (Store<HostState>, B)) {
        self.idle.give(inst);
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
