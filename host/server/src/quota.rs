//! Per-tenant quotas: concurrent requests, requests and tokens per minute
//! (sliding 60-second windows), and the largest `max_tokens`. Token counts are
//! exact: prompt tokens are charged at admission, completion tokens as each
//! one is generated.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// A tenant's limits (from `tenants[].quotas`).
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    pub max_concurrent: Option<usize>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub max_tokens: Option<u32>,
    pub max_instances: Option<usize>,
}

/// Which quota refused a request, and when trying again can succeed.
#[derive(Debug)]
pub struct Exceeded {
    pub quota: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Default, Debug)]
struct Usage {
    in_flight: usize,
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, u64)>,
    tokens_in_window: u64,
}

impl Usage {
    fn expire(&mut self, now: Instant) {
        while self.requests.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            self.requests.pop_front();
        }
        while let Some(&(t, n)) = self.tokens.front() {
            if now.duration_since(t) < WINDOW {
                break;
            }
            self.tokens.pop_front();
            self.tokens_in_window -= n;
        }
    }
}

/// One tenant's usage; survives reloads.
#[derive(Default, Debug)]
pub struct Meter {
    usage: Mutex<Usage>,
}

/// A slot that owns its meter (for tasks that outlive the handler).
#[derive(Debug)]
pub struct Slot(std::sync::Arc<Meter>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut u) = self.0.usage.lock() {
            u.in_flight -= 1;
        }
    }
}

fn secs_until(t: Instant, now: Instant) -> u64 {
    (WINDOW.saturating_sub(now.duration_since(t))).as_secs().max(1)
}

impl Meter {
    /// Admits a request (concurrency and request rate) or says which quota refuses it.
    pub fn admit(self: &std::sync::Arc<Self>, q: &Quotas) -> Result<Slot, Exceeded> {
        let now = Instant::now();
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.expire(now);
        if let Some(max) = q.max_concurrent
            && u.in_flight >= max
        {
            return Err(Exceeded {
                quota: "max_concurrent",
                message: format!("quota exceeded: max_concurrent ({max} requests at a time) is reached"),
                retry_after: Some(1),
            });
        }
        if let Some(rpm) = q.requests_per_minute
            && u.requests.len() >= rpm as usize
        {
            let retry = u.requests.front().map(|t| secs_until(*t, now));
            return Err(Exceeded {
                quota: "requests_per_minute",
                message: format!("quota exceeded: requests_per_minute ({rpm})"),
                retry_after: retry,
            });
        }
        u.in_flight += 1;
        u.requests.push_back(now);
        Ok(Slot(self.clone()))
    }

    /// Charges a request's prompt tokens, unless they would exceed the token rate.
    pub fn charge_prompt(&self, q: &Quotas, tokens: u64) -> Result<(), Exceeded> {
        let now = Instant::now();
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.expire(now);
        if let Some(tpm) = q.tokens_per_minute
            && u.tokens_in_window + tokens > tpm
        {
            // When enough of the window's tokens expire for this prompt to fit.
            let mut need = (u.tokens_in_window + tokens).saturating_sub(tpm);
            let mut retry = None;
            for &(t, n) in &u.tokens {
                need = need.saturating_sub(n);
                if need == 0 {
                    retry = Some(secs_until(t, now));
                    break;
                }
            }
            return Err(Exceeded {
                quota: "tokens_per_minute",
                message: format!(
                    "quota exceeded: tokens_per_minute ({tpm}); {} used in the last minute, this prompt has {tokens}",
                    u.tokens_in_window
                ),
                retry_after: retry.or(Some(60)),
            });
        }
        u.tokens.push_back((now, tokens));
        u.tokens_in_window += tokens;
        Ok(())
    }

    /// Charges generated tokens (as they are produced; never refused).
    pub fn charge_completion(&self, tokens: u64) {
        let now = Instant::now();
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.expire(now);
        u.tokens.push_back((now, tokens));
        u.tokens_in_window += tokens;
    }
}

/// Meters by tenant id, kept for the life of the server.
#[derive(Default)]
pub struct Meters(Mutex<HashMap<String, std::sync::Arc<Meter>>>);

impl Meters {
    pub fn get(&self, tenant: &str) -> std::sync::Arc<Meter> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).entry(tenant.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_quota_refuses_with_its_name() {
        let m = std::sync::Arc::new(Meter::default());
        let q = Quotas {
            max_concurrent: Some(1),
            requests_per_minute: Some(2),
            tokens_per_minute: Some(100),
            max_tokens: None,
            max_instances: None,
        };
        let a = m.admit(&q).unwrap();
        assert_eq!(m.admit(&q).unwrap_err().quota, "max_concurrent");
        drop(a);
        let _b = m.admit(&q).unwrap();
        drop(_b);
        let e = m.admit(&q).unwrap_err();
        assert_eq!(e.quota, "requests_per_minute");
        assert!(e.retry_after.unwrap() >= 59);
        m.charge_prompt(&q, 60).unwrap();
        m.charge_completion(30);
        let e = m.charge_prompt(&q, 20).unwrap_err();
        assert_eq!(e.quota, "tokens_per_minute");
        assert!(e.message.contains("90 used"), "{}", e.message);
    }
}
