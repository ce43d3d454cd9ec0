//! The OpenAI response wire format, as typed structs shared by the streaming
//! and the non-streaming paths, so the two cannot drift: a chunk and a whole
//! response are built from the same pieces ([`ToolCall`], [`Logprobs`],
//! [`Usage`]) by the same [`Reply`] folding the pipeline's events.

use serde::Serialize;
use weft_runtime::ToolCall as PluginCall;

use crate::pipeline::generate::TokenLogprob;

/// Which endpoint answers: the objects and choice shapes differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    fn object(self, chunk: bool) -> &'static str {
        match (self, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
    pub prompt_tokens_details: PromptDetails,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PromptDetails {
    pub cached_tokens: usize,
}

impl Usage {
    pub fn new(prompt: usize, cached: usize, completion: usize) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: PromptDetails { cached_tokens: cached },
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logprobs {
    pub content: Vec<TokenLogprobWire>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenLogprobWire {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

impl Logprobs {
    fn of(lps: &[TokenLogprob]) -> Option<Self> {
        (!lps.is_empty()).then(|| Logprobs {
            content: lps
                .iter()
                .map(|t| TokenLogprobWire {
                    token: t.token.clone(),
                    logprob: t.logprob,
                    bytes: t.bytes.clone(),
                    top_logprobs: t
                        .top
                        .iter()
                        .map(|(s, b, l)| TopLogprob { token: s.clone(), logprob: *l, bytes: b.clone() })
                        .collect(),
                })
                .collect(),
        })
    }
}

/// `{id, type: "function", function: {name, arguments}}`; in a stream each
/// call also carries its position in the message (`index`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments object as JSON text.
    pub arguments: String,
}

impl ToolCall {
    fn of(c: &PluginCall, index: Option<usize>) -> Self {
        Self {
            index,
            id: c.id.clone(),
            kind: "function",
            function: FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub role: &'static str,
    /// Null when the message is only tool calls.
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One choice: a chat message or delta, or a completion's text.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Choice {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub logprobs: Option<Logprobs>,
    pub finish_reason: Option<&'static str>,
}

/// A whole response or one chunk of a stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Response {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A choice as it accumulates (non-streaming).
#[derive(Default)]
struct Acc {
    text: String,
    logprobs: Vec<TokenLogprob>,
    calls: Vec<PluginCall>,
    finish: Option<&'static str>,
    /// A delta (streaming) has gone out: the role is sent once.
    started: bool,
}

/// One request's answer, built from the pipeline's events: whole
/// ([`Reply::finish`]) or chunk by chunk ([`Reply::chunk`]).
pub struct Reply {
    pub endpoint: Endpoint,
    pub id: String,
    pub created: u64,
    pub model: String,
    choices: Vec<Acc>,
    prompt: usize,
    cached: usize,
    completion: usize,
}

impl Reply {
    pub fn new(endpoint: Endpoint, id: String, created: u64, model: String, n: usize) -> Self {
        Self {
            endpoint,
            id,
            created,
            model,
            choices: (0..n).map(|_| Acc::default()).collect(),
            prompt: 0,
            cached: 0,
            completion: 0,
        }
    }

    fn response(&self, chunk: bool, choices: Vec<Choice>, usage: Option<Usage>) -> Response {
        Response {
            id: self.id.clone(),
            object: self.endpoint.object(chunk),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        }
    }

    pub fn usage(&self) -> Usage {
        Usage::new(self.prompt, self.cached, self.completion)
    }

    /// Records text (and its tokens' logprobs) for choice `index`; returns its chunk.
    pub fn text(&mut self, index: usize, text: String, logprobs: Vec<TokenLogprob>) -> Response {
        let lp = Logprobs::of(&logprobs);
        let c = &mut self.choices[index];
        c.text.push_str(&text);
        c.logprobs.extend(logprobs);
        let choice = match self.endpoint {
            Endpoint::Chat => {
                let role = (!std::mem::replace(&mut c.started, true)).then_some("assistant");
                Choice {
                    index,
                    message: None,
                    delta: Some(Delta { role, content: Some(text), tool_calls: None }),
                    text: None,
                    logprobs: lp,
                    finish_reason: None,
                }
            }
            Endpoint::Completion => {
                Choice { index, message: None, delta: None, text: Some(text), logprobs: lp, finish_reason: None }
            }
        };
        self.response(true, vec![choice], None)
    }

    /// Records a tool call for choice `index`; returns its chunk (the whole
    /// call in one delta, which OpenAI clients accumulate like any other).
    pub fn tool_call(&mut self, index: usize, mut call: PluginCall) -> Response {
        // Ids must be unique within the response: choices of one request parse
        // the same conversation, so a format's ids may repeat across them.
        if self.choices.iter().flat_map(|c| &c.calls).any(|x| x.id == call.id) {
            call.id = format!("{}_{index}_{}", call.id, self.choices[index].calls.len());
        }
        let c = &mut self.choices[index];
        let role = (!std::mem::replace(&mut c.started, true)).then_some("assistant");
        let wire = ToolCall::of(&call, Some(c.calls.len()));
        c.calls.push(call);
        let delta = Delta { role, content: None, tool_calls: Some(vec![wire]) };
        let choice =
            Choice { index, message: None, delta: Some(delta), text: None, logprobs: None, finish_reason: None };
        self.response(true, vec![choice], None)
    }

    /// Records the end of choice `index`; returns its final chunk.
    pub fn done(
        &mut self,
        index: usize,
        reason: &'static str,
        prompt: usize,
        cached: usize,
        completion: usize,
    ) -> Response {
        self.prompt = self.prompt.max(prompt);
        self.cached = self.cached.max(cached);
        self.completion += completion;
        self.choices[index].finish = Some(reason);
        let choice = match self.endpoint {
            Endpoint::Chat => Choice {
                index,
                message: None,
                delta: Some(Delta::default()),
                text: None,
                logprobs: None,
                finish_reason: Some(reason),
            },
            Endpoint::Completion => Choice {
                index,
                message: None,
                delta: None,
                text: Some(String::new()),
                logprobs: None,
                finish_reason: Some(reason),
            },
        };
        self.response(true, vec![choice], None)
    }

    /// The usage chunk that ends a stream with `include_usage`.
    pub fn usage_chunk(&self) -> Response {
        self.response(true, Vec::new(), Some(self.usage()))
    }

    /// The whole response (non-streaming).
    pub fn finish(self) -> Response {
        let choices = self
            .choices
            .iter()
            .enumerate()
            .map(|(index, c)| {
                let logprobs = Logprobs::of(&c.logprobs);
                let finish_reason = Some(c.finish.unwrap_or("stop"));
                match self.endpoint {
                    Endpoint::Chat => {
                        let content =
                            if c.text.is_empty() && !c.calls.is_empty() { None } else { Some(c.text.clone()) };
                        let tool_calls = c.calls.iter().map(|t| ToolCall::of(t, None)).collect();
                        Choice {
                            index,
                            message: Some(Message { role: "assistant", content, tool_calls }),
                            delta: None,
                            text: None,
                            logprobs,
                            finish_reason,
                        }
                    }
                    Endpoint::Completion => Choice {
                        index,
                        message: None,
                        delta: None,
                        text: Some(c.text.clone()),
                        logprobs,
                        finish_reason,
                    },
                }
            })
            .collect();
        let usage = Some(self.usage());
        self.response(false, choices, usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str) -> PluginCall {
        PluginCall { id: format!("call_{name}"), name: name.into(), arguments: "{\"a\":1}".into() }
    }

    /// The chunks of a stream add up to the whole response: same text, same
    /// calls in the same order, same finish reason and usage.
    #[test]
    fn chunks_and_whole_agree() {
        let mut r = Reply::new(Endpoint::Chat, "chatcmpl-1".into(), 7, "m".into(), 1);
        let chunks = [
            r.text(0, "Let me check. ".into(), Vec::new()),
            r.tool_call(0, call("weather")),
            r.tool_call(0, call("time")),
            r.done(0, "tool_calls", 10, 2, 30),
        ];
        let first = serde_json::to_value(&chunks[0]).unwrap();
        assert_eq!(first["object"], "chat.completion.chunk");
        assert_eq!(first["choices"][0]["delta"], serde_json::json!({"role": "assistant", "content": "Let me check. "}));
        let second = serde_json::to_value(&chunks[1]).unwrap();
        assert_eq!(
            second["choices"][0]["delta"],
            serde_json::json!({"tool_calls": [{"index": 0, "id": "call_weather", "type": "function",
                "function": {"name": "weather", "arguments": "{\"a\":1}"}}]})
        );
        assert_eq!(serde_json::to_value(&chunks[2]).unwrap()["choices"][0]["delta"]["tool_calls"][0]["index"], 1);
        assert_eq!(serde_json::to_value(&chunks[3]).unwrap()["choices"][0]["finish_reason"], "tool_calls");
        let usage = serde_json::to_value(r.usage_chunk()).unwrap();
        assert_eq!(usage["usage"]["total_tokens"], 40);
        assert_eq!(usage["choices"], serde_json::json!([]));

        let whole = serde_json::to_value(r.finish()).unwrap();
        assert_eq!(whole["object"], "chat.completion");
        let m = &whole["choices"][0]["message"];
        assert_eq!(m["content"], "Let me check. ");
        assert_eq!(m["tool_calls"][1]["function"]["name"], "time");
        assert!(m["tool_calls"][0].get("index").is_none(), "a whole message's calls carry no stream index");
        assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    }

    #[test]
    fn call_ids_are_unique_across_choices() {
        let mut r = Reply::new(Endpoint::Chat, "c".into(), 0, "m".into(), 2);
        r.tool_call(0, call("f"));
        r.tool_call(1, call("f"));
        let whole = serde_json::to_value(r.finish()).unwrap();
        assert_ne!(
            whole["choices"][0]["message"]["tool_calls"][0]["id"],
            whole["choices"][1]["message"]["tool_calls"][0]["id"]
        );
    }

    #[test]
    fn a_message_of_only_calls_has_null_content() {
        let mut r = Reply::new(Endpoint::Chat, "c".into(), 0, "m".into(), 1);
        r.tool_call(0, call("f"));
        r.done(0, "tool_calls", 1, 0, 1);
        let whole = serde_json::to_value(r.finish()).unwrap();
        assert!(whole["choices"][0]["message"]["content"].is_null());
    }

    #[test]
    fn completions_keep_their_shape() {
        let mut r = Reply::new(Endpoint::Completion, "cmpl-1".into(), 0, "m".into(), 2);
        let c = serde_json::to_value(r.text(1, "hi".into(), Vec::new())).unwrap();
        assert_eq!(c["object"], "text_completion");
        assert_eq!(
            c["choices"][0],
            serde_json::json!({"index": 1, "text": "hi", "logprobs": null, "finish_reason": null})
        );
        r.done(0, "length", 3, 0, 4);
        r.done(1, "stop", 3, 0, 1);
        let whole = serde_json::to_value(r.finish()).unwrap();
        assert_eq!(whole["choices"][1]["text"], "hi");
        assert_eq!(whole["choices"][0]["finish_reason"], "length");
        assert!(whole["choices"][0].get("message").is_none());
    }
}
