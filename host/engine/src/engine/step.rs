//! The step loop: intake, cancellation, schedule, forward, sample, emit.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use super::{Command, EngineMetrics, Event, FinishReason, ModelInfo, Request, Usage};
use crate::error::EngineError;
use crate::kv::KvStore;
use crate::model::{ForwardBatch, LlamaModel};
use crate::sampling::{self, Accept, History, NativeSampler, SampleRow, SequenceSampler};
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
}

impl StepLoop {
    pub(super) fn new(
        model: LlamaModel,
        kv: KvStore,
        sched: Scheduler,
        info: Arc<ModelInfo>,
        metrics: Arc<Mutex<EngineMetrics>>,
        rx: Receiver<Command>,
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
        }
    }

    pub(super) fn run(mut self) {
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
            if !self.sched.is_idle() {
                self.step();
            }
            self.publish();
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Add { id, req, tx } => self.add(id, req, tx),
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
        let Request { prompt, params, max_tokens, stop_token_ids, ignore_eos, logprobs, priority, tenant, sampler } =
            req;
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
        self.sched.add(id, tenant, priority, prompt);
    }

    fn drop_cancelled(&mut self) {
        let gone: Vec<SeqId> = self.live.iter().filter(|(_, l)| l.tx.is_closed()).map(|(id, _)| *id).collect();
        for id in gone {
            self.live.remove(&id);
            self.sched.remove(id);
            self.counters.cancelled += 1;
        }
    }

    fn finish(&mut self, id: SeqId, reason: FinishReason) {
        let Some(live) = self.live.remove(&id) else { return };
        let seq = self.sched.remove(id);
        let usage = Usage {
            prompt_tokens: seq.as_ref().map_or(0, |s| s.prompt_len),
            cached_prompt_tokens: seq.as_ref().and_then(|s| s.cached_prompt_tokens).unwrap_or(0),
            completion_tokens: live.generated,
        };
        let _ = live.tx.send(Event::Finished { reason, usage });
        self.counters.finished += 1;
    }

    fn fail(&mut self, id: SeqId, err: EngineError) {
        if let Some(live) = self.live.remove(&id) {
            let _ = live.tx.send(Event::Error(err));
        }
        self.sched.remove(id);
    }

    fn step(&mut self) {
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
            return;
        }

        let mut batch = ForwardBatch::default();
        for sc in &plan.scheduled {
            let seq = self.sched.get(sc.id).expect("scheduled sequence exists");
            batch.push(
                &seq.tokens[sc.start..sc.start + sc.len],
                sc.start,
                seq.block_table.clone(),
                sc.want_logits,
            );
            if sc.start < seq.prompt_len {
                self.counters.prefill_tokens += (sc.start + sc.len).min(seq.prompt_len) as u64 - sc.start as u64;
            }
        }
        // A panic in the forward pass (a kernel bug, an impossible shape) fails
        // this step's sequences; the engine keeps serving the rest.
        let forward = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.model.forward(&batch, &mut self.kv)))
            .unwrap_or_else(|p| {
                let what = p.downcast_ref::<&str>().map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(EngineError::Forward(format!("internal error: {what}")))
            });
        let mut logits = match forward {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "forward pass failed; failing the step's sequences");
                for sc in &plan.scheduled {
                    self.fail(sc.id, EngineError::Forward(e.to_string()));
                }
                return;
            }
        };
        for sc in &plan.scheduled {
            self.sched.complete(sc);
        }

        let want: Vec<SeqId> = plan.scheduled.iter().filter(|s| s.want_logits).map(|s| s.id).collect();
        let vocab = self.info.config.vocab_size;
        let mut samplers: Vec<Box<dyn SequenceSampler>> = want
            .iter()
            .map(|id| self.live.get_mut(id).and_then(|l| l.sampler.take()).expect("live sampler"))
            .collect();
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut rows: Vec<SampleRow<'_>> = Vec::with_capacity(want.len());
            for ((id, sampler), chunk) in want.iter().zip(samplers.iter_mut()).zip(logits.chunks_exact_mut(vocab)) {
                let seq = self.sched.get(*id).expect("sequence exists");
                rows.push(SampleRow {
                    sampler: sampler.as_mut(),
                    logits: chunk,
                    history: History { prompt: &seq.tokens[..seq.prompt_len], output: &seq.tokens[seq.prompt_len..] },
                    logprobs: self.live[id].logprobs,
                });
            }
            sampling::sample_step(&mut rows)
        }))
        .unwrap_or_else(|_| {
            want.iter().map(|_| Err(sampling::SamplerError::new("panic", "sampler panicked"))).collect()
        });
        for (id, s) in want.iter().zip(samplers) {
            if let Some(l) = self.live.get_mut(id) {
                l.sampler = Some(s);
            }
        }

        for (id, res) in want.into_iter().zip(results) {
            let sampled = match res {
                Ok(s) => s,
                Err(e) => {
                    self.fail(id, EngineError::Sampler(e.to_string()));
                    continue;
                }
            };
            if sampled.token as usize >= vocab {
                self.fail(id, EngineError::Sampler(format!("token {} is outside the vocabulary", sampled.token)));
                continue;
            }
            let live = self.live.get_mut(&id).expect("live sequence");
            live.generated += 1;
            self.counters.generation_tokens += 1;
            let is_eos = !live.ignore_eos && self.info.eos_token_ids.contains(&sampled.token);
            if is_eos || live.stop_token_ids.contains(&sampled.token) {
                self.finish(id, FinishReason::Stop);
                continue;
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
        let dt = t0.elapsed().as_secs_f64();
        self.counters.steps += 1;
        self.counters.last_step_secs = dt;
        self.counters.total_step_secs += dt;
    }

    fn publish(&mut self) {
        self.counters.running = self.sched.num_running();
        self.counters.waiting = self.sched.num_waiting();
        self.counters.kv = self.sched.kv_stats();
        self.counters.preemptions = self.sched.preemptions();
        if let Ok(mut m) = self.metrics.lock() {
            *m = self.counters.clone();
        }
    }
}
