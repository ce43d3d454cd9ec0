//! The plugin export. Configuration (weft.toml `[plugins.config]`):
//! `format` (`hermes`, `llama3`, `mistral` or `pythonic`; default `hermes`)
//! and `render_tools` (default `true`; `false` when the model's chat template
//! renders the `tools` it receives itself).

use weft_sdk::transform::{Message, Output, Rejection, Request, ResponseFilter, ToolCall, Transform};
use weft_sdk::{Config, Metadata, Plugin, config_value};

use crate::format::{self, Format, Parser};
use crate::{Call, Piece, Tools, call_id, constraint, fnv};

fn tools_of(r: &Request) -> Result<Option<Tools>, String> {
    Tools::from_params(r.param("tools"), r.param("tool_choice"), r.param("parallel_tool_calls"))
}

/// The conversation's hash: the seed of this response's call ids.
fn seed(r: &Request) -> u64 {
    let mut h = fnv(r.model.as_bytes());
    for m in r.messages.iter().flatten() {
        h ^= fnv(m.content.as_bytes()).rotate_left(7) ^ fnv(m.role.as_bytes());
        for c in &m.tool_calls {
            h ^= fnv(c.id.as_bytes()).rotate_left(13);
        }
    }
    h ^ fnv(r.prompt.as_deref().unwrap_or_default().as_bytes())
}

struct ToolsTransform {
    format: Box<dyn Format>,
    render_tools: bool,
}

impl Plugin for ToolsTransform {
    fn metadata() -> Metadata {
        Metadata {
            name: "transform-tools".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let name = config_value(config, "format").unwrap_or("hermes");
        let format = format::by_name(name)
            .ok_or_else(|| format!("unknown tool format `{name}` (one of {})", format::NAMES.join(", ")))?;
        let render_tools = match config_value(config, "render_tools").unwrap_or("true") {
            "true" => true,
            "false" => false,
            other => return Err(format!("`render_tools` must be true or false, not `{other}`")),
        };
        Ok(ToolsTransform { format, render_tools })
    }
}

impl Transform for ToolsTransform {
    type Filter = CallFilter;

    fn on_request(&mut self, mut request: Request) -> Result<Request, Rejection> {
        let bad = |message: String| Rejection { status: 400, message };
        let Some(tools) = tools_of(&request).map_err(bad)? else { return Ok(request) };
        let (fmt, render) = (&self.format, self.render_tools);
        request.set_param("tool_format", &serde_json::Value::String(fmt.name().into()).to_string());
        if tools.choice == crate::Choice::None {
            return Ok(request);
        }
        if render && let Some(messages) = request.messages.as_mut() {
            for m in messages.iter_mut() {
                if !m.tool_calls.is_empty() {
                    let calls: Vec<Call> = m
                        .tool_calls
                        .drain(..)
                        .map(|c| Call {
                            name: c.name,
                            arguments: serde_json::from_str(&c.arguments).unwrap_or(serde_json::json!({})),
                        })
                        .collect();
                    let written = fmt.write_calls(&calls);
                    m.content = if m.content.is_empty() { written } else { format!("{}\n{written}", m.content) };
                }
                if m.role == "tool" {
                    let (role, content) = fmt.tool_result(&m.content);
                    (m.role, m.content, m.tool_call_id) = (role, content, None);
                }
            }
            let prompt = fmt.system_prompt(&tools.functions);
            match messages.first_mut().filter(|m| m.role == "system") {
                Some(sys) => sys.content = format!("{}\n\n{prompt}", sys.content),
                None => messages.insert(0, Message::text("system", &prompt)),
            }
        }
        if let Some(args) = constraint(fmt.as_ref(), &tools).map_err(bad)? {
            request.constraint = Some(args.to_string());
        }
        Ok(request)
    }

    fn response_filter(&mut self, r: &Request) -> CallFilter {
        let tools = tools_of(r).ok().flatten().filter(|t| t.choice != crate::Choice::None);
        let parser = tools.as_ref().map(|_| self.format.parser());
        CallFilter { parser, tools, seed: seed(r), calls: 0 }
    }
}

/// One response's parser; a passthrough when the request offered no tools.
pub struct CallFilter {
    parser: Option<Box<dyn Parser>>,
    tools: Option<Tools>,
    seed: u64,
    calls: usize,
}

impl CallFilter {
    fn outputs(&mut self, pieces: Vec<Piece>) -> Vec<Output> {
        let mut out = Vec::new();
        for p in pieces {
            match p {
                Piece::Text(t) => out.push(Output::Text(t)),
                // A call of a function the request did not offer stays text.
                Piece::Call(c, raw) if !self.tools.as_ref().is_some_and(|t| t.offers(&c.name)) => {
                    if !raw.is_empty() {
                        out.push(Output::Text(raw));
                    }
                }
                Piece::Call(c, _) => {
                    let id = call_id(self.seed, self.calls);
                    self.calls += 1;
                    weft_sdk::host::counter_add("tool_calls", 1);
                    out.push(Output::ToolCall(ToolCall { id, name: c.name, arguments: c.arguments.to_string() }));
                }
            }
        }
        out
    }
}

impl ResponseFilter for CallFilter {
    fn on_chunk_outputs(&mut self, text: &str) -> Vec<Output> {
        match self.parser.as_mut() {
            None => vec![Output::Text(text.into())],
            Some(p) => {
                let pieces = p.push(text);
                self.outputs(pieces)
            }
        }
    }

    fn on_end_outputs(&mut self) -> Vec<Output> {
        match self.parser.as_mut() {
            None => Vec::new(),
            Some(p) => {
                let pieces = p.finish();
                self.outputs(pieces)
            }
        }
    }
}

weft_sdk::export_transform!(ToolsTransform);
