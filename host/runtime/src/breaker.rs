//! A circuit breaker per loaded plugin.
//!
//! Every tenant's pipeline loads its own copy of each plugin, so one breaker
//! per [`crate::LoadedPlugin`] is one breaker per tenant and plugin: a tenant
//! whose plugin keeps trapping or timing out stops taxing the machine (its
//! requests are refused at once for a cool-down) while every other tenant's
//! copy of the same plugin keeps serving.
//!
//! Closed: calls go through; `threshold` failures in a row open it. Open:
//! [`Breaker::check`] refuses until the cool-down ends. Then half-open: calls
//! go through again, one more failure reopens it at once, one success closes
//! it. Only faults count (trap, timeout, memory, invalid output); a plugin's
//! own refusal of a request is an answer, not a fault.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures in a row that open the breaker, and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    pub threshold: u32,
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self { threshold: 5, cooldown: Duration::from_secs(10) }
    }
}

#[derive(Debug)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    /// Set once a cool-down has ended and no success has come since.
    half_open: bool,
    trips: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Self {
        Self { policy, state: Mutex::new(State { failures: 0, open_until: None, half_open: false, trips: 0 }) }
    }

    /// `Err(time left)` while the breaker is open.
    pub fn check(&self) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.open_until {
            Some(t) => {
                let now = Instant::now();
                if now < t {
                    return Err(t - now);
                }
                s.open_until = None;
                s.half_open = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records the outcome of one call.
    pub fn record(&self, fault: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !fault {
            s.failures = 0;
            s.half_open = false;
            return;
        }
        s.failures += 1;
        if (s.half_open || s.failures >= self.policy.threshold) && s.open_until.is_none() {
            s.open_until = Some(Instant::now() + self.policy.cooldown);
            s.half_open = false;
            s.failures = 0;
            s.trips += 1;
        }
    }

    /// Times the breaker opened (`weft_plugin_breaker_trips_total`).
    pub fn trips(&self) -> u64 {
        self.state.lock().map(|s| s.trips).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_closes_after_cooldown() {
        let b = Breaker::new(BreakerPolicy { threshold: 3, cooldown: Duration::from_millis(50) });
        for _ in 0..2 {
            b.record(true);
        }
        assert!(b.check().is_ok(), "two faults: still closed");
        b.record(false);
        b.record(true);
        b.record(true);
        assert!(b.check().is_ok(), "a success resets the count");
        b.record(true);
        let left = b.check().unwrap_err();
        assert!(left <= Duration::from_millis(50));
        assert_eq!(b.trips(), 1);
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check().is_ok(), "half-open after the cool-down");
        b.record(true);
        assert!(b.check().is_err(), "one fault while half-open reopens it");
        assert_eq!(b.trips(), 2);
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check().is_ok());
        b.record(false);
        b.record(true);
        assert!(b.check().is_ok(), "a success closed it: one fault is not enough again");
    }
}
