//! The step loop: intake, cancellation, late samples, schedule, forward,
//! sample, emit.
//!
//! Sampling: native samplers run inside the step, in parallel. External
//! (plugin) samplers run on the sampling pool; the step waits for them up to
//! its budget, and a sequence whose sampler is later than that is left out of
//! the batch until its token comes back (its row is the job's own copy). A
//! sequence late once is not waited for again until it is on time, so a slow
//! policy costs the other sequences one budget at most, not its whole
//! duration on every step.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::{Command, EngineMetrics, Event, FinishReason, ModelInfo, Request, Usage};
use crate::error::EngineError;
use crate::kv::KvStore;
use crate::model::kernels::team::Team;
use crate::model::{ForwardBatch, LlamaModel};
use crate::sampling::pool::{SampleDone, SampleJob, SamplingPool};
use crate::sampling::{self, Accept, History, NativeSampler, SampleRow, Sampled, SamplerError, SequenceSampler};
use crate::scheduler::{Scheduler, SeqId};

/// Per-sequence data the scheduler does not need.
struct Live {
    tx: UnboundedSender<Event>,
    sampler: Option<Box<dyn SequenceSampler>>,
    max_tokens: usize,
    stop_token_ids: Vec<u32>,
    ignore_eos: bool,
    logprobs: Option<usize>,
    generated: usize,
}

pub(super) struct StepLoop {
    model: LlamaModel,
    kv: KvStore,
    sched: Scheduler,
    info: Arc<ModelInfo>,
    metrics: Arc<Mutex<EngineMetrics>>,
    rx: Receiver<Command>,
    live: HashMap<SeqId, Live>,
    counters: EngineMetrics,
    disconnected: bool,
    pool: SamplingPool,
    sample_budget: Duration,
    /// Sequences whose last external sample missed the budget: not waited for.
    late: HashSet<SeqId>,
    /// Sequences whose sampler is out on the pool now.
    out: HashSet<SeqId>,
    /// Running mean of punctual samplers' job times: how fast the pool drains
    /// a step's queue (see [`StepLoop::sample_deadline`]).
    sample_mean: Duration,
    /// Threads that split each kernel with this one during a forward pass.
    team: Team,
}

impl StepLoop {
    pub(super) fn new(
        model: LlamaModel,
        kv: KvStore,
        sched: Scheduler,
        info: Arc<ModelInfo>,
        metrics: Arc<Mutex<EngineMetrics>>,
        rx: Receiver<Command>,
        sample_budget: Duration,
    ) -> Self {
        Self {
            model,
            kv,
            sched,
            info,
            metrics,
            rx,
            live: HashMap::new(),
            counters: EngineMetrics::default(),
            disconnected: false,
            pool: SamplingPool::for_machine(),
            sample_budget,
            late: HashSet::new(),
            out: HashSet::new(),
            sample_mean: sample_budget / 10,
            team: Team::for_machine(),
        }
    }

    pub(super) fn run(mut self) {
        // `WEFT_TEAM=off`: kernels fork on rayon's pool instead (for comparison).
        if std::env::var("WEFT_TEAM").map(|v| v != "off").unwrap_or(true) {
            self.team.install();
        }
        loop {
            if self.sched.is_idle() {
                if self.disconnected {
                    return;
                }
                match self.rx.recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => return,
                }
            }
            loop {
                match self.rx.try_recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.disconnected = true;
                        break;
                    }
                }
            }
            self.drop_cancelled();
            self.collect_late();
            if !self.sched.is_idle() && !self.step() && !self.out.is_empty() {
                // Nothing to compute until a late sample returns: wait for one
                // (briefly, so new requests are still taken promptly).
                if let Ok(done) = self.pool.results().recv_timeout(Duration::from_millis(2)) {
                    self.take_done(done);
                }
            }
            self.publish();
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Add { id, req, tx } => self.add(id, *req, tx),
            Command::CheckIdle(reply) => {
                let live = self.live.len();
                let r = if live > 0 {
                    Err(format!("{live} sequences are live"))
                } else {
                    self.sched.block_manager().check_idle()
                };
                let _ = reply.send(r);
            }
        }
    }

    fn add(&mut self, id: SeqId, req: Request, tx: UnboundedSender<Event>) {
        let Request {
            prompt,
            params,
            max_tokens,
            stop_token_ids,
            ignore_eos,
            logprobs,
            priority,
            tenant,
            cache_salt,
            sampler,
        } = req;
        let room = self.info.max_context.saturating_sub(prompt.len());
        let sampler = sampler.unwrap_or_else(|| Box::new(NativeSampler::new(params)));
        self.counters.prompt_tokens += prompt.len() as u64;
        self.live.insert(
            id,
            Live {
                tx,
                sampler: Some(sampler),
                max_tokens: max_tokens.min(room),
                stop_token_ids,
                ignore_eos,
                logprobs: logprobs.map(|n| n.min(100)),
                generated: 0,
            },
        );
        self.sched.add_salted(id, tenant, priority, prompt, crate::kv::cache_root(&cache_salt));
    }

    fn drop_cancelled(&mut self) {
        let gone: Vec<SeqId> = self.live.iter().filter(|(_, l)| l.tx.is_closed()).map(|(id, _)| *id).collect();
        for id in gone {
            if let Some(l) = self.live.remove(&id) {
                self.release(l);
            }
            self.sched.remove(id);
            self.counters.cancelled += 1;
        }
    }

    /// Ends a sequence's bookkeeping; an external sampler is dropped on the
    /// pool (its drop runs plugin code), never on this thread.
    fn release(&mut self, mut live: Live) {
        if let Some(s) = live.sampler.take()
            && s.is_external()
        {
            self.pool.dispose(s);
        }
    }

    /// Takes the samples that came back since the last step.
    fn collect_late(&mut self) {
        while let Ok(done) = self.pool.results().try_recv() {
            self.take_done(done);
        }
    }

    /// A job came back: its sampler returns to the sequence and its token is applied.
    fn take_done(&mut self, done: SampleDone) {
        let SampleDone { id, sampler, result, took, .. } = done;
        self.out.remove(&id);
        if took <= self.sample_budget {
            self.late.remove(&id);
            self.sample_mean = (self.sample_mean * 7 + took) / 8;
        }
        match self.live.get_mut(&id) {
            Some(l) => l.sampler = Some(sampler),
            None => {
                self.pool.dispose(sampler);
                return;
            }
        }
        self.apply(id, result);
    }

    fn finish(&mut self, id: SeqId, reason: FinishReason) {
        let Some(live) = self.live.remove(&id) else { return };
        let generated = live.generated;
        let tx = live.tx.clone();
        self.release(live);
        let seq = self.sched.remove(id);
        let usage = Usage {
            prompt_tokens: seq.as_ref().map_or(0, |s| s.prompt_len),
            cached_prompt_tokens: seq.as_ref().and_then(|s| s.cached_prompt_tokens).unwrap_or(0),
            completion_tokens: generated,
        };
        let _ = tx.send(Event::Finished { reason, usage });
        self.counters.finished += 1;
    }

    fn fail(&mut self, id: SeqId, err: EngineError) {
        if let Some(live) = self.live.remove(&id) {
            let _ = live.tx.send(Event::Error(err));
            self.release(live);
        }
        self.sched.remove(id);
    }

    /// One step; false when nothing was scheduled.
    fn step(&mut self) -> bool {
        let t0 = Instant::now();
        let plan = self.sched.schedule();
        for &id in &plan.out_of_memory {
            self.finish(id, FinishReason::Length);
        }
        if plan.scheduled.is_empty() {
            if self.sched.num_running() == 0 && self.sched.num_waiting() > 0 {
                // Nothing runs and nothing can be admitted: the head can never fit.
                let ids: Vec<SeqId> = self.sched.ids().collect();
                for id in ids {
                    let cap = self.info.num_blocks;
                    self.fail(id, EngineError::KvCapacity { needed: cap + 1, capacity: cap });
                }
            }
            return false;
        }

        let mut batch = ForwardBatch::default();
        for sc in &plan.scheduled {
            let seq = self.sched.get(sc.id).expect("scheduled sequence exists");
            batch.push(&seq.tokens[sc.start..sc.start + sc.len], sc.start, seq.block_table.clone(), sc.want_logits);
            if sc.start < seq.prompt_len {
                self.counters.prefill_tokens += (sc.start + sc.len).min(seq.prompt_len) as u64 - sc.start as u64;
            }
        }
        // A panic in the forward pass (a kernel bug, an impossible shape) fails
        // this step's sequences; the engine keeps serving the rest.
        let active = self.team.active();
        let forward_t0 = Instant::now();
        let forward =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.model.forward(&batch, &mut self.kv)))
                .unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(EngineError::Forward(format!("internal error: {what}")))
                });
        drop(active);
        self.counters.forward_secs += forward_t0.elapsed().as_secs_f64();
        let mut logits = match forward {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "forward pass failed; failing the step's sequences");
                for sc in &plan.scheduled {
                    self.fail(sc.id, EngineError::Forward(e.to_string()));
                }
                return true;
            }
        };
        for sc in &plan.scheduled {
            self.sched.complete(sc);
        }

        let want: Vec<SeqId> = plan.scheduled.iter().filter(|s| s.want_logits).map(|s| s.id).collect();
        let vocab = self.info.config.vocab_size;
        // External samplers go to the pool first, so they run while the native ones do.
        let mut native: Vec<(SeqId, usize, Box<dyn SequenceSampler>)> = Vec::new();
        let mut submitted: Vec<SeqId> = Vec::new();
        for (row, id) in want.iter().enumerate() {
            // A sampler that is away (a late job) keeps its sequence's turn: its
            // token is the one that counts, and this row (a recomputation after
            // preemption) is dropped.
            let Some(sampler) = self.live.get_mut(id).and_then(|l| l.sampler.take()) else { continue };
            if sampler.is_external() {
                let seq = self.sched.get(*id).expect("scheduled sequence exists");
                let job = SampleJob {
                    id: *id,
                    sampler,
                    logits: logits[row * vocab..(row + 1) * vocab].to_vec(),
                    tokens: seq.tokens.clone(),
                    prompt_len: seq.prompt_len,
                    logprobs: self.live[id].logprobs,
                };
                self.pool.submit(job, self.late.contains(id));
                self.out.insert(*id);
                submitted.push(*id);
            } else {
                native.push((*id, row, sampler));
            }
        }
        let sample_t0 = Instant::now();

        let results = {
            let mut chunks: Vec<Option<&mut [f32]>> = logits.chunks_exact_mut(vocab).map(Some).collect();
            let sched = &self.sched;
            let live = &self.live;
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut rows: Vec<SampleRow<'_>> = Vec::with_capacity(native.len());
                for (id, row, sampler) in native.iter_mut() {
                    let seq = sched.get(*id).expect("sequence exists");
                    rows.push(SampleRow {
                        sampler: sampler.as_mut(),
                        logits: chunks[*row].take().expect("one row per sequence"),
                        history: History {
                            prompt: &seq.tokens[..seq.prompt_len],
                            output: &seq.tokens[seq.prompt_len..],
                        },
                        logprobs: live[id].logprobs,
                    });
                }
                sampling::sample_step(&mut rows)
            }))
            .unwrap_or_else(|_| native.iter().map(|_| Err(SamplerError::new("panic", "sampler panicked"))).collect())
        };
        let mut native_ids = Vec::with_capacity(native.len());
        for (id, _, s) in native {
            if let Some(l) = self.live.get_mut(&id) {
                l.sampler = Some(s);
            }
            native_ids.push(id);
        }
        for (id, res) in native_ids.into_iter().zip(results) {
            self.apply(id, res);
        }

        // Wait for the external samples of this step, up to the budget; a
        // sequence already known to be late is not waited for.
        let mut awaited: HashSet<SeqId> = submitted.iter().copied().filter(|id| !self.late.contains(id)).collect();
        let deadline = sample_t0 + self.sample_deadline(awaited.len());
        while !awaited.is_empty() {
            let now = Instant::now();
            let done = match self.pool.results().try_recv() {
                Ok(d) => d,
                Err(_) if now >= deadline => break,
                Err(_) => match self.pool.results().recv_timeout(deadline - now) {
                    Ok(d) => d,
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            awaited.remove(&done.id);
            self.take_done(done);
        }
        for id in submitted {
            if self.out.contains(&id) && self.late.insert(id) {
                self.counters.deferred_samples += 1;
            }
        }

        let dt = t0.elapsed().as_secs_f64();
        self.counters.steps += 1;
        self.counters.last_step_secs = dt;
        self.counters.total_step_secs += dt;
        true
    }

    /// How long a step waits for `jobs` external samples. The budget is each
    /// sampler's: with more jobs than pool threads, the last ones start only
    /// after the queue ahead of them drains (at the punctual samplers' mean
    /// pace), and a fixed budget for the whole step would call them late
    /// though each took a fraction of it. At 32 sequences on 2 threads that
    /// deferred 11% of all samples, each costing its sequence a step. A
    /// sampler that is slow still misses: the queue behind it drains on the
    /// other threads, and it gets the budget, no more.
    fn sample_deadline(&self, jobs: usize) -> Duration {
        let waves = jobs.div_ceil(self.pool.threads_per_lane()).saturating_sub(1) as u32;
        self.sample_budget + self.sample_mean * waves
    }

    /// Applies one sequence's sample: emits the token, or ends or fails the sequence.
    fn apply(&mut self, id: SeqId, res: Result<Sampled, SamplerError>) {
        let vocab = self.info.config.vocab_size;
        let sampled = match res {
            Ok(s) => s,
            Err(e) => {
                self.fail(id, EngineError::Sampler(e.to_string()));
                return;
            }
        };
        if sampled.token as usize >= vocab {
            self.fail(id, EngineError::Sampler(format!("token {} is outside the vocabulary", sampled.token)));
            return;
        }
        let Some(live) = self.live.get_mut(&id) else { return };
        live.generated += 1;
        self.counters.generation_tokens += 1;
        let is_eos = !live.ignore_eos && self.info.eos_token_ids.contains(&sampled.token);
        if is_eos || live.stop_token_ids.contains(&sampled.token) {
            self.finish(id, FinishReason::Stop);
            return;
        }
        let _ = live.tx.send(Event::Token { id: sampled.token, logprob: sampled.logprob });
        let done_len = live.generated >= live.max_tokens;
        self.sched.append_token(id, sampled.token);
        if sampled.accept == Accept::Stop {
            self.finish(id, FinishReason::Stop);
        } else if done_len {
            self.finish(id, FinishReason::Length);
        }
    }

    fn publish(&mut self) {
        self.counters.running = self.sched.num_running();
        self.counters.waiting = self.sched.num_waiting();
        self.counters.kv = self.sched.kv_stats();
        if self.counters.preemptions != self.sched.preemptions() {
            self.counters.preemptions_by_tenant =
                self.sched.preemptions_by_tenant().map(|(t, n)| (t.to_string(), n)).collect();
        }
        self.counters.preemptions = self.sched.preemptions();
        self.counters.fair_preemptions = self.sched.fair_preemptions();
        self.counters.sampling_late = self.out.len();
        if let Ok(mut m) = self.metrics.lock() {
            *m = self.counters.clone();
        }
    }
}
