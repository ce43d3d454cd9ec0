//! The engine's compute team: one thread per core that splits each kernel's
//! tasks with the engine thread, spinning between kernels while a step runs.
//!
//! Why not rayon: at one stream a projection is 5-25 µs of work (a few
//! hundred KB of 4-bit weights), about what waking a parked thread costs. A
//! rayon worker parks between kernels, so by the time it is awake the engine
//! thread has done the whole matmul alone, and batch-1 decode ran on one core.
//! The team's helpers busy-wait while the engine marks a step active (as
//! llama.cpp's threads do during a graph), and park otherwise, so an idle
//! server burns nothing.
//!
//! Invariants: a job lives on its caller's stack and [`for_each`] does not
//! return until every task of it has finished; a helper claims a task only by
//! a compare-and-swap on `(epoch, next index)`, so it can never run a task of
//! a job that is over. Outside a team (tests, tools) [`for_each`] uses rayon.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

type Task<'a> = &'a (dyn Fn(usize) + Sync);

struct Shared {
    /// High 32 bits: job epoch; low 32 bits: next unclaimed task.
    counter: AtomicU64,
    /// Tasks in the current job.
    tasks: AtomicUsize,
    /// Tasks of the current job that have finished.
    done: AtomicUsize,
    /// The current job's closure: a pointer to a `Task` on the caller's stack.
    job: AtomicPtr<Task<'static>>,
    /// Helpers spin (rather than park) while set.
    active: AtomicBool,
    panicked: AtomicBool,
    shutdown: AtomicBool,
}

/// Helper threads plus the thread that installs the team.
pub struct Team {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<()>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
    /// Set while this thread runs a job, so a nested call runs serially.
    static BUSY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Team {
    /// `threads` in all, counting the caller: `threads - 1` helpers.
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            counter: AtomicU64::new(0),
            tasks: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
        });
        let helpers = (1..threads.max(1))
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("weft-compute-{i}"))
                    .spawn(move || helper(&s))
                    .expect("spawn a compute thread")
            })
            .collect();
        Self { shared, helpers }
    }

    /// One thread per core.
    pub fn for_machine() -> Self {
        Self::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
    }

    /// Makes this team the one [`for_each`] uses on the calling thread.
    pub fn install(&self) {
        CURRENT.with(|c| *c.borrow_mut() = Some(self.shared.clone()));
    }

    /// Keeps the helpers spinning until the guard drops (one engine step).
    pub fn active(&self) -> Active<'_> {
        self.shared.active.store(true, Ordering::Release);
        for h in &self.helpers {
            h.thread().unpark();
        }
        Active(self)
    }
}

/// While alive, the team's helpers wait for work by spinning.
pub struct Active<'a>(&'a Team);

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.shared.active.store(false, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        for h in self.helpers.drain(..) {
            h.thread().unpark();
            let _ = h.join();
        }
        CURRENT.with(|c| {
            let mut c = c.borrow_mut();
            if c.as_ref().is_some_and(|s| Arc::ptr_eq(s, &self.shared)) {
                *c = None;
            }
        });
    }
}

/// Runs `f(0..n)` across the calling thread's team (when one is installed
/// and active), otherwise across rayon's pool.
pub fn for_each(n: usize, f: impl Fn(usize) + Sync) {
    let team = CURRENT.with(|c| c.borrow().clone());
    match team {
        Some(s) if n > 1 && s.active.load(Ordering::Acquire) && !BUSY.get() => {
            BUSY.set(true);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&s, n, &f)));
            BUSY.set(false);
            if let Err(p) = r {
                std::panic::resume_unwind(p);
            }
        }
        Some(_) => (0..n).for_each(f),
        None => {
            use rayon::prelude::*;
            (0..n).into_par_iter().for_each(&f)
        }
    }
}

fn run(s: &Shared, n: usize, f: Task<'_>) {
    // SAFETY (lifetime erasure): helpers dereference `job` only for a task
    // they claimed in this epoch, and this function returns only after every
    // task of the epoch has finished, so `f` outlives every use.
    let job: Task<'static> = unsafe { std::mem::transmute::<Task<'_>, Task<'static>>(f) };
    let slot = &job as *const Task<'static> as *mut Task<'static>;
    s.job.store(slot, Ordering::Relaxed);
    s.tasks.store(n, Ordering::Relaxed);
    s.done.store(0, Ordering::Relaxed);
    let epoch = (s.counter.load(Ordering::Relaxed) >> 32).wrapping_add(1) & 0xffff_ffff;
    s.counter.store(epoch << 32, Ordering::Release);
    work(s, epoch);
    while s.done.load(Ordering::Acquire) < n {
        std::hint::spin_loop();
    }
    if s.panicked.swap(false, Ordering::AcqRel) {
        panic!("a compute task panicked");
    }
}

/// Claims and runs tasks of `epoch` until none is left.
fn work(s: &Shared, epoch: u64) {
    loop {
        let c = s.counter.load(Ordering::Acquire);
        let i = (c & 0xffff_ffff) as usize;
        if c >> 32 != epoch || i >= s.tasks.load(Ordering::Relaxed) {
            return;
        }
        let job = s.job.load(Ordering::Relaxed);
        if s.counter.compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            continue;
        }
        // SAFETY: the claim succeeded in `epoch`, whose caller is still waiting for this task.
        let f = unsafe { *job };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_err() {
            s.panicked.store(true, Ordering::Release);
        }
        s.done.fetch_add(1, Ordering::AcqRel);
    }
}

fn helper(s: &Shared) {
    let mut seen = 0u64;
    let mut idle = 0u32;
    while !s.shutdown.load(Ordering::Acquire) {
        let epoch = s.counter.load(Ordering::Acquire) >> 32;
        if epoch != seen {
            seen = epoch;
            idle = 0;
            work(s, epoch);
        } else if s.active.load(Ordering::Acquire) {
            std::hint::spin_loop();
            idle = idle.wrapping_add(1);
            if idle.is_multiple_of(4096) {
                // Another runnable thread on this core (a sampler, the HTTP
                // server) gets its turn; with none, this returns at once.
                std::thread::yield_now();
            }
        } else {
            std::thread::park_timeout(std::time::Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_once_with_and_without_a_team() {
        let team = Team::new(3);
        team.install();
        for active in [true, false] {
            let _a = active.then(|| team.active());
            for n in [0, 1, 2, 7, 100] {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    for_each(n, |i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                }
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 50));
            }
        }
        drop(team);
        let hits = AtomicUsize::new(0);
        for_each(10, |_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn a_panicking_task_panics_the_caller_and_the_team_goes_on() {
        let team = Team::new(2);
        team.install();
        let _a = team.active();
        let r = std::panic::catch_unwind(|| for_each(8, |i| assert!(i != 5)));
        assert!(r.is_err());
        let hits = AtomicUsize::new(0);
        for_each(8, |_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.load(Ordering::Relaxed), 8);
    }
}
