//! The one place where a stage's failure policy is applied.
//!
//! Every stage call on the request path goes through a [`Guard`]: it asks the
//! plugin's circuit breaker first (an open breaker counts as a failure without
//! calling the plugin), calls the stage, and on a plugin fault applies the
//! stage's policy:
//!
//! - `closed`: the request fails with [`PipelineError::Plugin`] naming the stage and plugin;
//! - `fallback`: the native twin does the stage's work (a stage without a twin is skipped);
//! - `open`: the stage is skipped.
//!
//! A stage that cannot be skipped (the tokenizer) fails under any policy when
//! no twin can stand in. A fault of the request itself ([`Fault::Request`])
//! passes through untouched: no policy turns a bad request into a good one.
//! Every fault handled is counted by stage, kind and action
//! (`weft_pipeline_stage_faults_total`).
//!
//! The breaker's state is kept by the plugin (`weft_runtime::breaker`), which
//! records every call wherever it comes from, including the engine's sampler
//! calls that do not pass through here.

use std::sync::Arc;

use super::error::{PipelineError, Stage};
use super::stage::{Component, Fault};
use crate::config::FailurePolicy;
use crate::metrics::StageFaults;

/// What a guarded call produced.
#[derive(Debug, PartialEq)]
pub enum Outcome<T> {
    Done(T),
    /// The stage was left out under its policy: the caller goes on without it.
    Skipped,
}

/// A stage implementation wrapped with its policy; see the module docs.
pub struct Guard<S: ?Sized> {
    stage: Stage,
    policy: FailurePolicy,
    primary: Arc<S>,
    twin: Option<Arc<S>>,
    faults: Arc<StageFaults>,
}

impl<S: ?Sized> Clone for Guard<S> {
    fn clone(&self) -> Self {
        Self {
            stage: self.stage,
            policy: self.policy,
            primary: self.primary.clone(),
            twin: self.twin.clone(),
            faults: self.faults.clone(),
        }
    }
}

impl<S: ?Sized + Component> Guard<S> {
    pub fn new(
        stage: Stage,
        policy: FailurePolicy,
        primary: Arc<S>,
        twin: Option<Arc<S>>,
        faults: Arc<StageFaults>,
    ) -> Self {
        Self { stage, policy, primary, twin, faults }
    }

    pub fn primary(&self) -> &Arc<S> {
        &self.primary
    }

    pub fn policy(&self) -> FailurePolicy {
        self.policy
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Refuses at once when this stage would fail the request anyway: its
    /// plugin's breaker is open and nothing may stand in for it. Lets a
    /// request be refused before any other stage spends time on it.
    pub fn precheck(&self) -> Result<(), PipelineError> {
        if self.policy != FailurePolicy::Closed && (self.twin.is_some() || self.skippable()) {
            return Ok(());
        }
        self.primary.available().map_err(|e| PipelineError::plugin(self.stage, e))
    }

    /// Calls the stage through its policy.
    pub fn call<T>(&self, f: impl Fn(&S) -> Result<T, Fault>) -> Result<Outcome<T>, PipelineError> {
        let fault = match self.primary.available() {
            Err(e) => e,
            Ok(()) => match f(&self.primary) {
                Ok(v) => return Ok(Outcome::Done(v)),
                Err(Fault::Request(e)) => return Err(e),
                Err(Fault::Plugin(e)) => e,
            },
        };
        let kind = fault.kind();
        match (self.policy, &self.twin) {
            (FailurePolicy::Fallback, Some(twin)) => {
                tracing::warn!(stage = %self.stage, error = %fault, "plugin failed; the native twin does the stage");
                self.faults.add(self.stage.as_str(), kind, "fallback");
                match f(twin) {
                    Ok(v) => Ok(Outcome::Done(v)),
                    Err(Fault::Request(e)) => Err(e),
                    Err(Fault::Plugin(e)) => Err(PipelineError::plugin(self.stage, e)),
                }
            }
            (FailurePolicy::Fallback | FailurePolicy::Open, _) if self.skippable() => {
                tracing::warn!(stage = %self.stage, error = %fault, "plugin failed; stage skipped");
                self.faults.add(self.stage.as_str(), kind, "skipped");
                Ok(Outcome::Skipped)
            }
            _ => {
                self.faults.add(self.stage.as_str(), kind, "failed");
                Err(PipelineError::plugin(self.stage, fault))
            }
        }
    }

    fn skippable(&self) -> bool {
        !matches!(self.stage, Stage::Tokenizer | Stage::Structured)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use weft_runtime::{Breaker, BreakerPolicy, ErrorKind, LoadedPlugin, PluginError};

    use super::*;

    /// A stage whose calls fail while `broken`, with a breaker kept the way
    /// `LoadedPlugin` keeps its own: every call's outcome is recorded.
    struct Fake {
        name: &'static str,
        broken: std::sync::atomic::AtomicBool,
        calls: AtomicUsize,
        breaker: Breaker,
    }

    impl Fake {
        fn new(name: &'static str, broken: bool) -> Arc<Self> {
            Arc::new(Self {
                name,
                broken: broken.into(),
                calls: AtomicUsize::new(0),
                breaker: Breaker::new(BreakerPolicy { threshold: 3, cooldown: Duration::from_millis(80) }),
            })
        }

        fn work(&self, x: u32) -> Result<u32, Fault> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let broken = self.broken.load(Ordering::Relaxed);
            self.breaker.record(broken);
            if broken {
                return Err(Fault::Plugin(PluginError::new(self.name, ErrorKind::Trap, "panicked at boom")));
            }
            Ok(x + 1)
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::Relaxed)
        }
    }

    impl Component for Fake {
        fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
            None
        }
        fn available(&self) -> Result<(), PluginError> {
            self.breaker
                .check()
                .map_err(|left| PluginError::new(self.name, ErrorKind::Unavailable, "breaker open").retry_after(left))
        }
    }

    fn guard(stage: Stage, policy: FailurePolicy, primary: &Arc<Fake>, twin: Option<&Arc<Fake>>) -> Guard<Fake> {
        Guard::new(stage, policy, primary.clone(), twin.cloned(), Arc::new(StageFaults::default()))
    }

    fn count(g: &Guard<Fake>, kind: &'static str, action: &'static str) -> u64 {
        g.faults.get(g.stage.as_str(), kind, action)
    }

    #[test]
    fn a_healthy_stage_is_called_once_under_every_policy() {
        for policy in [FailurePolicy::Closed, FailurePolicy::Open, FailurePolicy::Fallback] {
            let (p, t) = (Fake::new("p", false), Fake::new("twin", false));
            let g = guard(Stage::Transform, policy, &p, Some(&t));
            assert_eq!(g.call(|s| s.work(1)).unwrap(), Outcome::Done(2));
            assert_eq!((p.calls(), t.calls()), (1, 0));
        }
    }

    #[test]
    fn closed_fails_the_request_naming_stage_and_plugin() {
        let p = Fake::new("guard-me", true);
        let g = guard(Stage::Transform, FailurePolicy::Closed, &p, Some(&Fake::new("twin", false)));
        let e = g.call(|s| s.work(1)).unwrap_err();
        let PipelineError::Plugin { stage, error } = &e else { panic!("{e:?}") };
        assert_eq!((*stage, error.plugin.as_str(), error.kind), (Stage::Transform, "guard-me", ErrorKind::Trap));
        assert!(e.to_string().contains("transform stage failed: plugin `guard-me` (trap)"), "{e}");
        assert_eq!(count(&g, "trap", "failed"), 1);
    }

    #[test]
    fn open_skips_the_stage() {
        let p = Fake::new("p", true);
        let g = guard(Stage::Transform, FailurePolicy::Open, &p, Some(&Fake::new("twin", false)));
        assert_eq!(g.call(|s| s.work(1)).unwrap(), Outcome::Skipped);
        assert_eq!(count(&g, "trap", "skipped"), 1);
    }

    #[test]
    fn fallback_uses_the_twin_or_skips_without_one() {
        let (p, t) = (Fake::new("p", true), Fake::new("twin", false));
        let g = guard(Stage::Sampler, FailurePolicy::Fallback, &p, Some(&t));
        assert_eq!(g.call(|s| s.work(41)).unwrap(), Outcome::Done(42));
        assert_eq!((p.calls(), t.calls()), (1, 1));
        assert_eq!(count(&g, "trap", "fallback"), 1);

        let g = guard(Stage::Sampler, FailurePolicy::Fallback, &p, None);
        assert_eq!(g.call(|s| s.work(1)).unwrap(), Outcome::Skipped);
    }

    #[test]
    fn a_stage_that_cannot_be_skipped_fails_without_a_twin() {
        let p = Fake::new("tok", true);
        for policy in [FailurePolicy::Open, FailurePolicy::Fallback] {
            let g = guard(Stage::Tokenizer, policy, &p, None);
            assert!(matches!(g.call(|s| s.work(1)), Err(PipelineError::Plugin { stage: Stage::Tokenizer, .. })));
        }
    }

    #[test]
    fn a_failing_twin_fails_the_request() {
        let (p, t) = (Fake::new("p", true), Fake::new("twin", true));
        let g = guard(Stage::Tokenizer, FailurePolicy::Fallback, &p, Some(&t));
        let e = g.call(|s| s.work(1)).unwrap_err();
        assert!(matches!(&e, PipelineError::Plugin { error, .. } if error.plugin == "twin"), "{e:?}");
    }

    #[test]
    fn request_faults_pass_through_every_policy_uncounted() {
        for policy in [FailurePolicy::Closed, FailurePolicy::Open, FailurePolicy::Fallback] {
            let (p, t) = (Fake::new("p", false), Fake::new("twin", false));
            let g = guard(Stage::Transform, policy, &p, Some(&t));
            let e = g
                .call(|_| -> Result<u32, Fault> { Err(Fault::Request(PipelineError::invalid("messages", "no"))) })
                .unwrap_err();
            assert!(matches!(e, PipelineError::Invalid { param: "messages", .. }));
            assert_eq!(t.calls(), 0, "the twin is not asked to serve a bad request");
            assert_eq!(g.faults.total(), 0);
        }
    }

    #[test]
    fn an_open_breaker_stops_calls_until_the_cooldown_ends() {
        let (p, t) = (Fake::new("flaky", true), Fake::new("twin", false));
        let closed = guard(Stage::Transform, FailurePolicy::Closed, &p, None);
        let fallback = guard(Stage::Transform, FailurePolicy::Fallback, &p, Some(&t));
        for _ in 0..3 {
            assert!(closed.call(|s| s.work(1)).is_err());
        }
        assert_eq!(p.calls(), 3);
        // Open: refused without calling the plugin, as `unavailable` with the time left.
        assert!(closed.precheck().is_err());
        let e = closed.call(|s| s.work(1)).unwrap_err();
        let PipelineError::Plugin { error, .. } = &e else { panic!("{e:?}") };
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(error.retry_after.is_some_and(|d| d <= Duration::from_millis(80)));
        // Under fallback the twin serves at once, still without calling the plugin.
        assert_eq!(fallback.call(|s| s.work(1)).unwrap(), Outcome::Done(2));
        assert!(fallback.precheck().is_ok(), "a stage with a stand-in never refuses up front");
        assert_eq!(p.calls(), 3);
        assert_eq!(count(&closed, "unavailable", "failed"), 1);

        // Half-open after the cool-down: the plugin is tried again, and one success closes it.
        std::thread::sleep(Duration::from_millis(100));
        p.broken.store(false, Ordering::Relaxed);
        assert_eq!(closed.call(|s| s.work(1)).unwrap(), Outcome::Done(2));
        assert_eq!(p.calls(), 4);
        assert!(closed.precheck().is_ok());
    }
}
