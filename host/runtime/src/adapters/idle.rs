//! Idle plugin instances kept for reuse, bounded three ways: a count per
//! adapter, a memory budget shared by every adapter of a runtime, and an idle
//! time after which an instance is dropped even if nothing asks for it.
//!
//! Reuse is what makes plugins cheap (a warm sampler keeps its token trie, a
//! tokenizer its tables), but every idle instance keeps its linear memory
//! resident. With many tenants, each with its own copy of every plugin, an
//! unbounded pool would hold memory for traffic long gone. The invariant kept
//! here: the bytes of linear memory held by idle instances never exceed the
//! runtime's budget, and no instance stays idle past the idle time plus one
//! sweep period.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;

use crate::state::HostState;

/// How often idle lists are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Something kept idle: knows how much linear memory it holds.
pub(crate) trait Idle: Send + 'static {
    fn memory_bytes(&self) -> usize;
}

impl<B: Send + 'static> Idle for (Store<HostState>, B) {
    fn memory_bytes(&self) -> usize {
        self.0.data().limiter.bytes
    }
}

trait Sweep: Send + Sync {
    fn sweep(&self, now: Instant);
}

/// The runtime-wide budget: idle bytes held, the cap, and the idle time.
pub struct IdleBudget {
    max_bytes: usize,
    ttl: Duration,
    bytes: AtomicUsize,
    lists: Mutex<Vec<Weak<dyn Sweep>>>,
}

impl IdleBudget {
    /// A budget, with a thread that sweeps its lists until the budget is dropped.
    pub fn new(max_bytes: usize, ttl: Duration) -> Arc<Self> {
        let b = Arc::new(Self { max_bytes, ttl, bytes: AtomicUsize::new(0), lists: Mutex::new(Vec::new()) });
        let weak = Arc::downgrade(&b);
        let _ = std::thread::Builder::new().name("weft-plugin-idle".into()).spawn(move || {
            loop {
                std::thread::sleep(SWEEP_EVERY);
                let Some(b) = weak.upgrade() else { return };
                b.sweep();
            }
        });
        b
    }

    /// Bytes of linear memory idle instances hold right now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn sweep(&self) {
        let now = Instant::now();
        let lists: Vec<Arc<dyn Sweep>> = {
            let mut l = self.lists.lock().unwrap_or_else(|e| e.into_inner());
            l.retain(|w| w.strong_count() > 0);
            l.iter().filter_map(Weak::upgrade).collect()
        };
        for l in lists {
            l.sweep(now);
        }
    }

    fn try_add(&self, n: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| (b + n <= self.max_bytes).then_some(b + n))
            .is_ok()
    }

    fn sub(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One adapter's idle instances, most recently used last.
pub(crate) struct IdleList<T: Idle> {
    budget: Arc<IdleBudget>,
    max: usize,
    items: Mutex<VecDeque<(T, Instant, usize)>>,
}

impl<T: Idle> IdleList<T> {
    pub(crate) fn new(budget: &Arc<IdleBudget>, max: usize) -> Arc<Self> {
        let l = Arc::new(Self { budget: budget.clone(), max, items: Mutex::new(VecDeque::new()) });
        let weak: Weak<dyn Sweep> = Arc::downgrade(&l) as Weak<dyn Sweep>;
        budget.lists.lock().unwrap_or_else(|e| e.into_inner()).push(weak);
        l
    }

    /// The most recently used idle instance (the one whose memory is likeliest in cache).
    pub(crate) fn take(&self) -> Option<T> {
        let (t, _, bytes) = self.items.lock().ok()?.pop_back()?;
        self.budget.sub(bytes);
        Some(t)
    }

    /// Keeps `t` for reuse if the count and the memory budget allow; else drops it.
    pub(crate) fn give(&self, t: T) {
        let Ok(mut items) = self.items.lock() else { return };
        if items.len() >= self.max {
            return;
        }
        let bytes = t.memory_bytes();
        if self.budget.try_add(bytes) {
            items.push_back((t, Instant::now(), bytes));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.items.lock().map(|i| i.len()).unwrap_or(0)
    }
}

impl<T: Idle> Sweep for IdleList<T> {
    fn sweep(&self, now: Instant) {
        let expired: Vec<(T, Instant, usize)> = {
            let Ok(mut items) = self.items.lock() else { return };
            let keep_from = items.iter().position(|(_, at, _)| now.duration_since(*at) < self.budget.ttl);
            let n = keep_from.unwrap_or(items.len());
            items.drain(..n).collect()
        };
        // Dropped outside the lock: freeing a store is not free.
        for (_, _, bytes) in expired {
            self.budget.sub(bytes);
        }
    }
}

impl<T: Idle> Drop for IdleList<T> {
    fn drop(&mut self) {
        if let Ok(items) = self.items.get_mut() {
            self.budget.sub(items.iter().map(|(_, _, b)| b).sum());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(usize);
    impl Idle for Fake {
        fn memory_bytes(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn bounded_by_count_and_shared_memory() {
        let b = IdleBudget::new(100, Duration::from_secs(60));
        let (x, y) = (IdleList::new(&b, 3), IdleList::new(&b, 3));
        for _ in 0..5 {
            x.give(Fake(20));
        }
        assert_eq!((x.len(), b.bytes()), (3, 60), "the count caps one list");
        y.give(Fake(30));
        y.give(Fake(30));
        assert_eq!((y.len(), b.bytes()), (1, 90), "the memory budget caps all lists together");
        assert_eq!(x.take().map(|f| f.0), Some(20));
        assert_eq!(b.bytes(), 70);
        drop(y);
        assert_eq!(b.bytes(), 40, "a dropped list gives its bytes back");
    }

    #[test]
    fn idle_instances_expire() {
        let b = IdleBudget::new(1000, Duration::from_millis(50));
        let l = IdleList::new(&b, 8);
        l.give(Fake(10));
        std::thread::sleep(Duration::from_millis(60));
        l.give(Fake(10));
        b.sweep();
        assert_eq!((l.len(), b.bytes()), (1, 10), "only the old one went");
        // The budget's own thread sweeps without anyone calling.
        let deadline = Instant::now() + Duration::from_secs(5);
        while l.len() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!((l.len(), b.bytes()), (0, 0));
    }
}
