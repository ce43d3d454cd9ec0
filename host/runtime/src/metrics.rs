//! Per-plugin call statistics, read by the server's `/metrics` and the admin API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the call-duration histogram buckets.
pub const CALL_BUCKETS: [f64; 12] = [1e-6, 5e-6, 2e-5, 1e-4, 5e-4, 1e-3, 5e-3, 2e-2, 0.1, 0.5, 2.0, 10.0];

/// Distinct custom series one plugin may create.
pub const MAX_CUSTOM_SERIES: usize = 64;

/// Counters of one loaded plugin.
#[derive(Debug, Default)]
pub struct PluginMetrics {
    pub calls: AtomicU64,
    /// Cumulative counts per bucket of [`CALL_BUCKETS`], plus one for +Inf.
    pub call_buckets: [AtomicU64; 13],
    /// Sum of call durations in nanoseconds.
    pub call_nanos: AtomicU64,
    pub errors: Mutex<HashMap<&'static str, u64>>,
    /// The plugin's own counters and histogram sums (`host.counter-add`, `host.histogram-record`).
    pub custom: Mutex<HashMap<String, f64>>,
}

impl PluginMetrics {
    pub fn record_call(&self, secs: f64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.call_nanos.fetch_add((secs * 1e9) as u64, Ordering::Relaxed);
        let i = CALL_BUCKETS.iter().position(|&b| secs <= b).unwrap_or(CALL_BUCKETS.len());
        self.call_buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_error(&self, kind: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Adds to the plugin's own series; at most [`MAX_CUSTOM_SERIES`] distinct
    /// names, so a plugin cannot grow the host's memory or `/metrics` without bound.
    pub fn add_custom(&self, entries: &[(String, f64)]) {
        if let Ok(mut m) = self.custom.lock() {
            for (key, v) in entries {
                if m.len() < MAX_CUSTOM_SERIES || m.contains_key(key) {
                    *m.entry(key.clone()).or_default() += v;
                }
            }
        }
    }

    pub fn error_counts(&self) -> Vec<(&'static str, u64)> {
        self.errors.lock().map(|m| m.iter().map(|(k, v)| (*k, *v)).collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_series_are_capped_but_existing_ones_keep_counting() {
        let m = PluginMetrics::default();
        for i in 0..100 {
            m.add_custom(&[(format!("c{i}_total"), 1.0)]);
        }
        m.add_custom(&[("c0_total".into(), 1.0)]);
        let custom = m.custom.lock().unwrap();
        assert_eq!(custom.len(), MAX_CUSTOM_SERIES);
        assert_eq!(custom["c0_total"], 2.0);
    }
}
