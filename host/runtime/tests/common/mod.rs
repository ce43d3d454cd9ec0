#![allow(dead_code)]
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use weft_runtime::{Limits, LoadedPlugin, PluginRuntime, RuntimeConfig};

/// One runtime per test binary (each owns a pool and an epoch thread).
pub fn runtime() -> &'static PluginRuntime {
    static RT: OnceLock<PluginRuntime> = OnceLock::new();
    RT.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("weft-runtime-test-cache-{}", std::process::id()));
        PluginRuntime::new(RuntimeConfig { cache_dir: Some(dir), ..Default::default() }).expect("runtime starts")
    })
}

pub fn plugin_path(file: &str) -> PathBuf {
    weft_runtime::builtin::build_dir().join(file)
}

pub fn load(name: &str, file: &str, limits: Limits, config: Vec<(String, String)>) -> Arc<LoadedPlugin> {
    runtime().load_file(name, &plugin_path(file), limits, config).unwrap_or_else(|e| panic!("{e}"))
}

pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}
