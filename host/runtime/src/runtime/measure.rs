//! Timings of a loaded plugin for `weft bench plugins`: kept apart from the
//! loading and calling code they measure, and built from the same calls.

use std::time::{Duration, Instant};

use super::{LoadedPlugin, Result};
use crate::bindings;

impl LoadedPlugin {
    /// Mean duration of `n` calls of `metadata` on one warm instance: the cost
    /// of a typed component call with a small result, for benchmarks.
    pub fn time_metadata_calls(&self, n: usize) -> Result<Duration> {
        let (mut store, instance) = self.instantiate()?;
        let f = self.world_func::<(), (bindings::Metadata,)>(&mut store, &instance, "metadata")?;
        let _ = self.call(&mut store, "metadata", |s| f.call(&mut *s, ()))?;
        let t0 = Instant::now();
        for _ in 0..n {
            let _ = self.call(&mut store, "metadata", |s| f.call(&mut *s, ()))?;
        }
        Ok(t0.elapsed() / n.max(1) as u32)
    }

    /// Mean time to make a ready instance (instantiate + `init`) over `n`, and
    /// the linear memory one holds once ready: what a cold request or a pool
    /// refill costs, for benchmarks.
    pub fn time_instantiate(&self, n: usize) -> Result<(Duration, usize)> {
        let mut bytes = 0;
        let t0 = Instant::now();
        for _ in 0..n.max(1) {
            let (mut store, instance) = self.instantiate()?;
            self.init(&mut store, &instance)?;
            bytes = store.data().limiter.bytes;
        }
        Ok((t0.elapsed() / n.max(1) as u32, bytes))
    }
}
