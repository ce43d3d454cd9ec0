//! Running one API request: prompt → token ids → `n` engine sequences →
//! per-sequence streaming decode, stop strings and response filters → events.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use weft_engine::{Event, FinishReason, Request};
use weft_runtime::{ErrorKind, Output, PluginExecutor, TokenDecoder, ToolCall, TransformRequest, WasmResponseStream};

use super::error::{PipelineError, Stage};
use super::guard::Outcome;
use super::stage::{Fault, SessionArgs};
use super::stop::StopMatcher;
use super::{GenRequest, ModelService};
use crate::metrics::Latency;
use crate::metrics::ServerMetrics;

/// A token's log-probability with its alternatives, texts decoded.
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub token: String,
    pub bytes: Vec<u8>,
    pub logprob: f32,
    pub top: Vec<(String, Vec<u8>, f32)>,
}

/// What a choice produces while it runs.
#[derive(Debug)]
pub enum ChoiceEvent {
    Delta {
        index: usize,
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    /// A response filter (the tool format) turned the model's text into a call.
    ToolCall {
        index: usize,
        call: ToolCall,
    },
    Done {
        index: usize,
        finish_reason: &'static str,
        prompt_tokens: usize,
        cached_tokens: usize,
        completion_tokens: usize,
    },
    Failed(PipelineError),
}

/// Applies the request transforms (the chat template renders messages into a
/// prompt), each through its guard.
pub fn transform(svc: &ModelService, mut req: TransformRequest) -> Result<TransformRequest, PipelineError> {
    for t in &svc.transforms {
        match t.call(|s| s.on_request(&req))? {
            Outcome::Done(Ok(r)) => req = r,
            Outcome::Done(Err(rej)) => {
                return Err(PipelineError::Rejected {
                    stage: Stage::Transform,
                    status: rej.status,
                    message: rej.message,
                });
            }
            Outcome::Skipped => {}
        }
    }
    Ok(req)
}

/// Refuses a prompt of more bytes than the model's context can hold: no
/// token is longer than the tokenizer's longest, so such a prompt cannot fit,
/// and refusing it costs nothing where tokenizing it would cost the plugin's time.
/// Checked on the raw request before the transforms run, and again on the
/// prompt they produce.
pub fn check_prompt_bytes(svc: &ModelService, bytes: usize) -> Result<(), PipelineError> {
    let max_ctx = svc.engine().model().max_context;
    let max_bytes = max_ctx.saturating_mul(svc.tokenizer.max_token_len());
    if bytes > max_bytes {
        return Err(PipelineError::context_length(format!(
            "the prompt is {bytes} bytes, more than the model's context of {max_ctx} tokens can hold (at most {max_bytes} bytes)"
        )));
    }
    Ok(())
}

/// Tokenizes the transformed request's prompt and starts `n` sequences;
/// events of all choices arrive on the returned channel. A decoding
/// constraint the transforms attached (a tool format forcing a call) joins
/// the request's own, which it may not contradict.
///
/// Runs on the plugin executor (it calls the tokenizer, router and sampler
/// plugins); the per-choice tasks it starts run on `rt`.
pub fn start(
    svc: Arc<ModelService>,
    metrics: Arc<ServerMetrics>,
    executor: PluginExecutor,
    rt: tokio::runtime::Handle,
    treq: TransformRequest,
    add_special: bool,
    mut g: GenRequest,
) -> Result<mpsc::UnboundedReceiver<ChoiceEvent>, PipelineError> {
    let prompt =
        treq.prompt.clone().ok_or_else(|| PipelineError::invalid("messages", "the transforms produced no prompt"))?;
    if let Some(c) = &treq.constraint {
        if g.constraint.as_ref().is_some_and(|own| own != c) {
            return Err(PipelineError::invalid(
                "response_format",
                "a structured output format cannot be combined with tool calls the server must force (tool_choice)",
            ));
        }
        g.constraint = Some(c.clone());
    }
    // Tools the model may call need a tool format to render them and parse
    // the calls: without one they would be silently ignored.
    if treq.param("tools").is_some()
        && treq.param("tool_choice") != Some("\"none\"")
        && treq.param("tool_format").is_none()
    {
        return Err(PipelineError::invalid(
            "tools",
            "this model has no tool format: add `transform-tools` (configured with its `format`) to pipeline.transforms",
        ));
    }
    check_prompt_bytes(&svc, prompt.len())?;
    let max_ctx = svc.engine().model().max_context;
    // Before any plugin sees them: a token id outside the vocabulary is the request's fault.
    let vocab = svc.engine().model().config.vocab_size;
    g.params.validate_for(vocab).map_err(|e| PipelineError::invalid(e.param, e.message))?;
    let ids = match svc.tokenize.call(|t| t.encode(&prompt, add_special))? {
        Outcome::Done(ids) => ids,
        Outcome::Skipped => unreachable!("the tokenizer stage is never skipped"),
    };
    if ids.is_empty() {
        return Err(PipelineError::invalid("prompt", "the prompt is empty"));
    }
    if ids.len() >= max_ctx {
        return Err(PipelineError::context_length(format!(
            "the prompt has {} tokens but the model's context is {max_ctx} tokens",
            ids.len()
        )));
    }
    let room = max_ctx - ids.len();
    let max_tokens = g.max_tokens.unwrap_or(room).min(room);
    // The most this request can use, reserved now and shrunk to what it used
    // when the last choice ends. The prompt is charged once: the choices share its blocks.
    let hold = match &svc.tenant {
        Some(t) => Some(Arc::new(t.meter.reserve(&t.quotas, ids.len() as u64, (g.n * max_tokens) as u64)?)),
        None => None,
    };
    // All choices of a request go to one engine: they share the prompt's blocks.
    let (backend, reserved) = super::route::choose(&svc, svc.tenant_id(), &ids)?;
    let mut reserved = Some(reserved);
    let (tx, rx) = mpsc::unbounded_channel();
    for index in 0..g.n {
        let mut params = g.params.clone();
        // n > 1 with a seed: distinct but reproducible choices.
        params.seed = params.seed.map(|s| s.wrapping_add(index as u64));
        let mut r = Request::new(ids.clone(), max_tokens).with_params(params.clone());
        r.ignore_eos = g.ignore_eos;
        r.tenant = match (&svc.tenant, &g.fairness) {
            (None, Some(f)) => std::sync::Arc::from(f.as_str()),
            _ => std::sync::Arc::from(svc.tenant_id()),
        };
        r.priority = g.priority;
        r.cache_salt = std::sync::Arc::from(svc.cache_salt());
        r.logprobs = g.logprobs;
        let (guard, args) = match &g.constraint {
            Some(args) => {
                let f = svc.structured.as_ref().ok_or_else(|| {
                    PipelineError::invalid(
                        "response_format",
                        "structured output is not enabled for this model (pipeline.structured_sampler)",
                    )
                })?;
                (Some(f), args.as_str())
            }
            None => (svc.sampler.as_ref(), ""),
        };
        if let Some(guard) = guard {
            let fallback = guard.policy() != crate::config::FailurePolicy::Closed;
            let a = || SessionArgs {
                params: &params,
                max_tokens: max_tokens as u32,
                args,
                prompt: &ids,
                vocab_size: vocab,
                fallback,
            };
            let session = guard.call(|f| {
                f.session(a()).map_err(|e| match e {
                    // The structured-output sampler refusing a schema is the request's fault.
                    // A refusal that starts with `max_tokens` blames the budget, not the format.
                    Fault::Plugin(e) if guard.stage() == Stage::Structured && e.kind == ErrorKind::Plugin => {
                        let said = e.message.strip_prefix("session refused: ").unwrap_or(&e.message);
                        let param = if said.starts_with("max_tokens ") { "max_tokens" } else { "response_format" };
                        Fault::Request(PipelineError::invalid(param, e.message))
                    }
                    e => e,
                })
            })?;
            if let Outcome::Done(s) = session {
                r.sampler = Some(s);
            }
        }
        // A transform that declared it filters nothing (the chat template)
        // gets no stream: no guest call and no executor hop per chunk.
        let mut filters = Vec::with_capacity(svc.filters.len());
        for t in svc.filters.iter().filter(|t| t.filters_responses()) {
            filters.push(t.response_stream(&treq).map_err(|e| PipelineError::plugin(Stage::ResponseFilter, e))?);
        }
        let stream = backend.engine.submit(r)?;
        let in_flight = reserved.take().unwrap_or_else(|| super::route::InFlight::new(backend));
        let decoder = svc.tokenizer.decoder(true);
        let tx = tx.clone();
        let (svc, metrics, stops, executor) = (svc.clone(), metrics.clone(), g.stop.clone(), executor.clone());
        let want_logprobs = g.logprobs.is_some();
        let hold = hold.clone();
        let prompt_len = ids.len();
        rt.spawn(async move {
            let _in_flight = in_flight;
            let filters = Filters { list: filters, executor };
            run_choice(
                index,
                svc,
                metrics,
                stream,
                decoder,
                filters,
                StopMatcher::new(stops),
                want_logprobs,
                prompt_len,
                hold,
                tx,
            )
            .await;
        });
    }
    Ok(rx)
}

/// A choice's response filters, run on the plugin executor: each chunk is one
/// executor job that passes the text through every filter in order.
struct Filters {
    list: Vec<WasmResponseStream>,
    executor: PluginExecutor,
}

impl Filters {
    async fn apply(&mut self, tenant: &str, text: String, end: bool) -> Result<Vec<Output>, PipelineError> {
        if self.list.is_empty() {
            return Ok(if text.is_empty() { Vec::new() } else { vec![Output::Text(text)] });
        }
        let mut list = std::mem::take(&mut self.list);
        let (list, r) = self
            .executor
            .run(tenant, move || {
                let r = filter_all(&mut list, text, end);
                (list, r)
            })
            .await?;
        self.list = list;
        r
    }
}

impl Drop for Filters {
    fn drop(&mut self) {
        // Closing a filter runs its destructor in the guest: never on this (tokio) thread.
        let list = std::mem::take(&mut self.list);
        if !list.is_empty() {
            let _ = self.executor.spawn("", move || list.into_iter().for_each(WasmResponseStream::close));
        }
    }
}

/// A response filter that fails always ends the stream with an error: what it
/// already let through cannot be taken back, and unfiltered text after it
/// could be exactly what it exists to stop (a redaction filter).
///
/// Text flows through every filter in order; a tool call a filter emits
/// passes the later filters untouched, keeping its place in the stream.
fn filter_all(filters: &mut [WasmResponseStream], text: String, end: bool) -> Result<Vec<Output>, PipelineError> {
    let fail = |e| PipelineError::plugin(Stage::ResponseFilter, e);
    let mut outs = if text.is_empty() { Vec::new() } else { vec![Output::Text(text)] };
    for f in filters.iter_mut() {
        let mut next = Vec::with_capacity(outs.len());
        for o in outs {
            match o {
                Output::Text(t) if !t.is_empty() => next.extend(f.on_chunk(&t).map_err(fail)?),
                Output::Text(_) => {}
                call => next.push(call),
            }
        }
        if end {
            next.extend(f.on_end().map_err(fail)?);
        }
        outs = next;
    }
    Ok(outs)
}

/// Sends a filter's outputs as events; false once the client is gone.
fn send_outputs(
    tx: &mpsc::UnboundedSender<ChoiceEvent>,
    index: usize,
    outs: Vec<Output>,
    mut logprobs: Vec<TokenLogprob>,
    calls: &mut usize,
) -> bool {
    let mut text = String::new();
    let mut ok = true;
    for o in outs {
        match o {
            Output::Text(t) => text.push_str(&t),
            Output::ToolCall(call) => {
                if !text.is_empty() || !logprobs.is_empty() {
                    let t = std::mem::take(&mut text);
                    ok &=
                        tx.send(ChoiceEvent::Delta { index, text: t, logprobs: std::mem::take(&mut logprobs) }).is_ok();
                }
                *calls += 1;
                ok &= tx.send(ChoiceEvent::ToolCall { index, call }).is_ok();
            }
        }
    }
    if !text.is_empty() || !logprobs.is_empty() {
        ok &= tx.send(ChoiceEvent::Delta { index, text, logprobs }).is_ok();
    }
    ok
}

#[allow(clippy::too_many_arguments)]
async fn run_choice(
    index: usize,
    svc: Arc<ModelService>,
    metrics: Arc<ServerMetrics>,
    mut stream: weft_engine::RequestStream,
    mut decoder: TokenDecoder,
    mut filters: Filters,
    mut stop: StopMatcher,
    want_logprobs: bool,
    prompt_len: usize,
    mut hold: Option<Arc<crate::quota::TokenHold>>,
    tx: mpsc::UnboundedSender<ChoiceEvent>,
) {
    let t0 = Instant::now();
    let mut generated = 0usize;
    let mut calls = 0usize;
    let mut last = None::<Instant>;
    let tenant = svc.tenant_id().to_string();
    let series = metrics.model(&svc.name);
    while let Some(ev) = stream.next().await {
        match ev {
            Event::Token { id, logprob } => {
                let now = Instant::now();
                match last {
                    None => metrics.latency(&series, Latency::FirstToken, (now - t0).as_secs_f64()),
                    Some(l) => metrics.latency(&series, Latency::InterToken, (now - l).as_secs_f64()),
                }
                last = Some(now);
                generated += 1;
                if let Some(h) = &hold {
                    h.generated(1);
                }
                let piece = decoder.push(id);
                let (text, hit) = stop.push(&piece);
                let logprobs = match (want_logprobs, logprob) {
                    (true, Some(lp)) => token_logprobs(&svc, &lp),
                    _ => Vec::new(),
                };
                let outs = match filters.apply(&tenant, text, hit).await {
                    Ok(t) => t,
                    Err(e) => {
                        drop(hold.take());
                        let _ = tx.send(ChoiceEvent::Failed(e));
                        return;
                    }
                };
                if !send_outputs(&tx, index, outs, logprobs, &mut calls) {
                    return; // client gone: dropping the engine stream cancels the sequence
                }
                if hit {
                    // Ending here frees the sequence now; the rest would be discarded anyway.
                    // Cached-token counts arrive only with the engine's final event: reported as 0 here.
                    drop(hold.take()); // settled before the response can go out
                    let _ = tx.send(ChoiceEvent::Done {
                        index,
                        finish_reason: if calls > 0 { "tool_calls" } else { "stop" },
                        prompt_tokens: prompt_len,
                        cached_tokens: 0,
                        completion_tokens: generated,
                    });
                    metrics.finished(
                        &series,
                        svc.tenant_id(),
                        "stop",
                        prompt_len,
                        generated,
                        t0.elapsed().as_secs_f64(),
                    );
                    drop(stream);
                    return;
                }
            }
            Event::Finished { reason, usage } => {
                let mut tail = decoder.finish();
                let (t, _) = stop.push(&tail);
                tail = t;
                tail.push_str(&stop.finish());
                let tail = match filters.apply(&tenant, tail, true).await {
                    Ok(t) => t,
                    Err(e) => {
                        drop(hold.take());
                        let _ = tx.send(ChoiceEvent::Failed(e));
                        return;
                    }
                };
                send_outputs(&tx, index, tail, Vec::new(), &mut calls);
                // OpenAI: a message that ends in calls finishes with `tool_calls`, even at max_tokens
                // (every call it carries is complete: a cut-off call stays text).
                let finish_reason = match reason {
                    _ if calls > 0 => "tool_calls",
                    FinishReason::Stop => "stop",
                    FinishReason::Length => "length",
                };
                let secs = t0.elapsed().as_secs_f64();
                metrics.finished(
                    &series,
                    svc.tenant_id(),
                    finish_reason,
                    usage.prompt_tokens,
                    usage.completion_tokens,
                    secs,
                );
                drop(hold.take()); // settled before the response can go out
                let _ = tx.send(ChoiceEvent::Done {
                    index,
                    finish_reason,
                    prompt_tokens: usage.prompt_tokens,
                    cached_tokens: usage.cached_prompt_tokens,
                    completion_tokens: usage.completion_tokens,
                });
                return;
            }
            Event::Error(e) => {
                drop(hold.take());
                let _ = tx.send(ChoiceEvent::Failed(e.into()));
                return;
            }
        }
    }
    drop(hold.take());
    let _ = tx.send(ChoiceEvent::Failed(weft_engine::EngineError::Shutdown.into()));
}

fn token_logprobs(svc: &ModelService, lp: &weft_engine::sampling::TokenLogprob) -> Vec<TokenLogprob> {
    let mut ids = vec![lp.token];
    ids.extend(lp.top.iter().map(|t| t.token));
    let bytes = svc.tokenizer.token_bytes(&ids).unwrap_or_else(|_| vec![Vec::new(); ids.len()]);
    let text = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
    vec![TokenLogprob {
        token: text(&bytes[0]),
        bytes: bytes[0].clone(),
        logprob: lp.logprob,
        top: lp.top.iter().zip(&bytes[1..]).map(|(t, b)| (text(b), b.clone(), t.logprob)).collect(),
    }]
}
