//! The OpenAI request bodies we accept, parsed so that an error names the
//! offending parameter, and turned into one engine-facing [`GenRequest`].

use std::collections::HashMap;

use serde::Deserialize;
use weft_engine::SamplingParams;

use super::error::ApiError;
use crate::pipeline::GenRequest;

#[derive(Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

impl StringOrList {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
    #[serde(default)]
    pub name: Option<String>,
    /// An assistant message's calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    /// A `tool` message answers this call.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

#[derive(Deserialize)]
pub struct MessageToolCall {
    pub id: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    pub function: CalledFunction,
}

#[derive(Deserialize)]
pub struct CalledFunction {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    pub arguments: String,
}

/// A tool the model may call: `{"type": "function", "function": {...}}`.
#[derive(Deserialize, serde::Serialize, Clone)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
}

#[derive(Deserialize, serde::Serialize, Clone)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON Schema for the arguments object (absent: no arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `none`, `auto`, `required`, or `{"type": "function", "function": {"name": ...}}`.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named { function: NamedFunction },
}

#[derive(Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Parameters shared by chat and completions.
#[derive(Deserialize, Default)]
pub struct CommonParams {
    pub model: String,
    #[allow(dead_code)] // accepted for the operator's logs; changes nothing
    pub user: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    pub n: Option<u32>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub stop: Option<StringOrList>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<i64>,
    pub min_p: Option<f32>,
    pub seed: Option<u64>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
    #[serde(default)]
    pub ignore_eos: bool,
    /// OpenAI structured output: `text`, `json_object` or `json_schema`.
    pub response_format: Option<ResponseFormat>,
    /// vLLM's extensions: a JSON Schema, or a regex the whole output must match.
    pub guided_json: Option<serde_json::Value>,
    pub guided_regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: JsonSchemaFormat },
}

#[derive(Deserialize)]
pub struct JsonSchemaFormat {
    #[allow(dead_code)]
    pub name: Option<String>,
    pub schema: Option<serde_json::Value>,
    #[allow(dead_code)]
    pub strict: Option<bool>,
}

#[derive(Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u32>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
}

impl ChatRequest {
    /// The tool parameters checked and as transforms receive them (JSON
    /// text): `tools`, `tool_choice` (`"auto"`, `"required"`, `"none"` or
    /// `{"type":"function","function":{"name":...}}`) and
    /// `parallel_tool_calls`. Empty without tools.
    pub fn tool_params(&self) -> Result<Vec<(String, String)>, ApiError> {
        let tools = self.tools.as_deref().unwrap_or_default();
        let choice = match &self.tool_choice {
            None if tools.is_empty() => return Ok(Vec::new()),
            None => serde_json::json!("auto"),
            Some(ToolChoice::Mode(m)) if matches!(m.as_str(), "none" | "auto" | "required") => serde_json::json!(m),
            Some(ToolChoice::Mode(m)) => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!("tool_choice must be none, auto, required or a named function, not `{m}`"),
                ));
            }
            Some(ToolChoice::Named { function }) => {
                if !tools.iter().any(|t| t.function.name == function.name) {
                    return Err(ApiError::invalid(
                        "tool_choice",
                        format!("tool_choice names `{}`, which is not one of the tools", function.name),
                    ));
                }
                serde_json::json!({"type": "function", "function": {"name": function.name}})
            }
        };
        if tools.is_empty() {
            if choice != "none" {
                return Err(ApiError::invalid("tool_choice", "tool_choice needs tools"));
            }
            return Ok(Vec::new());
        }
        if tools.len() > 128 {
            return Err(ApiError::invalid("tools", format!("at most 128 tools, got {}", tools.len())));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in tools.iter().enumerate() {
            let at = format!("tools[{i}]");
            if t.kind != "function" {
                return Err(ApiError::invalid(
                    &at,
                    format!("tool type `{}` is not supported (only `function`)", t.kind),
                ));
            }
            let name = &t.function.name;
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ApiError::invalid(
                    &format!("{at}.function.name"),
                    format!("function name `{name}` must be 1 to 64 of a-z, A-Z, 0-9, _ and -"),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(ApiError::invalid(&at, format!("two tools are named `{name}`")));
            }
            if let Some(p) = &t.function.parameters
                && !p.is_object()
            {
                return Err(ApiError::invalid(
                    &format!("{at}.function.parameters"),
                    "parameters must be a JSON Schema object",
                ));
            }
        }
        let tools = serde_json::to_string(tools).expect("tools serialize");
        Ok(vec![
            ("tools".into(), tools),
            ("tool_choice".into(), choice.to_string()),
            ("parallel_tool_calls".into(), self.parallel_tool_calls.unwrap_or(true).to_string()),
        ])
    }
}

#[derive(Deserialize)]
pub struct CompletionRequest {
    pub prompt: StringOrList,
    pub logprobs: Option<u32>,
}

/// Parameters every generation endpoint accepts (see [`CommonParams`]), and
/// `user`, which OpenAI defines as an end-user id for the operator's records:
/// it changes nothing about the answer, so it is accepted and logged.
const COMMON: &[&str] = &[
    "model",
    "stream",
    "stream_options",
    "n",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "logit_bias",
    "ignore_eos",
    "response_format",
    "guided_json",
    "guided_regex",
    "user",
];

/// The endpoints' own parameters.
pub const CHAT: &[&str] = &["messages", "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls"];
pub const COMPLETIONS: &[&str] = &["prompt", "logprobs"];

/// Parses a JSON body into the endpoint's own fields (`own` names them) and
/// the common parameters; an error names the parameter at fault. A parameter
/// weft does not implement is refused by name, never silently ignored.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8], own: &[&str]) -> Result<(T, CommonParams), ApiError> {
    // serde_json refuses nesting deeper than 128 levels, so a deeply nested body is a 400 here too.
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("the request body is not valid JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(ApiError::invalid("body", "the request body must be a JSON object"));
    };
    if let Some(k) = obj.keys().find(|k| !COMMON.contains(&k.as_str()) && !own.contains(&k.as_str())) {
        return Err(ApiError::invalid(k, format!("the parameter `{k}` is not supported by this server"))
            .code("unsupported_parameter"));
    }
    Ok((typed(&v)?, typed(&v)?))
}

fn typed<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            let msg = inner.to_string();
            // "missing field `messages`" → param messages
            let param = msg.split('`').nth(1).unwrap_or("body").to_string();
            ApiError::invalid(&param, format!("invalid request: {msg}"))
        } else {
            ApiError::invalid(&path, format!("invalid value for `{path}`: {inner}"))
        }
    })
}

impl CommonParams {
    pub fn into_gen(self, logprobs: Option<usize>) -> Result<GenRequest, ApiError> {
        let n = self.n.unwrap_or(1);
        if !(1..=16).contains(&n) {
            return Err(ApiError::invalid("n", format!("n must be between 1 and 16, got {n}")));
        }
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            return Err(ApiError::invalid("max_tokens", "max_tokens must be at least 1"));
        }
        let stop = self.stop.map(StringOrList::into_vec).unwrap_or_default();
        let constrained = self.guided_json.is_some()
            || self.guided_regex.is_some()
            || matches!(self.response_format, Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. }));
        if constrained && !stop.is_empty() {
            // A stop string inside the value would cut it into something the format forbids.
            return Err(ApiError::invalid(
                "stop",
                "stop strings cannot be combined with a structured output format: the value ends when the format says so",
            ));
        }
        if stop.len() > 4 || stop.iter().any(|s| s.is_empty() || s.len() > 256) {
            return Err(ApiError::invalid("stop", "at most 4 non-empty stop strings of up to 256 bytes"));
        }
        let mut logit_bias = HashMap::new();
        for (k, v) in self.logit_bias.unwrap_or_default() {
            let id: u32 = k
                .parse()
                .map_err(|_| ApiError::invalid("logit_bias", format!("logit_bias key `{k}` is not a token id")))?;
            logit_bias.insert(id, v);
        }
        let top_k = match self.top_k {
            None | Some(-1) | Some(0) => 0,
            Some(k) if k > 0 => k as usize,
            Some(k) => return Err(ApiError::invalid("top_k", format!("top_k must be -1, 0 or positive, got {k}"))),
        };
        let params = SamplingParams {
            temperature: self.temperature.unwrap_or(1.0),
            top_p: self.top_p.unwrap_or(1.0),
            top_k,
            min_p: self.min_p.unwrap_or(0.0),
            repetition_penalty: self.repetition_penalty.unwrap_or(1.0),
            presence_penalty: self.presence_penalty.unwrap_or(0.0),
            frequency_penalty: self.frequency_penalty.unwrap_or(0.0),
            logit_bias,
            seed: self.seed,
        };
        params.validate().map_err(|e| ApiError::invalid(e.param, e.message))?;
        let constraint = match (self.response_format, self.guided_json, self.guided_regex) {
            (None | Some(ResponseFormat::Text), None, None) => None,
            (Some(ResponseFormat::JsonObject), None, None) => Some(serde_json::json!({"json_object": true})),
            (Some(ResponseFormat::JsonSchema { json_schema }), None, None) => {
                let schema = json_schema.schema.ok_or_else(|| {
                    ApiError::invalid("response_format", "response_format.json_schema.schema is required")
                })?;
                Some(serde_json::json!({"json_schema": schema}))
            }
            (None | Some(ResponseFormat::Text), Some(schema), None) => Some(serde_json::json!({"json_schema": schema})),
            (None | Some(ResponseFormat::Text), None, Some(re)) => Some(serde_json::json!({"regex": re})),
            _ => {
                return Err(ApiError::invalid(
                    "response_format",
                    "give only one of response_format, guided_json and guided_regex",
                ));
            }
        };
        Ok(GenRequest {
            constraint: constraint.map(|c| c.to_string()),
            model: self.model,
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
            n: n as usize,
            max_tokens: max_tokens.map(|m| m as usize),
            stop,
            params,
            ignore_eos: self.ignore_eos,
            logprobs,
            fairness: None,
            priority: 0,
        })
    }
}

impl ChatMessage {
    /// The message as transforms receive it.
    pub fn to_transform(&self, i: usize) -> Result<weft_runtime::ChatMessage, ApiError> {
        let tool_calls = self
            .tool_calls
            .iter()
            .flatten()
            .map(|c| {
                if c.kind.as_deref().is_some_and(|k| k != "function") {
                    return Err(ApiError::invalid(
                        &format!("messages[{i}].tool_calls"),
                        "only `function` tool calls are supported",
                    ));
                }
                Ok(weft_runtime::ToolCall {
                    id: c.id.clone(),
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        if self.role == "tool" && self.tool_call_id.is_none() {
            return Err(ApiError::invalid(&format!("messages[{i}].tool_call_id"), "a tool message needs tool_call_id"));
        }
        Ok(weft_runtime::ChatMessage {
            role: self.role.clone(),
            content: self.text()?,
            name: self.name.clone(),
            tool_calls,
            tool_call_id: self.tool_call_id.clone(),
        })
    }

    pub fn text(&self) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(t)) => Ok(t.clone()),
            Some(Content::Parts(parts)) => {
                let mut s = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(ApiError::invalid(
                            "messages",
                            format!("content part type `{}` is not supported", p.kind),
                        ));
                    }
                    s.push_str(p.text.as_deref().unwrap_or_default());
                }
                Ok(s)
            }
        }
    }
}
