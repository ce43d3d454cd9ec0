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
//! States: dormant (parked, nothing called lately), polling (looks every
//! [`POLL`]), ticking (advances the epoch every [`TICK`]). The first call
//! after a quiet spell wakes a dormant ticker; every other entry and exit is
//! two atomic operations and wakes nothing. A polling ticker that finds a call
//! running starts ticking; one that finds no call started since its last look
//! goes dormant. A ticking ticker goes back to polling at a tick with no call
//! running. At one stream a sampler makes two short calls per token: woken on
//! every entry and exit, the ticker cost four wake-ups per token, each taking
//! the core from the sampling thread (which runs at a lower priority) or from
//! the compute team; polling costs one per [`POLL`].
//!
//! Invariant: while a call runs the epoch advances at most once per [`TICK`],
//! and once the call has run [`POLL`] at least once per [`TICK`] of the
//! ticker's thread getting a core. A call's deadline in ticks is a deadline in
//! milliseconds plus at most [`POLL`], far below any deadline worth setting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// One epoch.
pub const TICK: Duration = Duration::from_millis(1);

/// How often a ticker that is not ticking looks for a running call while
/// calls are being made.
pub const POLL: Duration = Duration::from_millis(5);

struct Shared {
    /// Guest calls running now.
    running: AtomicUsize,
    /// Guest calls started so far.
    entries: AtomicU64,
    /// Parked until the next entry wakes it (polling and ticking need no
    /// flag: entries never wake a ticker in either).
    dormant: AtomicBool,
    stop: AtomicBool,
    /// Epochs advanced so far (for tests and diagnostics).
    ticks: AtomicU64,
    /// Times the ticker thread woke (for tests and diagnostics).
    wakes: AtomicU64,
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
            entries: AtomicU64::new(0),
            dormant: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new().name("weft-epoch".into()).spawn(move || run(&s, &engine))?;
        Ok(Arc::new(Self { shared, thread: handle.thread().clone() }))
    }

    /// Marks a guest call as running until the guard drops.
    pub fn enter(&self) -> Running<'_> {
        let s = &self.shared;
        s.running.fetch_add(1, Ordering::SeqCst);
        s.entries.fetch_add(1, Ordering::SeqCst);
        if s.dormant.load(Ordering::SeqCst) && s.dormant.swap(false, Ordering::SeqCst) {
            self.thread.unpark();
        }
        Running(self)
    }
}

/// A guest call in flight (see [`Ticker::enter`]).
pub struct Running<'a>(&'a Ticker);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.shared.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

fn run(s: &Shared, engine: &Engine) {
    let mut seen = s.entries.load(Ordering::SeqCst);
    let mut due: Option<Instant> = None;
    while !s.stop.load(Ordering::Acquire) {
        if s.running.load(Ordering::SeqCst) > 0 {
            let now = Instant::now();
            match due {
                None => due = Some(now + TICK),
                Some(at) if now >= at => {
                    engine.increment_epoch();
                    s.ticks.fetch_add(1, Ordering::Relaxed);
                    // Ticks lost to a starved ticker are not made up in a burst.
                    due = Some((at + TICK).max(now));
                }
                Some(_) => {}
            }
            park_timeout(s, due.map_or(TICK, |at| at.saturating_duration_since(Instant::now())));
            continue;
        }
        due = None;
        let entries = s.entries.load(Ordering::SeqCst);
        if entries != seen {
            // Calls are being made, none is running now: look again later.
            seen = entries;
            park_timeout(s, POLL);
            continue;
        }
        s.dormant.store(true, Ordering::SeqCst);
        // An entry between the check above and this store saw the flag not
        // yet set and did not wake this thread: look again. (SeqCst on both
        // sides: the entry's count before its flag check, this store before
        // this load.) An entry that did wake it only costs a spare wake-up.
        if s.entries.load(Ordering::SeqCst) == seen {
            std::thread::park();
            s.wakes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn park_timeout(s: &Shared, d: Duration) {
    std::thread::park_timeout(d);
    s.wakes.fetch_add(1, Ordering::Relaxed);
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

    fn ticker() -> Arc<Ticker> {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        Ticker::start(Engine::new(&cfg).unwrap()).unwrap()
    }

    #[test]
    fn ticks_while_a_call_runs_and_not_otherwise() {
        let t = ticker();
        let ticks = || t.shared.ticks.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks(), 0, "no call ran");
        assert_eq!(t.shared.wakes.load(Ordering::Relaxed), 0, "dormant while nothing is called");
        {
            let _a = t.enter();
            let _b = t.enter();
            wait_for("ticks while calls run", || ticks() >= 5);
        }
        // A tick already decided when the last call left may still land.
        let after = ticks();
        std::thread::sleep(Duration::from_millis(30));
        assert!(ticks() <= after + 1, "ticked on with no call running");
        wait_for("dormant again", || t.shared.dormant.load(Ordering::SeqCst));
        let before = ticks();
        let _c = t.enter();
        wait_for("ticks again for a new call", || ticks() >= before + 3);
    }

    #[test]
    fn short_calls_wake_the_ticker_once_per_poll_not_per_call() {
        let t = ticker();
        let t0 = Instant::now();
        let mut calls = 0;
        while t0.elapsed() < POLL * 10 {
            drop(t.enter());
            calls += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        let polls = (t0.elapsed().as_secs_f64() / POLL.as_secs_f64()).ceil() as u64;
        let wakes = t.shared.wakes.load(Ordering::Relaxed);
        assert!(calls > 40, "{calls}");
        // Park timeouts never fire early; a few spare for spurious wake-ups
        // and a tick taken when a poll found a call running.
        assert!(wakes <= polls + 5, "{wakes} wake-ups for {calls} calls over {polls} polls");
        wait_for("dormant once calls stop", || t.shared.dormant.load(Ordering::SeqCst));
    }
}
