//! The sampler role: one session per sequence chooses each next token, either
//! directly or as a [`Plan`] the host executes natively over the full logits
//! row (temperature, top-k/p, min-p, penalties, bias, allowed/banned tokens).
//!
//! Each step a session receives the host's best candidates (how many is set by
//! [`Sampler::capabilities`]); functions in [`logits`] reach the rest of the row
//! without copying it into the plugin.

use std::cell::RefCell;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "sampler-plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_sampler_world",
        default_bindings_module: "weft_sdk::sampler::bindings",
        with: {
            "weft:plugin/host@0.3.0": crate::common::weft::plugin::host,
            "weft:plugin/types@0.3.0": crate::common::weft::plugin::types,
        },
    });
}

use bindings::exports::weft::plugin::sampler as wit;

/// The request's sampling parameters, as the host received them.
///
/// ```
/// let p = weft_sdk::sampler::SamplingParams::default();
/// assert_eq!(p.top_p, 1.0);
/// ```
pub use wit::SamplingParams;

/// A token and its raw logit.
///
/// ```
/// let c = weft_sdk::sampler::Candidate { id: 7, logit: 1.5 };
/// assert_eq!(c.id, 7);
/// ```
pub use crate::common::weft::plugin::types::Candidate;

/// Sampling the host performs natively.
///
/// ```
/// let p = weft_sdk::sampler::Plan::greedy();
/// assert_eq!(p.temperature, 0.0);
/// ```
pub use wit::Plan;

/// A step's answer: a token, or a [`Plan`].
///
/// ```
/// let d = weft_sdk::sampler::Decision::Token(42);
/// assert!(matches!(d, weft_sdk::sampler::Decision::Token(42)));
/// ```
pub use wit::Decision;

/// Whether the sequence goes on after a token.
///
/// ```
/// let a = weft_sdk::sampler::AcceptOutcome::Stop;
/// assert!(matches!(a, weft_sdk::sampler::AcceptOutcome::Stop));
/// ```
pub use wit::AcceptOutcome;

/// What the host sends each step.
///
/// ```
/// let c = weft_sdk::sampler::Capabilities { top_k: 40, needs_full_logits: false };
/// assert_eq!(c.top_k, 40);
/// ```
pub use wit::SamplerCapabilities as Capabilities;

/// Native vector work on the current step's logits row (valid during a step).
///
/// ```no_run
/// let best = weft_sdk::sampler::logits::top_k(5);
/// let p = weft_sdk::sampler::logits::probabilities(&[best[0].id], 1.0);
/// ```
pub mod logits {
    pub use super::bindings::weft::plugin::logits::{gather, probabilities, top_k, vocab_size};
}

/// The model's vocabulary as output bytes (for grammars and word filters).
/// It does not change during an instance's life: read it once, on the first
/// session, and keep what you derive from it in a `static`/`thread_local`.
///
/// ```no_run
/// use weft_sdk::sampler::vocabulary;
/// let n = vocabulary::size();
/// let all: Vec<Vec<u8>> = vocabulary::token_bytes(0, n);
/// let eos = vocabulary::eos_tokens();
/// ```
pub mod vocabulary {
    pub use super::bindings::weft::plugin::vocabulary::{eos_tokens, size, token_bytes};
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: None,
            max_tokens: 16,
        }
    }
}

impl Plan {
    /// The plan that applies `params` exactly as the native sampler would.
    ///
    /// ```
    /// use weft_sdk::sampler::{Plan, SamplingParams};
    /// let plan = Plan::from_params(&SamplingParams { temperature: 0.5, ..Default::default() });
    /// assert_eq!(plan.temperature, 0.5);
    /// assert!(plan.allowed.is_none());
    /// ```
    pub fn from_params(p: &SamplingParams) -> Self {
        Self {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            min_p: p.min_p,
            repetition_penalty: p.repetition_penalty,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            logit_bias: p.logit_bias.clone(),
            allowed: None,
            banned: Vec::new(),
        }
    }

    /// Greedy decoding with no constraint.
    ///
    /// ```
    /// assert_eq!(weft_sdk::sampler::Plan::greedy().top_k, 0);
    /// ```
    pub fn greedy() -> Self {
        Self::from_params(&SamplingParams { temperature: 0.0, ..Default::default() })
    }
}

/// One sequence's sampling state, made by [`Sampler::session`].
pub trait Session: 'static {
    /// Chooses the next token from the host's best candidates (best first).
    fn step(&mut self, candidates: &[Candidate]) -> Result<Decision, String>;

    /// Chooses from the whole logits row; called instead of [`Session::step`]
    /// when [`Capabilities::needs_full_logits`] is set.
    fn step_full(&mut self, _logits: &[f32]) -> Result<Decision, String> {
        Err("this sampler does not take full logits".into())
    }

    /// The token the host appended; return [`AcceptOutcome::Stop`] to end the sequence.
    fn accept(&mut self, _token: u32) -> Result<AcceptOutcome, String> {
        Ok(AcceptOutcome::Continue)
    }
}

/// A sampler policy: the plugin value (shared state, such as compiled
/// constraints) opens a [`Session`] per sequence.
///
/// ```
/// use weft_sdk::sampler::{Candidate, Decision, Sampler, SamplingParams, Session};
/// use weft_sdk::{Config, Metadata, Plugin};
/// struct First;
/// impl Plugin for First {
///     fn metadata() -> Metadata { Metadata { name: "first".into(), version: "0.1.0".into(), description: "takes the best candidate".into() } }
///     fn init(_: &Config) -> Result<Self, String> { Ok(First) }
/// }
/// struct Take;
/// impl Session for Take {
///     fn step(&mut self, c: &[Candidate]) -> Result<Decision, String> {
///         c.first().map(|c| Decision::Token(c.id)).ok_or("no candidates".into())
///     }
/// }
/// impl Sampler for First {
///     type Session = Take;
///     fn session(&mut self, _: SamplingParams, _: &str, _: &[u32]) -> Result<Take, String> { Ok(Take) }
/// }
/// let mut s = First.session(SamplingParams::default(), "", &[]).unwrap();
/// assert!(matches!(s.step(&[Candidate { id: 3, logit: 0.0 }]), Ok(Decision::Token(3))));
/// ```
pub trait Sampler: crate::Plugin {
    /// One sequence's state.
    type Session: Session;

    /// What the host sends each step. Default: the top 40 candidates.
    fn capabilities(&self) -> Capabilities {
        Capabilities { top_k: 40, needs_full_logits: false }
    }

    /// Starts a session for one sequence. `args` is the request's plugin
    /// arguments (JSON text, empty if none); `prompt` its token ids.
    fn session(&mut self, params: SamplingParams, args: &str, prompt: &[u32]) -> Result<Self::Session, String>;
}

/// Adapts a [`Session`] to the generated session resource.
#[doc(hidden)]
pub struct SessionResource<T: Sampler>(RefCell<T::Session>);

impl<T: Sampler> wit::GuestSession for SessionResource<T> {
    fn create(params: SamplingParams, args: String, prompt: Vec<u32>) -> Result<wit::Session, String> {
        crate::instance::with(|p: &mut T| p.session(params, &args, &prompt))
            .map(|s| wit::Session::new(SessionResource::<T>(RefCell::new(s))))
    }

    fn step(&self, candidates: Vec<Candidate>) -> Result<Decision, String> {
        self.0.borrow_mut().step(&candidates)
    }

    fn step_full(&self, logits: Vec<f32>) -> Result<Decision, String> {
        self.0.borrow_mut().step_full(&logits)
    }

    fn accept(&self, token: u32) -> Result<AcceptOutcome, String> {
        self.0.borrow_mut().accept(token)
    }
}

/// Exports a [`Sampler`] as this component's `weft:plugin/sampler` implementation.
///
/// ```ignore
/// weft_sdk::export_sampler!(MySampler);
/// ```
#[macro_export]
macro_rules! export_sampler {
    ($t:ty) => {
        #[doc(hidden)]
        struct __WeftSamplerExport;

        impl $crate::sampler::bindings::Guest for __WeftSamplerExport {
            fn metadata() -> $crate::Metadata {
                <$t as $crate::Plugin>::metadata()
            }
            fn init(config: $crate::Config) -> ::core::result::Result<(), ::std::string::String> {
                $crate::instance::init::<$t>(&config)
            }
        }

        impl $crate::sampler::bindings::exports::weft::plugin::sampler::Guest for __WeftSamplerExport {
            type Session = $crate::sampler::SessionResource<$t>;
            fn capabilities() -> $crate::sampler::Capabilities {
                $crate::instance::with(|p: &mut $t| <$t as $crate::sampler::Sampler>::capabilities(p))
            }
        }

        $crate::sampler::bindings::__export_sampler_world!(__WeftSamplerExport with_types_in $crate::sampler::bindings);
    };
}
