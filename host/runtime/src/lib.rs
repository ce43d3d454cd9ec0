//! weft-runtime: the WebAssembly plugin runtime.
//!
//! - [`runtime`]: the wasmtime engine, precompiled-component cache, loading
//!   and every check a plugin passes before it serves; limits per call.
//! - [`deadline`]: a call's deadline, charged in CPU time with a wall-clock backstop.
//! - [`bindings`]: the one place the host's bindings of `wit/` are generated.
//! - [`state`], [`host_impl`], `wasi`: what a plugin instance may reach
//!   (nothing ambient: no files, sockets, environment or clocks; timers that
//!   never block).
//! - [`executor`], [`breaker`]: where the request path's plugin calls run, and
//!   what stops a plugin that keeps faulting.
//! - [`sections`]: what a component declares in custom sections (a transform
//!   that filters no responses).
//! - [`adapters`]: tokenizer, sampler, router and transform plugins as host
//!   types; the sampler adapter implements the engine's sampling seam.
//!
//! Knows nothing of HTTP; the server wires plugins into requests.

pub mod adapters;
pub mod bindings;
pub mod breaker;
pub mod builtin;
mod cache;
pub mod deadline;
pub mod error;
pub mod executor;
mod host_impl;
pub mod metrics;
pub mod native;
pub mod registry;
pub mod runtime;
pub mod sections;
pub mod state;
mod ticker;
mod wasi;
mod world;

pub use adapters::router::{BackendInfo, RouteDecision, RouteRequest, WasmRouter};
pub use adapters::sampler::{WasmSampler, WasmSamplerFactory};
pub use adapters::tokenizer::{SpecialToken, TokenDecoder, WasmTokenizer};
pub use adapters::transform::{
    ChatMessage, Output, Rejection, ToolCall, TransformRequest, WasmResponseStream, WasmTransform,
};
pub use breaker::{Breaker, BreakerPolicy};
pub use error::{ErrorKind, PluginError};
pub use executor::{ExecError, PluginExecutor};
pub use native::{NativeTokenizer, native_tokenizer};
pub use registry::PluginRegistry;
pub use runtime::{CONTRACT_VERSION, Limits, LoadedPlugin, PluginInfo, PluginRuntime, RuntimeConfig};
pub use state::{Vocabulary, live_instances};
pub use world::World;
