//! Per-tenant quotas: concurrent requests, requests and tokens per minute
//! (sliding 60-second windows), and the largest `max_tokens`.
//!
//! Exact, and never overshot: a request reserves the most it can use (its
//! prompt plus `n` x `max_tokens`) when it is admitted, and is refused if that
//! would pass `tokens_per_minute`; when it ends, the reservation shrinks to
//! what it used. A request refused or failed before it generated anything is
//! charged nothing: neither its request nor its tokens count.

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
    /// (when, id) of each request counted in the window.
    requests: VecDeque<(Instant, u64)>,
    /// (when, id, tokens) of each charge in the window.
    tokens: VecDeque<(Instant, u64, u64)>,
    tokens_in_window: u64,
    next_id: u64,
}

impl Usage {
    fn expire(&mut self, now: Instant) {
        while self.requests.front().is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW) {
            self.requests.pop_front();
        }
        while let Some(&(t, _, n)) = self.tokens.front() {
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

/// A request in flight (for tasks that outlive the handler). Until
/// [`Slot::commit`] it is provisional: dropped uncommitted, it is taken off
/// the request count as if it had never come.
#[derive(Debug)]
pub struct Slot {
    meter: std::sync::Arc<Meter>,
    id: u64,
    committed: bool,
}

impl Slot {
    /// The request reached the engine: it counts against `requests_per_minute`.
    pub fn commit(&mut self) {
        self.committed = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut u) = self.meter.usage.lock() {
            u.in_flight -= 1;
            if !self.committed
                && let Some(i) = u.requests.iter().rposition(|&(_, id)| id == self.id)
            {
                u.requests.remove(i);
            }
        }
    }
}

/// Tokens a request has reserved: its prompt plus `n` x `max_tokens`. Choices
/// count what they generate; when the last holder drops it, the charge
/// becomes exactly prompt + generated, or nothing if nothing was generated.
#[derive(Debug)]
pub struct TokenHold {
    meter: std::sync::Arc<Meter>,
    id: u64,
    reserved: u64,
    prompt: u64,
    generated: std::sync::atomic::AtomicU64,
}

impl TokenHold {
    pub fn generated(&self, n: u64) {
        self.generated.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for TokenHold {
    fn drop(&mut self) {
        let generated = *self.generated.get_mut();
        let used = if generated == 0 { 0 } else { (self.prompt + generated).min(self.reserved) };
        let Ok(mut u) = self.meter.usage.lock() else { return };
        // Already out of the window (a request longer than a minute): nothing left to adjust.
        if let Some(e) = u.tokens.iter_mut().rev().find(|e| e.1 == self.id) {
            let refund = e.2 - used;
            e.2 = used;
            u.tokens_in_window -= refund;
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
            let retry = u.requests.front().map(|(t, _)| secs_until(*t, now));
            return Err(Exceeded {
                quota: "requests_per_minute",
                message: format!("quota exceeded: requests_per_minute ({rpm})"),
                retry_after: retry,
            });
        }
        u.in_flight += 1;
        u.next_id += 1;
        let id = u.next_id;
        u.requests.push_back((now, id));
        Ok(Slot { meter: self.clone(), id, committed: false })
    }

    /// Reserves `prompt + most_generated` tokens, unless that could pass the token rate.
    pub fn reserve(
        self: &std::sync::Arc<Self>,
        q: &Quotas,
        prompt: u64,
        most_generated: u64,
    ) -> Result<TokenHold, Exceeded> {
        let now = Instant::now();
        let tokens = prompt + most_generated;
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.expire(now);
        if let Some(tpm) = q.tokens_per_minute
            && u.tokens_in_window + tokens > tpm
        {
            // When enough of the window's tokens expire for this request to fit.
            let mut need = (u.tokens_in_window + tokens).saturating_sub(tpm);
            let mut retry = None;
            for &(t, _, n) in &u.tokens {
                need = need.saturating_sub(n);
                if need == 0 {
                    retry = Some(secs_until(t, now));
                    break;
                }
            }
            let never = tokens > tpm;
            return Err(Exceeded {
                quota: "tokens_per_minute",
                message: format!(
                    "quota exceeded: tokens_per_minute ({tpm}); {} used in the last minute, this request may use {tokens} (a prompt of {prompt} plus n x max_tokens = {most_generated}){}",
                    u.tokens_in_window,
                    if never { "; ask for fewer tokens: this can never fit" } else { "" }
                ),
                retry_after: if never { None } else { retry.or(Some(60)) },
            });
        }
        u.next_id += 1;
        let id = u.next_id;
        u.tokens.push_back((now, id, tokens));
        u.tokens_in_window += tokens;
        Ok(TokenHold {
            meter: self.clone(),
            id,
            reserved: tokens,
            prompt,
            generated: std::sync::atomic::AtomicU64::new(0),
        })
    }

    #[cfg(test)]
    fn used(&self) -> u64 {
        self.usage.lock().unwrap().tokens_in_window
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
        let mut a = m.admit(&q).unwrap();
        a.commit();
        assert_eq!(m.admit(&q).unwrap_err().quota, "max_concurrent");
        drop(a);
        let mut b = m.admit(&q).unwrap();
        b.commit();
        drop(b);
        let e = m.admit(&q).unwrap_err();
        assert_eq!(e.quota, "requests_per_minute");
        assert!(e.retry_after.unwrap() >= 59);
        let hold = m.reserve(&q, 60, 30).unwrap();
        let e = m.reserve(&q, 5, 10).unwrap_err();
        assert_eq!(e.quota, "tokens_per_minute");
        assert!(e.message.contains("90 used"), "{}", e.message);
        assert!(e.retry_after.is_some());
        let e = m.reserve(&q, 5, 200).unwrap_err();
        assert!(e.retry_after.is_none() && e.message.contains("never fit"), "{}", e.message);
        drop(hold);
    }

    #[test]
    fn reservations_shrink_to_what_was_used_and_failures_cost_nothing() {
        let m = std::sync::Arc::new(Meter::default());
        let q = Quotas { requests_per_minute: Some(1), tokens_per_minute: Some(1000), ..Default::default() };
        // Refused or failed before generating: neither the request nor the tokens count.
        let s = m.admit(&q).unwrap();
        let h = m.reserve(&q, 50, 16 * 64).unwrap_err(); // 1074 > 1000: refused
        assert_eq!(h.quota, "tokens_per_minute");
        drop(s);
        let s = m.admit(&q).expect("the refused request was not counted");
        let h = m.reserve(&q, 50, 100).unwrap();
        assert_eq!(m.used(), 150);
        drop(h);
        assert_eq!(m.used(), 0, "nothing generated: nothing charged");
        drop(s);
        // A request that generates: charged prompt + generated, the rest given back.
        let mut s = m.admit(&q).unwrap();
        s.commit();
        let h = std::sync::Arc::new(m.reserve(&q, 50, 4 * 100).unwrap());
        assert_eq!(m.used(), 450);
        for _ in 0..4 {
            h.generated(7);
        }
        drop(h);
        assert_eq!(m.used(), 50 + 28);
        drop(s);
        assert_eq!(m.admit(&q).unwrap_err().quota, "requests_per_minute", "a committed request counts");
    }
}
