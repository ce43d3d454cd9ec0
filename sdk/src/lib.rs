//! # weft-sdk: write weft plugins
//!
//! A weft plugin is a WebAssembly component (target `wasm32-wasip2`) that
//! implements one role of the serving pipeline. This crate is all a plugin
//! depends on: it carries the bindings generated from weft's WIT contract
//! (`weft:plugin@0.3.0`), one idiomatic trait per role, and a macro that
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
//! State lives in your type: [`Plugin::init`] builds it once per component
//! instance from the configuration, and every role method takes `&mut self`.
//! Per-request state (a sampler's session, a response filter, a loaded
//! vocabulary) is a value your plugin returns, which the SDK keeps for you.
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
//! use weft_sdk::sampler::{Candidate, Decision, Plan, Sampler, SamplingParams, Session};
//! use weft_sdk::{Config, Metadata, Plugin};
//!
//! /// Samples like the request asks, but never above the configured temperature.
//! struct Cooler {
//!     max: f32,
//! }
//!
//! impl Plugin for Cooler {
//!     fn metadata() -> Metadata {
//!         Metadata { name: "cooler".into(), version: "0.1.0".into(), description: "caps temperature".into() }
//!     }
//!
//!     fn init(config: &Config) -> Result<Self, String> {
//!         let max = weft_sdk::config_value(config, "max").unwrap_or("0.7");
//!         Ok(Cooler { max: max.parse().map_err(|_| format!("max `{max}` is not a number"))? })
//!     }
//! }
//!
//! /// One sequence's state.
//! struct Cool {
//!     plan: Plan,
//! }
//!
//! impl Session for Cool {
//!     fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
//!         Ok(Decision::Plan(self.plan.clone()))
//!     }
//! }
//!
//! impl Sampler for Cooler {
//!     type Session = Cool;
//!
//!     fn session(&mut self, params: SamplingParams, _args: &str, _prompt: &[u32]) -> Result<Cool, String> {
//!         let mut plan = Plan::from_params(&params);
//!         plan.temperature = plan.temperature.min(self.max);
//!         Ok(Cool { plan })
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

/// What every plugin provides besides its role: identity, and the state it
/// builds from its configuration.
///
/// ```
/// use weft_sdk::{Config, Metadata, Plugin};
/// struct P {
///     required: String,
/// }
/// impl Plugin for P {
///     fn metadata() -> Metadata {
///         Metadata { name: "p".into(), version: "0.1.0".into(), description: "example".into() }
///     }
///     fn init(config: &Config) -> Result<Self, String> {
///         let v = weft_sdk::config_value(config, "required").ok_or("`required` is not set")?;
///         Ok(P { required: v.to_string() })
///     }
/// }
/// assert!(P::init(&vec![]).is_err());
/// assert_eq!(P::init(&vec![("required".into(), "x".into())]).unwrap().required, "x");
/// ```
pub trait Plugin: Sized + 'static {
    /// Name, version and description of the plugin.
    fn metadata() -> Metadata;

    /// Builds the plugin once per instance, before any other call, from its
    /// configuration. An error refuses the plugin (the previous version keeps serving).
    fn init(config: &Config) -> Result<Self, String>;
}

#[doc(hidden)]
pub mod instance {
    //! The one plugin value of this component instance. A component instance
    //! runs one call at a time on one thread, so the value sits in a
    //! thread-local slot and each call borrows it mutably for its duration.

    use std::any::Any;
    use std::cell::RefCell;

    thread_local! {
        static SLOT: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    }

    /// Builds the plugin from its configuration (the world's `init` export).
    pub fn init<T: crate::Plugin>(config: &crate::Config) -> Result<(), String> {
        let p = T::init(config)?;
        SLOT.with_borrow_mut(|s| *s = Some(Box::new(p)));
        Ok(())
    }

    /// Runs `f` on the plugin. The host calls `init` before anything else.
    pub fn with<T: 'static, R>(f: impl FnOnce(&mut T) -> R) -> R {
        SLOT.with_borrow_mut(|s| {
            let p =
                s.as_mut().and_then(|b| b.downcast_mut::<T>()).expect("the host calls init before any other export");
            f(p)
        })
    }
}
