//! A plugin call's deadline, charged in the CPU time the call used, with a
//! wall-clock backstop.
//!
//! Why CPU time: plugin threads run below the engine's CPU priority, so on a
//! busy machine a call waits for a core through no fault of its own. Charged
//! in wall time, a legal sampler that needs 40 ms of its 50 ms would time out
//! whenever the forward pass held the cores, fail its request, and the retry
//! would cost the engine a new prefill: the busier the server, the more a
//! well-behaved slow plugin would be punished and the more it would cost
//! everyone. Charged in CPU time, it gets its budget whenever the machine can
//! spare it.
//!
//! Why a backstop: a call must still end in bounded wall time. Plugins cannot
//! block (clocks are frozen and timers fire at once, see `wasi.rs`), so a call
//! uses CPU whenever it is not waiting for a core; the backstop
//! ([`WALL_FACTOR`] times the deadline) ends one that is starved for that long.
//!
//! The epoch ticker interrupts the guest every tick once the first deadline
//! has passed; [`CallClock::check`] then decides: trap (`Interrupt`, classified
//! as `timeout`) or run on for the CPU budget still left.

use std::time::{Duration, Instant};

/// The wall-clock backstop, as a multiple of the deadline.
pub const WALL_FACTOR: u32 = 10;

/// When the current call started, on both clocks.
#[derive(Debug, Clone, Copy)]
pub struct CallClock {
    wall0: Instant,
    cpu0: Duration,
    budget: Duration,
}

impl CallClock {
    /// Starts a call with `budget` of CPU time on the calling thread.
    pub fn start(budget: Duration) -> Self {
        Self { wall0: Instant::now(), cpu0: thread_cpu_time(), budget }
    }

    /// `Some(left)`: CPU budget left for the call; `None`: its time is up.
    pub fn check(&self) -> Option<Duration> {
        let wall = self.wall0.elapsed();
        if wall >= self.budget * WALL_FACTOR {
            return None;
        }
        let used = thread_cpu_time().saturating_sub(self.cpu0);
        self.budget.checked_sub(used).filter(|left| !left.is_zero())
    }

    /// wasmtime's epoch-deadline callback: run on for the CPU budget left (in
    /// ticks of `ticks_per_sec`), or trap with `Interrupt` (a `timeout`).
    pub fn on_epoch(&self, ticks_per_sec: u64) -> wasmtime::Result<wasmtime::UpdateDeadline> {
        match self.check() {
            Some(left) => {
                Ok(wasmtime::UpdateDeadline::Continue((left.as_millis() as u64 * ticks_per_sec / 1000).max(1)))
            }
            None => Err(wasmtime::Trap::Interrupt.into()),
        }
    }
}

/// CPU time the calling thread has used (Linux and other Unix; elsewhere
/// wall time since an arbitrary start, which makes the deadline a wall-clock one).
pub fn thread_cpu_time() -> Duration {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a plain syscall writing into a local.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spinning_uses_the_budget_waiting_does_not() {
        let c = CallClock::start(Duration::from_millis(30));
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.check().is_some(), "sleeping is not charged");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(40) {
            std::hint::spin_loop();
        }
        assert!(c.check().is_none(), "spinning past the budget is");
    }

    #[test]
    fn the_wall_clock_backstop_ends_a_starved_call() {
        let c = CallClock::start(Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(10) * WALL_FACTOR + Duration::from_millis(5));
        assert!(c.check().is_none());
    }
}
