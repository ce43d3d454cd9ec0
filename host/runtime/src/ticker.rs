//! The epoch ticker: advances wasmtime's epoch once a millisecond while a
//! guest call runs, and sleeps while none does.
//!
//! Why not tick always: epochs only matter to a call in flight (its deadline
//! is counted in ticks from its start), and a ticker that wakes a thousand
//! times a second takes a core away from the engine's compute team as often.
//! The team splits each kernel between both cores, so every such wake-up
//! stalls both of them for its length (measured at one stream on 2 cores:
//! ~860 wake-ups a second, each preempting a compute thread).
//!
//! States: idle (parked, no call running), armed (a call started; the first
//! tick is due a [`TICK`] later), ticking. A call's entry wakes an idle
//! ticker. The last call's exit wakes an armed one, so a call shorter than a
//! tick (a sampler's step, usually tens of microseconds) costs two wake-ups
//! while the engine waits for it, not a timer firing later in the middle of
//! the next forward pass. A ticking ticker is not woken by exits (at 32
//! streams the sampling pool's calls follow each other closely): it parks at
//! its next tick if no call is running then.
//!
//! Invariant: while a call runs the epoch advances at most once per [`TICK`]
//! and at least once per [`TICK`] of the ticker's thread getting a core, so a
//! call's deadline in ticks stays a deadline in milliseconds, as it was with a
//! free-running ticker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// One epoch.
pub const TICK: Duration = Duration::from_millis(1);

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const TICKING: u8 = 2;

struct Shared {
    /// Guest calls running now.
    running: AtomicUsize,
    /// IDLE, ARMED or TICKING (see the module docs).
    state: AtomicU8,
    stop: AtomicBool,
    /// Epochs advanced so far (for tests and diagnostics).
    ticks: AtomicU64,
}

/// Owns the ticker thread; dropping it stops the thread.
pub struct Ticker {
    shared: Arc<Shared>,
    thread: Thread,
}

impl Ticker {
    pub fn start(engine: Engine) -> std::io::Result<Arc<Self>> {
        let shared = Arc::new(Shared {
            running: AtomicUsize::new(0),
            state: AtomicU8::new(IDLE),
            stop: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new().name("weft-epoch".into()).spawn(move || run(&s, &engine))?;
        Ok(Arc::new(Self { shared, thread: handle.thread().clone() }))
    }

    /// Marks a guest call as running until the guard drops.
    pub fn enter(&self) -> Running<'_> {
        let s = &self.shared;
        if s.running.fetch_add(1, Ordering::AcqRel) == 0
            && s.state.compare_exchange(IDLE, ARMED, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.thread.unpark();
        }
        Running(self)
    }
}

/// A guest call in flight (see [`Ticker::enter`]).
pub struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let s = &self.0.shared;
        if s.running.fetch_sub(1, Ordering::AcqRel) == 1 && s.state.load(Ordering::Acquire) == ARMED {
            // Parks the ticker now rather than at its first tick, which would
            // land in the middle of the engine's next forward pass.
            self.0.thread.unpark();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn run(s: &Shared, engine: &Engine) {
    let mut due: Option<Instant> = None;
    while !s.stop.load(Ordering::Acquire) {
        if s.running.load(Ordering::Acquire) == 0 {
            due = None;
            s.state.store(IDLE, Ordering::Release);
            // An entry between the check above and this store found the state
            // not yet idle and did not wake this thread: look again.
            if s.running.load(Ordering::Acquire) == 0 {
                std::thread::park();
            }
            continue;
        }
        let now = Instant::now();
        let at = *due.get_or_insert_with(|| {
            s.state.store(ARMED, Ordering::Release);
            now + TICK
        });
        if now >= at {
            engine.increment_epoch();
            s.ticks.fetch_add(1, Ordering::Relaxed);
            s.state.store(TICKING, Ordering::Release);
            // Ticks lost to a starved ticker are not made up in a burst.
            due = Some((at + TICK).max(now));
        } else {
            // An entry or exit may wake this early: the loop looks again.
            std::thread::park_timeout(at - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let t0 = Instant::now();
        while !f() {
            assert!(t0.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn ticks_while_a_call_runs_and_not_otherwise() {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        let t = Ticker::start(Engine::new(&cfg).unwrap()).unwrap();
        let ticks = || t.shared.ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks(), 0, "no call ran");
        {
            let _a = t.enter();
            let _b = t.enter();
            wait_for("ticks while calls run", || ticks() >= 5);
        }
        // A tick already decided when the last call left may still land.
        let after = ticks();
        std::thread::sleep(Duration::from_millis(30));
        assert!(ticks() <= after + 1, "ticked on with no call running");
        let before = ticks();
        let _c = t.enter();
        wait_for("ticks again for a new call", || ticks() >= before + 3);
    }
}
