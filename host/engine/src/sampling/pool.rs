//! The sampling pool: where samplers that run code the engine does not
//! control (plugins, see [`SequenceSampler::is_external`]) do their work.
//!
//! Why: such a sampler may take up to its own deadline on every step. Run
//! inside the step, the slowest sequence's sampler would set the pace of the
//! whole batch, so one tenant's slow policy would slow everyone. Here each job
//! owns everything it touches (the sampler, a copy of its logits row, the
//! token history), the step waits for the jobs only up to its budget, and a
//! job that is late is collected by a later step: that one sequence waits, the
//! batch goes on.
//!
//! Two lanes, each with a thread per core: sequences whose sampler has been on
//! time use the fast lane; a sequence whose sampler missed a step's budget
//! uses the slow lane until it is on time again, so slow samplers queue behind
//! each other, never in front of the punctual ones.
//!
//! Invariants: a sampler is owned by exactly one place at a time (the
//! sequence, or a job in flight); every external sampler is dropped on a pool
//! thread (its drop may run guest code too); pool threads run at a lower CPU
//! priority than the engine (the slow lane lower still), so a sampler that
//! burns its whole deadline takes a core from the forward pass only when the
//! machine has one to spare.

use std::sync::mpsc::{self, Receiver, Sender};

use super::{History, Sampled, SamplerError, SequenceSampler, TokenLogprob, logprobs};

/// One row's sampling, owned by the job.
pub struct SampleJob {
    pub id: u64,
    pub sampler: Box<dyn SequenceSampler>,
    pub logits: Vec<f32>,
    /// Prompt followed by the generated tokens.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    pub logprobs: Option<usize>,
}

/// A finished job: the sampler comes back with the result.
pub struct SampleDone {
    pub id: u64,
    pub sampler: Box<dyn SequenceSampler>,
    pub result: Result<Sampled, SamplerError>,
    /// The row's buffer, for reuse.
    pub logits: Vec<f32>,
    /// How long the sampler took.
    pub took: std::time::Duration,
}

enum Work {
    Sample(SampleJob),
    Dispose(Box<dyn SequenceSampler>),
}

/// Threads that run external samplers; results come back on [`SamplingPool::results`].
pub struct SamplingPool {
    per_lane: usize,
    fast: Option<crossbeam_channel::Sender<Work>>,
    slow: Option<crossbeam_channel::Sender<Work>>,
    results: Receiver<SampleDone>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Niceness of the lanes' threads: the forward pass comes first.
const FAST_NICE: i32 = 5;
const SLOW_NICE: i32 = 15;

impl SamplingPool {
    /// One thread per core.
    pub fn for_machine() -> Self {
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self::with_threads(n)
    }

    /// `n` threads per lane.
    pub fn with_threads(n: usize) -> Self {
        let (done_tx, results) = mpsc::channel();
        let mut threads = Vec::new();
        let mut lane = |name: &str, nice: i32| {
            // Many receivers, and a job wakes exactly one of them (a receiver
            // shared behind a mutex woke two: the taker, then the next waiter).
            let (tx, rx) = crossbeam_channel::unbounded::<Work>();
            for i in 0..n.max(1) {
                let (rx, done_tx) = (rx.clone(), done_tx.clone());
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("weft-sample-{name}-{i}"))
                        .spawn(move || worker(&rx, &done_tx, nice))
                        .expect("spawn a sampling thread"),
                );
            }
            tx
        };
        let fast = lane("fast", FAST_NICE);
        let slow = lane("slow", SLOW_NICE);
        Self { per_lane: n.max(1), fast: Some(fast), slow: Some(slow), results, threads }
    }

    /// Threads in each lane: how many jobs run at once.
    pub fn threads_per_lane(&self) -> usize {
        self.per_lane
    }

    /// Starts a job on the fast lane, or the slow one for a sequence known to
    /// be late; its result arrives on [`Self::results`].
    pub fn submit(&self, job: SampleJob, late: bool) {
        let lane = if late { &self.slow } else { &self.fast };
        if let Some(tx) = lane {
            let _ = tx.send(Work::Sample(job));
        }
    }

    /// Drops a sampler on a (slow-lane) pool thread.
    pub fn dispose(&self, sampler: Box<dyn SequenceSampler>) {
        if let Some(tx) = &self.slow {
            let _ = tx.send(Work::Dispose(sampler));
        }
    }

    pub fn results(&self) -> &Receiver<SampleDone> {
        &self.results
    }
}

impl Drop for SamplingPool {
    fn drop(&mut self) {
        self.fast = None;
        self.slow = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Lowers the calling thread's CPU priority to `nice` (Linux; elsewhere a no-op).
pub fn lower_thread_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread; a failure only leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

fn worker(rx: &crossbeam_channel::Receiver<Work>, done: &Sender<SampleDone>, nice: i32) {
    lower_thread_priority(nice);
    loop {
        match rx.recv() {
            Ok(Work::Sample(job)) => {
                let _ = done.send(run(job));
            }
            Ok(Work::Dispose(s)) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(s)));
            }
            Err(_) => return,
        }
    }
}

/// Samples one row the way the step does: log-probabilities from the raw row, then the sampler.
pub fn sample_row(
    sampler: &mut dyn SequenceSampler,
    logits: &mut [f32],
    history: History<'_>,
    want_logprobs: Option<usize>,
) -> Result<Sampled, SamplerError> {
    let lp = want_logprobs.map(|n| {
        let raw = logprobs::RawLogprobs::new(logits);
        let top = raw.top(n);
        (raw, top)
    });
    let token = sampler.sample(logits, history)?;
    let accept = sampler.accept(token)?;
    let logprob = lp.map(|(raw, top)| TokenLogprob { token, logprob: raw.of(token), top });
    Ok(Sampled { token, logprob, accept })
}

fn run(mut job: SampleJob) -> SampleDone {
    let t0 = std::time::Instant::now();
    let SampleJob { id, ref mut sampler, ref mut logits, ref tokens, prompt_len, logprobs } = job;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let history = History { prompt: &tokens[..prompt_len], output: &tokens[prompt_len..] };
        sample_row(sampler.as_mut(), logits, history, logprobs)
    }))
    .unwrap_or_else(|_| Err(SamplerError::new("panic", "sampler panicked")));
    SampleDone { id, sampler: job.sampler, result, logits: job.logits, took: t0.elapsed() }
}

#[cfg(test)]
mod tests {
    use super::super::Accept;
    use super::*;
    use std::time::Duration;

    struct Slow(Duration, u32);
    impl SequenceSampler for Slow {
        fn sample(&mut self, _l: &mut [f32], _h: History<'_>) -> Result<u32, SamplerError> {
            std::thread::sleep(self.0);
            Ok(self.1)
        }
        fn accept(&mut self, _t: u32) -> Result<Accept, SamplerError> {
            Ok(Accept::Continue)
        }
    }

    /// A job whose sampler takes `d`, then picks `token`.
    fn job(id: u64, d: Duration, token: u32) -> SampleJob {
        SampleJob {
            id,
            sampler: Box::new(Slow(d, token)),
            logits: vec![0.0; 4],
            tokens: vec![1, 2],
            prompt_len: 1,
            logprobs: None,
        }
    }

    #[test]
    fn slow_jobs_do_not_hold_fast_ones() {
        let pool = SamplingPool::with_threads(2);
        pool.submit(job(1, Duration::from_millis(300), 3), false);
        pool.submit(job(2, Duration::ZERO, 2), false);
        let first = pool.results().recv().unwrap();
        assert_eq!(first.id, 2, "the fast row comes back first");
        assert_eq!(first.result.unwrap().token, 2);
        let second = pool.results().recv().unwrap();
        assert_eq!((second.id, second.result.unwrap().token), (1, 3));
    }

    #[test]
    fn late_jobs_use_their_own_lane() {
        // One thread per lane: a slow job on the slow lane cannot delay the fast lane.
        let pool = SamplingPool::with_threads(1);
        pool.submit(job(1, Duration::from_millis(300), 3), true);
        pool.submit(job(2, Duration::from_millis(300), 3), true);
        pool.submit(job(3, Duration::ZERO, 2), false);
        assert_eq!(pool.results().recv().unwrap().id, 3);
    }
}
