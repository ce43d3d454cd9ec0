//! Request/response transforms: `on-request` rewrites or rejects a request
//! (and may attach a decoding constraint); a response stream filters
//! generated text chunk by chunk, may hold some back until later (or the
//! end), and may turn text into structured outputs (tool calls).

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::{Pool, expect_world};
use crate::bindings::transform::TransformPlugin;
use crate::bindings::transform::exports::weft::plugin::transform as wit;
use crate::error::Result;
use crate::runtime::LoadedPlugin;
use crate::state::HostState;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    /// An assistant message's calls.
    pub tool_calls: Vec<ToolCall>,
    /// A `tool` message's answer to this call.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A plain text message.
    pub fn text(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into(), ..Default::default() }
    }
}

/// A call of one of the request's tools: arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a response stream passes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Text(String),
    ToolCall(ToolCall),
}

/// A request as transforms see it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransformRequest {
    pub model: String,
    pub messages: Option<Vec<ChatMessage>>,
    pub prompt: Option<String>,
    /// Parameter name to JSON text.
    pub params: Vec<(String, String)>,
    /// Exposed headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The structured-output sampler's arguments (JSON), if decoding is constrained.
    pub constraint: Option<String>,
}

impl TransformRequest {
    /// The JSON text of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A transform's refusal: an HTTP status (400-599) and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub message: String,
}

fn call_to_wit(c: &ToolCall) -> wit::ToolCall {
    wit::ToolCall { id: c.id.clone(), name: c.name.clone(), arguments: c.arguments.clone() }
}

fn call_from_wit(c: wit::ToolCall) -> ToolCall {
    ToolCall { id: c.id, name: c.name, arguments: c.arguments }
}

fn to_wit(r: &TransformRequest) -> wit::Request {
    wit::Request {
        model: r.model.clone(),
        messages: r.messages.as_ref().map(|m| {
            m.iter()
                .map(|m| wit::Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                    name: m.name.clone(),
                    tool_calls: m.tool_calls.iter().map(call_to_wit).collect(),
                    tool_call_id: m.tool_call_id.clone(),
                })
                .collect()
        }),
        prompt: r.prompt.clone(),
        params: r.params.clone(),
        headers: r.headers.clone(),
        constraint: r.constraint.clone(),
    }
}

fn from_wit(r: wit::Request) -> TransformRequest {
    TransformRequest {
        model: r.model,
        messages: r.messages.map(|m| {
            m.into_iter()
                .map(|m| ChatMessage {
                    role: m.role,
                    content: m.content,
                    name: m.name,
                    tool_calls: m.tool_calls.into_iter().map(call_from_wit).collect(),
                    tool_call_id: m.tool_call_id,
                })
                .collect()
        }),
        prompt: r.prompt,
        params: r.params,
        headers: r.headers,
        constraint: r.constraint,
    }
}

fn call_bytes(c: &wit::ToolCall) -> usize {
    c.id.len() + c.name.len() + c.arguments.len()
}

fn request_bytes(r: &wit::Request) -> usize {
    r.model.len()
        + r.prompt.as_ref().map_or(0, |p| p.len())
        + r.constraint.as_ref().map_or(0, |p| p.len())
        + r.messages.as_ref().map_or(0, |m| {
            m.iter()
                .map(|m| {
                    m.role.len()
                        + m.content.len()
                        + m.tool_call_id.as_ref().map_or(0, |i| i.len())
                        + m.tool_calls.iter().map(call_bytes).sum::<usize>()
                })
                .sum()
        })
        + r.params.iter().chain(&r.headers).map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// A loaded transform plugin.
pub struct WasmTransform {
    pool: Pool<TransformPlugin>,
}

impl WasmTransform {
    pub fn new(plugin: Arc<LoadedPlugin>) -> Result<Arc<Self>> {
        expect_world(&plugin, crate::World::Transform)?;
        Ok(Arc::new(Self { pool: Pool::new(plugin) }))
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.pool.plugin
    }

    /// False when the plugin declared its responses pass through unchanged:
    /// callers then open no [`response_stream`](Self::response_stream).
    pub fn filters_responses(&self) -> bool {
        !self.pool.plugin.passes_responses_through
    }

    /// Rewrites the request (`Ok(Ok(..))`) or rejects it (`Ok(Err(..))`); `Err` if the plugin failed.
    pub fn on_request(&self, req: &TransformRequest) -> Result<std::result::Result<TransformRequest, Rejection>> {
        let p = self.pool.plugin.clone();
        let (mut store, b) = self.pool.take()?;
        let input = to_wit(req);
        let out = p.call(&mut store, "on-request", |s| b.weft_plugin_transform().call_on_request(s, &input))?;
        let result = match out {
            Ok(r) => {
                p.check_size("rewritten request", request_bytes(&r))?;
                Ok(from_wit(r))
            }
            Err(rej) => {
                if !(400..=599).contains(&rej.status) {
                    return Err(p.invalid(format!("rejected with status {}, not an HTTP error status", rej.status)));
                }
                p.check_size("rejection message", rej.message.len())?;
                Err(Rejection { status: rej.status, message: rej.message })
            }
        };
        self.pool.give((store, b));
        Ok(result)
    }

    /// A filter for one response to `req` (the request as the last transform
    /// left it); it keeps its instance until dropped.
    pub fn response_stream(self: &Arc<Self>, req: &TransformRequest) -> Result<WasmResponseStream> {
        let p = self.pool.plugin.clone();
        let (mut store, b) = self.pool.take()?;
        let input = to_wit(req);
        let handle = p.call(&mut store, "response-stream.new", |s| {
            b.weft_plugin_transform().response_stream().call_constructor(s, &input)
        })?;
        Ok(WasmResponseStream { owner: self.clone(), inst: Some((store, b)), handle, failed: false })
    }
}

/// Filters one response's text.
pub struct WasmResponseStream {
    owner: Arc<WasmTransform>,
    inst: Option<(Store<HostState>, TransformPlugin)>,
    handle: ResourceAny,
    failed: bool,
}

impl WasmResponseStream {
    fn run(&mut self, what: &str, text: Option<&str>) -> Result<Vec<Output>> {
        let p = self.owner.pool.plugin.clone();
        let (store, b) = self.inst.as_mut().expect("stream instance present until drop");
        let h = self.handle;
        let r = p.call(store, what, |s| match text {
            Some(t) => b.weft_plugin_transform().response_stream().call_on_chunk(s, h, t),
            None => b.weft_plugin_transform().response_stream().call_on_end(s, h),
        });
        let r = r.and_then(|outs| {
            let bytes: usize = outs
                .iter()
                .map(|o| match o {
                    wit::Output::Text(t) => t.len(),
                    wit::Output::ToolCall(c) => call_bytes(c),
                })
                .sum();
            p.check_size("filtered output", bytes)?;
            Ok(outs
                .into_iter()
                .map(|o| match o {
                    wit::Output::Text(t) => Output::Text(t),
                    wit::Output::ToolCall(c) => Output::ToolCall(call_from_wit(c)),
                })
                .collect())
        });
        self.failed |= r.is_err();
        r
    }

    /// What to send for this chunk.
    pub fn on_chunk(&mut self, text: &str) -> Result<Vec<Output>> {
        self.run("response-stream.on-chunk", Some(text))
    }

    /// What was held back, at the end.
    pub fn on_end(&mut self) -> Result<Vec<Output>> {
        self.run("response-stream.on-end", None)
    }
}

impl WasmResponseStream {
    /// Ends the stream: runs the guest's destructor (under the deadline) and
    /// returns a healthy instance to the pool. Dropping a stream without
    /// closing it runs no guest code and discards the instance, so a drop on
    /// any thread is safe.
    pub fn close(mut self) {
        if let Some((mut store, b)) = self.inst.take() {
            if self.failed {
                return; // a faulted instance is not called again, only freed
            }
            let p = self.owner.pool.plugin.clone();
            let h = self.handle;
            let ok = p.call(&mut store, "response-stream.drop", |s| h.resource_drop(s)).is_ok();
            if ok && !self.failed {
                self.owner.pool.give((store, b));
            }
        }
    }
}
