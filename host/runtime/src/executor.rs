//! The plugin executor: the threads on which the request path's plugin calls
//! run (transforms, tokenizer, router, sampler session set-up, response
//! filters).
//!
//! Why: a plugin call is synchronous guest code under an epoch deadline, and
//! wasmtime-wasi's sync bindings enter a tokio runtime of their own. On an
//! async worker thread the first would stall every connection that worker
//! serves for up to the deadline, and the second panics ("Cannot start a
//! runtime from within a runtime"). So the server never calls a plugin on a
//! tokio worker: it hands the call here and awaits the answer.
//!
//! Invariants: a fixed number of threads (sized to the machine), a bounded
//! queue (a full queue refuses work instead of growing), weighted fairness
//! between tenants (stride scheduling: each job taken advances its tenant's
//! pass by 1/weight and the lowest pass goes next, so a tenant of weight 2
//! gets two jobs run for every one of a tenant of weight 1 while both wait,
//! and one tenant's burst waits behind itself, not in front of others), and a
//! job that panics is reported as an error, never takes the thread down.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// Why the executor did not run a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Every queue slot is taken: the caller should answer "busy" (429/503).
    #[error("the plugin executor's queue is full ({0} jobs waiting)")]
    Busy(usize),
    /// The job panicked (a host bug around the call: guest traps are errors, not panics).
    #[error("plugin call panicked in the host: {0}")]
    Panicked(String),
    #[error("the plugin executor is shut down")]
    Shutdown,
}

/// A tenant's relative share of the executor (> 0); see [`PluginExecutor::with_weights`].
pub type Weights = Arc<dyn Fn(&str) -> f64 + Send + Sync>;

/// One tenant's waiting jobs and its place in the stride order.
struct TenantQueue {
    jobs: VecDeque<Job>,
    pass: f64,
    /// Order of activation: breaks ties in `pass`, so equal weights alternate.
    seq: u64,
}

#[derive(Default)]
struct Queues {
    /// Tenants with waiting jobs ("" for the open server).
    by_tenant: HashMap<Arc<str>, TenantQueue>,
    /// The pass of the last job taken: a tenant that becomes active starts
    /// here, so time spent idle is not banked as credit.
    vtime: f64,
    next_seq: u64,
    queued: usize,
}

impl Queues {
    fn pop(&mut self, weight: &dyn Fn(&str) -> f64) -> Option<Job> {
        let (tenant, _) = self.by_tenant.iter().min_by(|a, b| {
            (a.1.pass, a.1.seq).partial_cmp(&(b.1.pass, b.1.seq)).unwrap_or(std::cmp::Ordering::Equal)
        })?;
        let tenant = tenant.clone();
        let q = self.by_tenant.get_mut(&tenant).expect("just found");
        let job = q.jobs.pop_front().expect("a tenant in the map has a job");
        self.vtime = q.pass;
        q.pass += 1.0 / weight(&tenant).max(1e-3);
        if q.jobs.is_empty() {
            self.by_tenant.remove(&tenant);
        }
        self.queued -= 1;
        Some(job)
    }
}

struct Inner {
    q: Mutex<Queues>,
    cv: Condvar,
    max_queued: usize,
    threads: usize,
    weights: Weights,
}

/// A fixed pool of threads running plugin calls, fair between tenants.
#[derive(Clone)]
pub struct PluginExecutor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginExecutor").field("threads", &self.inner.threads).finish_non_exhaustive()
    }
}

impl PluginExecutor {
    /// `threads` workers (at least 1) and room for `max_queued` waiting jobs.
    pub fn new(threads: usize, max_queued: usize) -> Self {
        Self::with_weights(threads, max_queued, Arc::new(|_| 1.0))
    }

    /// As [`PluginExecutor::new`], with tenants weighted by `weights` (read each time a job is taken, so
    /// a reload that changes a weight applies at once).
    pub fn with_weights(threads: usize, max_queued: usize, weights: Weights) -> Self {
        let threads = threads.max(1);
        let inner = Arc::new(Inner {
            q: Mutex::default(),
            cv: Condvar::new(),
            max_queued: max_queued.max(1),
            threads,
            weights,
        });
        for i in 0..threads {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("weft-plugin-{i}"))
                .spawn(move || worker(&inner))
                .expect("spawn a plugin executor thread");
        }
        Self { inner }
    }

    /// Two threads per core: a call that spins to its deadline holds one
    /// thread, and the machine still has a thread per core for everyone else.
    pub fn for_machine(weights: Weights) -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self::with_weights(cores * 2, 4096, weights)
    }

    /// Jobs waiting for a thread now.
    pub fn queued(&self) -> usize {
        self.inner.q.lock().map(|q| q.queued).unwrap_or(0)
    }

    /// Queues `f` for `tenant` without waiting for it.
    pub fn spawn(&self, tenant: &str, f: impl FnOnce() + Send + 'static) -> Result<(), ExecError> {
        let mut q = self.inner.q.lock().map_err(|_| ExecError::Shutdown)?;
        if q.queued >= self.inner.max_queued {
            return Err(ExecError::Busy(q.queued));
        }
        let (vtime, seq) = (q.vtime, q.next_seq);
        let queue = match q.by_tenant.get_mut(tenant) {
            Some(queue) => queue,
            None => {
                q.next_seq += 1;
                q.by_tenant.entry(Arc::from(tenant)).or_insert(TenantQueue { jobs: VecDeque::new(), pass: vtime, seq })
            }
        };
        queue.jobs.push_back(Box::new(f));
        q.queued += 1;
        drop(q);
        self.inner.cv.notify_one();
        Ok(())
    }

    /// Runs `f` on an executor thread for `tenant` and awaits its result.
    pub async fn run<T: Send + 'static>(
        &self,
        tenant: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.spawn(tenant, move || {
            let _ = tx.send(catching(f));
        })?;
        rx.await.map_err(|_| ExecError::Shutdown)?
    }
}

/// Runs `f`, turning a panic into [`ExecError::Panicked`] with its message.
fn catching<T>(f: impl FnOnce() -> T) -> Result<T, ExecError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let text = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
        ExecError::Panicked(text.unwrap_or_else(|| "unknown panic".into()))
    })
}

/// Niceness of executor threads: the engine's forward pass comes first.
const EXECUTOR_NICE: i32 = 5;

fn worker(inner: &Inner) {
    weft_engine::sampling::pool::lower_thread_priority(EXECUTOR_NICE);
    loop {
        let job = {
            let Ok(mut q) = inner.q.lock() else { return };
            loop {
                if let Some(job) = q.pop(&*inner.weights) {
                    break job;
                }
                q = match inner.cv.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
        };
        // Jobs from `run` catch their own panics; this guards `spawn`ed ones.
        let _ = catching(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// `run` for a test thread: waits for `f`'s result.
    fn run_blocking<T: Send + 'static>(
        ex: &PluginExecutor,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExecError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        ex.spawn("a", move || {
            let _ = tx.send(catching(f));
        })?;
        rx.recv().map_err(|_| ExecError::Shutdown)?
    }

    /// Occupies the executor's one thread until the returned sender is used.
    fn hold(ex: &PluginExecutor) -> std::sync::mpsc::Sender<()> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        ex.spawn("x", move || {
            let _ = rx.recv();
        })
        .unwrap();
        tx
    }

    #[test]
    fn tenants_are_served_round_robin() {
        // One thread, held busy while both tenants queue, so the order is the executor's choice.
        let ex = PluginExecutor::new(1, 100);
        let hold_tx = hold(&ex);
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..6 {
            let o = order.clone();
            ex.spawn("flood", move || o.lock().unwrap().push(format!("flood{i}"))).unwrap();
        }
        for i in 0..2 {
            let o = order.clone();
            ex.spawn("quiet", move || o.lock().unwrap().push(format!("quiet{i}"))).unwrap();
        }
        hold_tx.send(()).unwrap();
        while order.lock().unwrap().len() < 8 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let order = order.lock().unwrap().clone();
        let pos = |s: &str| order.iter().position(|x| x == s).unwrap();
        assert!(pos("quiet0") <= 1 && pos("quiet1") <= 3, "the quiet tenant does not wait behind the flood: {order:?}");
    }

    #[test]
    fn weights_share_the_threads_in_proportion() {
        let ex = PluginExecutor::with_weights(1, 100, Arc::new(|t: &str| if t == "heavy" { 3.0 } else { 1.0 }));
        let hold_tx = hold(&ex);
        std::thread::sleep(Duration::from_millis(50)); // the worker takes the blocker
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..12 {
            for t in ["heavy", "light"] {
                let o = order.clone();
                ex.spawn(t, move || o.lock().unwrap().push((t, i))).unwrap();
            }
        }
        hold_tx.send(()).unwrap();
        while order.lock().unwrap().len() < 24 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let order = order.lock().unwrap().clone();
        // While both wait, heavy runs three jobs for each of light's.
        let heavy_in_first_12 = order[..12].iter().filter(|(t, _)| *t == "heavy").count();
        assert_eq!(heavy_in_first_12, 9, "{order:?}");
        // Each tenant's own jobs keep their order.
        for t in ["heavy", "light"] {
            let mine: Vec<i32> = order.iter().filter(|(x, _)| *x == t).map(|(_, i)| *i).collect();
            assert_eq!(mine, (0..12).collect::<Vec<_>>());
        }
    }

    #[test]
    fn full_queue_refuses_and_panics_are_errors() {
        let ex = PluginExecutor::new(1, 2);
        let hold_tx = hold(&ex);
        std::thread::sleep(Duration::from_millis(50)); // the worker takes the blocker
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let r = ran.clone();
            ex.spawn("a", move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        assert_eq!(ex.spawn("a", || ()), Err(ExecError::Busy(2)));
        hold_tx.send(()).unwrap();
        while ex.queued() > 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let e = run_blocking(&ex, || panic!("boom")).unwrap_err();
        assert_eq!(e, ExecError::Panicked("boom".into()));
        assert_eq!(run_blocking(&ex, || 7).unwrap(), 7, "the thread survived the panic");
        assert_eq!(ran.load(Ordering::SeqCst), 2);
    }
}
