//! One file per subcommand.

pub mod plugin;
pub mod template;
pub mod tokenize;

use std::sync::Arc;

use weft_runtime::{Limits, LoadedPlugin, PluginRuntime, RuntimeConfig};

/// A plugin runtime with the default configuration.
pub fn runtime() -> anyhow::Result<PluginRuntime> {
    Ok(PluginRuntime::new(RuntimeConfig::default())?)
}

/// Loads a built-in plugin by name.
pub fn builtin(rt: &PluginRuntime, name: &str, config: Vec<(String, String)>) -> anyhow::Result<Arc<LoadedPlugin>> {
    let bytes = weft_runtime::builtin::get(name).ok_or_else(|| anyhow::anyhow!("no built-in plugin `{name}`"))?;
    Ok(rt.load(name, bytes, Limits::default(), config)?)
}
