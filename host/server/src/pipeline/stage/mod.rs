//! One trait per pipeline stage, implemented by the stage's Wasm adapter and
//! by its native twin (the code the `fallback` policy uses). The request path
//! never calls a stage directly: it goes through a
//! [`Guard`](super::guard::Guard), which applies the failure policy, consults
//! the plugin's circuit breaker and counts what it did.
//!
//! A stage call ends in one of three ways: a value, a [`Fault::Plugin`] (the
//! plugin broke: the policy decides what happens), or a [`Fault::Request`]
//! (the request itself is wrong, say a template that cannot render these
//! messages: the policy does not apply, the client gets the error).

mod route;
mod sample;
mod tokenize;
mod transform;

use std::sync::Arc;

use weft_runtime::{LoadedPlugin, PluginError};

use super::PipelineError;
pub use route::{LeastLoaded, Route};
pub use sample::{Sample, SessionArgs};
pub use tokenize::Tokenize;
pub use transform::{NativeTemplate, Transform};

/// How a stage call failed.
#[derive(Debug)]
pub enum Fault {
    /// The implementation failed: trap, timeout, memory, invalid output, open breaker.
    Plugin(PluginError),
    /// The request cannot be served, whoever does the stage's work.
    Request(PipelineError),
}

impl From<PluginError> for Fault {
    fn from(e: PluginError) -> Self {
        Fault::Plugin(e)
    }
}

/// What the guard needs of every stage implementation.
pub trait Component: Send + Sync {
    /// The plugin behind it (`None` for a native twin), for errors and for
    /// reusing an adapter across reloads.
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>>;

    /// `Err` (kind `unavailable`) while the plugin's breaker is open: the
    /// guard then does not call it at all.
    fn available(&self) -> Result<(), PluginError> {
        match self.plugin() {
            Some(p) => p.check_breaker(),
            None => Ok(()),
        }
    }
}
