//! Endpoint handlers. They parse and check the request, hand it to the
//! pipeline, and shape the pipeline's events into OpenAI responses.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use weft_runtime::TransformRequest;

use super::error::ApiError;
use super::openai::{ChatRequest, CompletionRequest, parse};
use super::wire::{self, Endpoint, Reply};
use super::{AppState, auth};
use crate::pipeline::GenRequest;
use crate::pipeline::ModelService;
use crate::pipeline::generate::{self, ChoiceEvent};

/// Counts a request in flight (server-wide, and for its tenant's
/// `max_concurrent`); both drop when the response (or stream) ends.
struct Inflight(
    Arc<AppState>,
    Option<crate::quota::Slot>,
    #[allow(dead_code)] Option<crate::tenancy::instances::Grant>,
);

impl Inflight {
    /// The request produced output: from now on it counts against `requests_per_minute`.
    fn served(&mut self) {
        if let Some(s) = self.1.as_mut() {
            s.commit();
        }
    }
}

impl Drop for Inflight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The caller as identified once per request (`None` while loading), and its metrics label.
type Who = Option<(Arc<crate::tenancy::Services>, auth::Caller)>;

fn identify(state: &AppState, headers: &HeaderMap) -> (Result<Who, ApiError>, String) {
    let who = auth::caller(state, headers);
    let label = match &who {
        Ok(Some((_, c))) => c.label().to_string(),
        _ => String::new(),
    };
    (who, label)
}

fn admit(state: &Arc<AppState>, who: Who, model: &str) -> Result<(Arc<ModelService>, Inflight), ApiError> {
    // While draining, requests are still served: a load balancer keeps
    // sending until its health checks see `/ready` fail, and the listener
    // closes only after `server.drain_secs`.
    let Some((services, caller)) = who else {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", "the model is still loading");
        e.retry_after = Some(2);
        return Err(e);
    };
    let svc = auth::service_for(&services, &caller, model)?;
    let slot = match &svc.tenant {
        Some(t) => Some(t.meter.admit(&t.quotas).map_err(ApiError::quota)?),
        None => None,
    };
    let n = state.inflight.fetch_add(1, Ordering::Relaxed);
    let guard = Inflight(state.clone(), slot, None);
    if n >= state.max_inflight {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("the server queue is full ({} requests in flight); retry later", state.max_inflight),
        )
        .code("queue_full");
        e.retry_after = Some(1);
        return Err(e);
    }
    Ok((svc, guard))
}

fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "invalid_request_error", "the request body is larger than the server accepts")
                .code("body_too_large")
        } else {
            ApiError::new(status, "invalid_request_error", r.body_text())
        }
    })
}

enum Kind {
    Chat,
    Completion,
}

pub async fn chat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let (who, label) = identify(&state, &headers);
    let r = async {
        let who = who?; // a bad key is a 401 whatever the body
        let (req, common): (ChatRequest, _) = parse(&body(b)?, super::openai::CHAT)?;
        if req.messages.is_empty() {
            return Err(ApiError::invalid("messages", "messages must not be empty"));
        }
        let top = match (req.logprobs, req.top_logprobs) {
            (_, Some(t)) if t > 20 => {
                return Err(ApiError::invalid("top_logprobs", format!("top_logprobs must be at most 20, got {t}")));
            }
            (Some(true), t) => Some(t.unwrap_or(0) as usize),
            (_, Some(_)) => return Err(ApiError::invalid("top_logprobs", "top_logprobs requires logprobs: true")),
            _ => None,
        };
        let messages =
            req.messages.iter().enumerate().map(|(i, m)| m.to_transform(i)).collect::<Result<Vec<_>, ApiError>>()?;
        let params = req.tool_params()?;
        let g = hints(&state, &headers, common.into_gen(top)?);
        let (svc, guard) = admit(&state, who, &g.model)?;
        let g = cap_max_tokens(&svc, g)?;
        let treq = TransformRequest { model: g.model.clone(), messages: Some(messages), params, ..Default::default() };
        run(state.clone(), svc, guard, treq, g, Kind::Chat).await
    }
    .await;
    finish(&state, "chat", &label, r)
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Response {
    let (who, label) = identify(&state, &headers);
    let r = async {
        let who = who?;
        let (req, common): (CompletionRequest, _) = parse(&body(b)?, super::openai::COMPLETIONS)?;
        let mut prompts = req.prompt.into_vec();
        if prompts.len() != 1 {
            return Err(ApiError::invalid("prompt", "exactly one prompt string is supported per request"));
        }
        if let Some(n) = req.logprobs.filter(|&n| n > 20) {
            return Err(ApiError::invalid("logprobs", format!("logprobs must be at most 20, got {n}")));
        }
        let g = hints(&state, &headers, common.into_gen(req.logprobs.map(|n| n as usize))?);
        let (svc, guard) = admit(&state, who, &g.model)?;
        let g = cap_max_tokens(&svc, g)?;
        let treq = TransformRequest { model: g.model.clone(), prompt: prompts.pop(), ..Default::default() };
        run(state.clone(), svc, guard, treq, g, Kind::Completion).await
    }
    .await;
    finish(&state, "completions", &label, r)
}

/// A trusted gateway's fairness id and objective, if the server trusts one.
fn hints(state: &AppState, headers: &HeaderMap, mut g: GenRequest) -> GenRequest {
    if let Some(gw) = &state.gateway {
        let h = gw.hints(headers);
        g.fairness = h.fairness;
        g.priority = h.priority;
    }
    g
}

fn finish(state: &AppState, endpoint: &str, tenant: &str, r: Result<Response, ApiError>) -> Response {
    let resp = r.unwrap_or_else(|e| {
        tracing::info!(endpoint, tenant, status = e.status.as_u16(), error = %e.message, "request refused");
        e.into_response()
    });
    state.metrics.count_request(endpoint, tenant, resp.status().as_u16());
    resp
}

/// The tenant's `max_tokens` quota: a larger ask is refused, no ask gets the cap.
fn cap_max_tokens(svc: &ModelService, mut g: GenRequest) -> Result<GenRequest, ApiError> {
    let Some(cap) = svc.tenant.as_ref().and_then(|t| t.quotas.max_tokens) else { return Ok(g) };
    match g.max_tokens {
        Some(m) if m > cap as usize => Err(ApiError::quota(crate::quota::Exceeded {
            quota: "max_tokens",
            message: format!("quota exceeded: max_tokens is capped at {cap} for this key, the request asks {m}"),
            retry_after: None,
        })),
        Some(_) => Ok(g),
        None => {
            g.max_tokens = Some(cap as usize);
            Ok(g)
        }
    }
}

async fn run(
    state: Arc<AppState>,
    svc: Arc<ModelService>,
    mut guard: Inflight,
    treq: TransformRequest,
    g: GenRequest,
    kind: Kind,
) -> Result<Response, ApiError> {
    let rid = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = match kind {
        Kind::Chat => format!("chatcmpl-{rid:x}{:x}", now()),
        Kind::Completion => format!("cmpl-{rid:x}{:x}", now()),
    };
    tracing::info!(request = %id, model = %g.model, stream = g.stream, n = g.n, "request");
    let metrics = state.metrics.clone();
    let (stream, n, include_usage, model) = (g.stream, g.n, g.include_usage, g.model.clone());
    let svc2 = svc.clone();
    let add_special = matches!(kind, Kind::Completion);
    let raw_bytes = treq.prompt.as_ref().map_or(0, String::len)
        + treq.messages.as_ref().map_or(0, |m| m.iter().map(|m| m.content.len()).sum())
        + treq.params.iter().map(|(_, v)| v.len()).sum::<usize>();
    generate::check_prompt_bytes(&svc, raw_bytes)?;
    svc.precheck(g.constraint.is_some())?;
    // Each sequence holds a sampler session (unless native) and one filter per transform.
    let sampler = usize::from(g.constraint.is_some() || svc.sampler.is_some());
    let needed = g.n * (sampler + svc.transforms.len());
    let quota_cap = svc.tenant.as_ref().and_then(|t| t.quotas.max_instances);
    guard.2 = Some(state.instances.reserve(svc.tenant_id(), needed, quota_cap).map_err(ApiError::quota)?);
    let handle = tokio::runtime::Handle::current();
    let executor = state.executor.clone();
    let tenant = svc.tenant_id().to_string();
    let rx = state
        .executor
        .run(&tenant, move || {
            let t = generate::transform(&svc2, treq)?;
            generate::start(svc2, metrics, executor, handle, t, add_special, g)
        })
        .await??;
    let created = now();
    let deadline = tokio::time::Instant::now() + state.request_timeout;
    let endpoint = match kind {
        Kind::Chat => Endpoint::Chat,
        Kind::Completion => Endpoint::Completion,
    };
    let reply = Reply::new(endpoint, id, created, model, n);
    if stream {
        let (tx, out) = mpsc::channel::<Result<SseEvent, Infallible>>(64);
        tokio::spawn(stream_events(rx, tx, reply, n, include_usage, guard, deadline));
        return Ok(Sse::new(ReceiverStream::new(out)).keep_alive(KeepAlive::default()).into_response());
    }
    tokio::time::timeout_at(deadline, collect(rx, reply, n, &mut guard))
        .await
        .unwrap_or_else(|_| Err(timed_out(&state)))
}

fn timed_out(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "server_error",
        format!("the request ran past the server's request timeout of {}s", state.request_timeout.as_secs()),
    )
    .code("timeout")
}

async fn collect(
    mut rx: mpsc::UnboundedReceiver<ChoiceEvent>,
    mut reply: Reply,
    n: usize,
    guard: &mut Inflight,
) -> Result<Response, ApiError> {
    let mut done = 0;
    while done < n {
        match rx.recv().await {
            Some(ChoiceEvent::Delta { index, text, logprobs }) => {
                guard.served();
                reply.text(index, text, logprobs);
            }
            Some(ChoiceEvent::ToolCall { index, call }) => {
                guard.served();
                reply.tool_call(index, call);
            }
            Some(ChoiceEvent::Done { index, finish_reason, prompt_tokens, cached_tokens, completion_tokens }) => {
                guard.served();
                reply.done(index, finish_reason, prompt_tokens, cached_tokens, completion_tokens);
                done += 1;
            }
            Some(ChoiceEvent::Failed(e)) => return Err(e.into()),
            None => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "generation ended unexpectedly",
                ));
            }
        }
    }
    Ok(axum::Json(reply.finish()).into_response())
}

async fn stream_events(
    mut rx: mpsc::UnboundedReceiver<ChoiceEvent>,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
    mut reply: Reply,
    n: usize,
    include_usage: bool,
    mut guard: Inflight,
    deadline: tokio::time::Instant,
) {
    let send = |v: String| {
        let tx = tx.clone();
        async move { tx.send(Ok(SseEvent::default().data(v))).await.is_ok() }
    };
    let json = |r: &wire::Response| serde_json::to_string(r).expect("wire types serialize");
    let mut done = 0;
    while done < n {
        let ev = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(_) => {
                let _ = send(timed_out(&guard.0).body().to_string()).await;
                break;
            }
        };
        if !matches!(ev, ChoiceEvent::Failed(_)) {
            guard.served();
        }
        let chunk = match ev {
            ChoiceEvent::Delta { index, text, logprobs } => reply.text(index, text, logprobs),
            ChoiceEvent::ToolCall { index, call } => reply.tool_call(index, call),
            ChoiceEvent::Done { index, finish_reason, prompt_tokens, cached_tokens, completion_tokens } => {
                done += 1;
                reply.done(index, finish_reason, prompt_tokens, cached_tokens, completion_tokens)
            }
            ChoiceEvent::Failed(e) => {
                let _ = send(ApiError::from(e).body().to_string()).await;
                break;
            }
        };
        if !send(json(&chunk)).await {
            return; // client disconnected: dropping `rx` cancels the sequences
        }
    }
    if done == n && include_usage {
        let _ = send(json(&reply.usage_chunk())).await;
    }
    let _ = tx.send(Ok(SseEvent::default().data("[DONE]"))).await;
}

pub async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (services, caller) = match auth::caller(&state, &headers) {
        Ok(Some(x)) => x,
        Ok(None) => return axum::Json(json!({"object": "list", "data": []})).into_response(),
        Err(e) => return e.into_response(),
    };
    let data: Vec<Value> = auth::visible_models(&services, &caller)
        .into_iter()
        .map(|m| json!({"id": m.name, "object": "model", "created": m.created, "owned_by": "weft", "max_model_len": m.engine().model().max_context}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

pub async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.ready() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        let why = if state.draining.load(Ordering::Relaxed) { "draining" } else { "loading" };
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": why}))).into_response()
    }
}

/// With tenants, metrics name every tenant and its traffic: only the admin
/// key may read them (on either listener). An open server has no one to hide
/// them from.
pub async fn metrics(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let t0 = std::time::Instant::now();
    let services = state.registry.services.load_full();
    if let Some(crate::tenancy::Services::Tenants { .. }) = services.as_deref() {
        let admin = state.admin_key.get().is_some_and(|k| crate::tenancy::keys::matches(&headers, k));
        if !admin {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "with tenants, /metrics needs the admin key: send `Authorization: Bearer <admin.key>`",
            )
            .code("admin_key_required")
            .into_response();
        }
    }
    let per_model = services.as_deref().map(|s| s.per_model()).unwrap_or_default();
    let engines: Vec<crate::metrics::EngineSnapshot> = per_model
        .iter()
        .flat_map(|m| {
            m.backends.iter().map(|b| crate::metrics::EngineSnapshot {
                model: m.name.clone(),
                id: b.id.clone(),
                block_size: b.engine.model().block_size,
                num_blocks: b.engine.model().num_blocks,
                metrics: b.engine.metrics(),
                in_flight: b.in_flight.load(Ordering::Relaxed),
            })
        })
        .collect();
    let plugins: Vec<&weft_runtime::LoadedPlugin> = services
        .as_ref()
        .map(|s| s.all().into_iter().flat_map(|(_, v)| v.plugins.iter().map(|p| &**p)).collect())
        .unwrap_or_default();
    let version = per_model.first().map_or(0, |s| s.version);
    let mut text = state.metrics.render(&engines, &plugins, version);
    for (name, help, v) in [
        (
            "weft_plugin_instances_reserved",
            "Plugin instances reserved by requests in flight.",
            state.instances.in_use(),
        ),
        ("weft_plugin_executor_queued", "Plugin calls waiting for an executor thread.", state.executor.queued()),
        (
            "weft_plugin_idle_memory_bytes",
            "Linear memory held by idle plugin instances kept for reuse.",
            plugins.first().map_or(0, |p| p.idle_memory_bytes()),
        ),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"));
    }
    // What this scrape cost (an Endpoint Picker scrapes every 50 ms).
    let name = "weft_metrics_render_seconds";
    let secs = t0.elapsed().as_secs_f64();
    text.push_str(&format!(
        "# HELP {name} Time this /metrics answer took to build.\n# TYPE {name} gauge\n{name} {secs}\n"
    ));
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

pub async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", "no such endpoint").into_response()
}
