//! # weft-sdk: write weft plugins
//!
//! A weft plugin is a WebAssembly component (target `wasm32-wasip2`) that
//! implements one role of the serving pipeline. This crate is all a plugin
//! depends on: it carries the bindings generated from weft's WIT contract
//! (`weft:plugin@0.2.0`), one idiomatic trait per role, and a macro that
//! exports your type as the component's implementation.
//!
//! | role | cargo feature | trait | export macro |
//! | --- | --- | --- | --- |
//! | tokenizer | `tokenizer` | [`tokenizer::Tokenizer`] | [`export_tokenizer!`] |
//! | sampler | `sampler` | [`sampler::Sampler`] | [`export_sampler!`] |
//! | router | `router` | [`router::Router`] | [`export_router!`] |
//! | request/response transform | `transform` | [`transform::Transform`] | [`export_transform!`] |
//!
//! Every plugin also implements [`Plugin`] (its metadata and `init`), and may
//! call the host through [`host`]: structured logs, its own configuration,
//! counters and histograms. Nothing else is reachable from inside the sandbox.
//!
//! ## A complete sampler plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "sampler-greedy-ish"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! weft-sdk = { path = "../../sdk", features = ["sampler"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```ignore
//! use weft_sdk::sampler::{AcceptOutcome, Candidate, Decision, Plan, Sampler, SamplingParams};
//! use weft_sdk::{Metadata, Plugin};
//!
//! /// Samples like the request asks, but never above temperature 0.7.
//! struct Cooler {
//!     params: SamplingParams,
//! }
//!
//! impl Plugin for Cooler {
//!     fn metadata() -> Metadata {
//!         Metadata { name: "cooler".into(), version: "0.1.0".into(), description: "caps temperature".into() }
//!     }
//! }
//!
//! impl Sampler for Cooler {
//!     fn create(params: SamplingParams, _args: &str, _prompt: &[u32]) -> Result<Self, String> {
//!         Ok(Self { params })
//!     }
//!
//!     fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
//!         let mut plan = Plan::from_params(&self.params);
//!         plan.temperature = plan.temperature.min(0.7);
//!         Ok(Decision::Plan(plan))
//!     }
//!
//!     fn accept(&mut self, _token: u32) -> Result<AcceptOutcome, String> {
//!         Ok(AcceptOutcome::Continue)
//!     }
//! }
//!
//! weft_sdk::export_sampler!(Cooler);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` and point a
//! `[[plugins]]` entry of `weft.toml` at `target/wasm32-wasip2/release/*.wasm`.

#![allow(clippy::too_many_arguments)]

#[doc(hidden)]
pub mod common {
    //! Bindings of the `common` world: the host imports and shared types.
    wit_bindgen::generate!({
        world: "common",
        path: "../wit",
        generate_all,
    });
}

pub mod host;

#[cfg(feature = "router")]
pub mod router;
#[cfg(feature = "sampler")]
pub mod sampler;
#[cfg(feature = "tokenizer")]
pub mod tokenizer;
#[cfg(feature = "transform")]
pub mod transform;

/// Who a plugin is: shown by `weft plugin check` and the admin API.
///
/// ```
/// let m = weft_sdk::Metadata { name: "x".into(), version: "1.0.0".into(), description: "d".into() };
/// assert_eq!(m.name, "x");
/// ```
pub use common::weft::plugin::types::PluginMetadata as Metadata;

/// Level of a [`host::log`] line.
///
/// ```
/// let _ = weft_sdk::LogLevel::Info;
/// ```
pub use common::weft::plugin::types::LogLevel;

/// Configuration handed to [`Plugin::init`]: key/value pairs from `weft.toml`.
///
/// ```
/// let c: weft_sdk::Config = vec![("rules".into(), "[]".into())];
/// assert_eq!(weft_sdk::config_value(&c, "rules"), Some("[]"));
/// ```
pub type Config = Vec<(String, String)>;

/// Looks a key up in a [`Config`].
///
/// ```
/// let c: weft_sdk::Config = vec![("a".into(), "1".into())];
/// assert_eq!(weft_sdk::config_value(&c, "b"), None);
/// ```
pub fn config_value<'a>(config: &'a Config, key: &str) -> Option<&'a str> {
    config.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// What every plugin provides besides its role: identity and initialisation.
///
/// ```
/// use weft_sdk::{Config, Metadata, Plugin};
/// struct P;
/// impl Plugin for P {
///     fn metadata() -> Metadata {
///         Metadata { name: "p".into(), version: "0.1.0".into(), description: "example".into() }
///     }
///     fn init(config: &Config) -> Result<(), String> {
///         weft_sdk::config_value(config, "required").map(|_| ()).ok_or("`required` is not set".into())
///     }
/// }
/// assert!(P::init(&vec![]).is_err());
/// ```
pub trait Plugin {
    /// Name, version and description of the plugin.
    fn metadata() -> Metadata;

    /// Called once per instance, before any other call, with the plugin's
    /// configuration. An error refuses the plugin (the previous version keeps serving).
    fn init(_config: &Config) -> Result<(), String> {
        Ok(())
    }
}
