//! The tokenizer stage: the Wasm tokenizer, and the same tokenizer compiled
//! natively as its twin.

use std::sync::Arc;

use weft_runtime::{ErrorKind, LoadedPlugin, NativeTokenizer, PluginError, WasmTokenizer};

use super::{Component, Fault};

/// Turns prompt text into token ids.
pub trait Tokenize: Component {
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, Fault>;
}

impl Component for WasmTokenizer {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        Some(WasmTokenizer::plugin(self))
    }
}

impl Tokenize for WasmTokenizer {
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, Fault> {
        Ok(WasmTokenizer::encode(self, text, add_special)?)
    }
}

impl Component for NativeTokenizer {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        None
    }
}

impl Tokenize for NativeTokenizer {
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, Fault> {
        NativeTokenizer::encode(self, text, add_special)
            .map_err(|m| Fault::Plugin(PluginError::new("native tokenizer", ErrorKind::Plugin, m)))
    }
}
