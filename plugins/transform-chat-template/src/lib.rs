//! Chat templates: renders OpenAI-style messages into the model's prompt with
//! its Jinja template (minijinja, configured like Hugging Face's renderer:
//! `trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`,
//! `tojson`).
//!
//! Templates that refuse a system message (they `raise_exception` on it) get
//! it folded into the first user message, as llama.cpp does, so every
//! conversation renders. There is no clock in the sandbox: `strftime_now`
//! formats the date given in the plugin's `today` setting (default 2025-01-01).
//!
//! Tool calling: the request's `tools` reach the template as `tools` (OpenAI
//! shape), assistant messages carry `tool_calls` (with `function.arguments`
//! parsed into an object, as Hugging Face and vLLM hand them to templates),
//! and `tool` messages their `tool_call_id`, so templates with native tool
//! support render them.

use minijinja::{Environment, Error, ErrorKind, Value};
use serde::Serialize;

/// One chat message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// An earlier call, in the shape templates read: `{id, type, function: {name, arguments}}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FunctionCall {
    pub name: String,
    /// The arguments object (the JSON text parsed; kept as a string if it is not JSON).
    pub arguments: serde_json::Value,
}

impl ToolCall {
    pub fn new(id: &str, name: &str, arguments: &str) -> Self {
        let arguments = serde_json::from_str(arguments).unwrap_or_else(|_| serde_json::Value::String(arguments.into()));
        Self { id: id.into(), kind: "function", function: FunctionCall { name: name.into(), arguments } }
    }
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into(), name: None, tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn strftime(fmt: &str, (y, m, d): (i32, u32, u32)) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('-') => {
                if chars.next() == Some('d') {
                    out.push_str(&d.to_string())
                }
            }
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y % 100)),
            Some('b') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('B') => out.push_str(LONG_MONTHS[(m - 1) as usize]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let mut it = s.split('-');
    let y = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then_some((y, m, d))
}

impl ChatTemplate {
    /// Compiles `source`. `today` is `YYYY-MM-DD` for templates that print the date.
    pub fn new(source: &str, bos: &str, eos: &str, today: Option<&str>) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        let date = today.and_then(parse_date).unwrap_or((2025, 1, 1));
        env.add_function("strftime_now", move |fmt: String| strftime(&fmt, date));
        // Jinja2: None is not iterable (minijinja says it is), Undefined is.
        env.add_test("iterable", |v: Value| {
            use minijinja::value::ValueKind;
            !matches!(v.kind(), ValueKind::None | ValueKind::Bool | ValueKind::Number)
        });
        env.add_template_owned("chat", strip_generation_tags(source))
            .map_err(|e| format!("chat template does not compile: {e:#}"))?;
        Ok(Self { env, bos: bos.into(), eos: eos.into() })
    }

    /// Renders the conversation; `add_generation_prompt` opens the assistant's turn.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// [`render`](Self::render) with the request's tool definitions (OpenAI
    /// `tools`), which the template sees as `tools`.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        match self.render_raw(messages, tools, add_generation_prompt) {
            Ok(s) => Ok(s),
            Err(e) if messages.first().is_some_and(|m| m.role == "system") => {
                // The template may not take a system role: fold it into the first user turn.
                let folded = fold_system(messages);
                self.render_raw(&folded, tools, add_generation_prompt)
                    .map_err(|e2| format!("{e2} (and with the system message folded in; first error: {e})"))
            }
            Err(e) => Err(e),
        }
    }

    fn render_raw(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String, String> {
        let tmpl = self.env.get_template("chat").map_err(|e| e.to_string())?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
            tools => tools.map_or(Value::from(()), Value::from_serialize),
        })
        .map_err(|e| format!("chat template: {e:#}"))
    }
}

/// Hugging Face's `{% generation %}` ... `{% endgeneration %}` only marks the
/// assistant's tokens for training masks; rendering ignores it. minijinja does
/// not know the tag, so it becomes a no-op block (keeping whitespace control).
fn strip_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(open) = rest.find("{%") {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        let Some(close) = tail.find("%}") else {
            out.push_str(tail);
            return out;
        };
        let inner = &tail[2..close];
        let (lead, body, trail) = {
            let lead = inner.starts_with('-') || inner.starts_with('+');
            let trail = inner.ends_with('-') || inner.ends_with('+');
            let b = inner.trim_start_matches(['-', '+']).trim_end_matches(['-', '+']).trim();
            (if lead { &inner[..1] } else { "" }, b, if trail { &inner[inner.len() - 1..] } else { "" })
        };
        match body {
            "generation" => out.push_str(&format!("{{%{lead} if true {trail}%}}")),
            "endgeneration" => out.push_str(&format!("{{%{lead} endif {trail}%}}")),
            _ => out.push_str(&tail[..close + 2]),
        }
        rest = &tail[close + 2..];
    }
    out.push_str(rest);
    out
}

/// The request's `tools` parameter (JSON text) as the template's `tools`.
pub fn tools_param(param: Option<&str>) -> Result<Option<serde_json::Value>, String> {
    match param {
        None => Ok(None),
        Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(serde_json::Value::Null) => Ok(None),
            Ok(v @ serde_json::Value::Array(_)) => Ok(Some(v)),
            Ok(_) => Err("`tools` must be an array".into()),
            Err(e) => Err(format!("`tools` is not JSON: {e}")),
        },
    }
}

fn fold_system(messages: &[Message]) -> Vec<Message> {
    let system = &messages[0].content;
    let mut out: Vec<Message> = messages[1..].to_vec();
    match out.iter_mut().find(|m| m.role == "user") {
        Some(u) => u.content = format!("{system}\n\n{}", u.content),
        None => out.insert(0, Message::new("user", system)),
    }
    out
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation() -> Vec<Message> {
        vec![
            Message::new("system", "You are a terse assistant."),
            Message::new("user", "What is the capital of France?"),
            Message::new("assistant", "Paris."),
            Message::new("user", "And of Italy?"),
        ]
    }

    #[test]
    fn chatml_renders_exactly() {
        let src = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
        let t = ChatTemplate::new(src, "", "", None).unwrap();
        let out = t.render(&conversation()[..2], true).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a terse assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    /// A template with native tool support sees the tools, the assistant's
    /// calls with their arguments as an object, and the tool's answer.
    #[test]
    fn tools_and_calls_reach_the_template() {
        let src = "{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}\n{% endif %}\
{% for m in messages %}{{ m.role }}:{{ m.content }}{% for c in m.tool_calls %}[{{ c.function.name }} {{ c.function.arguments | tojson }}]{% endfor %}\
{% if m.tool_call_id %}({{ m.tool_call_id }}){% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(src, "", "", None).unwrap();
        let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]);
        let mut call = Message::new("assistant", "");
        call.tool_calls.push(ToolCall::new("call_1", "get_weather", r#"{"city": "Paris"}"#));
        let mut answer = Message::new("tool", "18C");
        answer.tool_call_id = Some("call_1".into());
        let out = t.render_with_tools(&[Message::new("user", "weather?"), call, answer], Some(&tools), false).unwrap();
        // (`trim_blocks` eats the newline after each block tag, as Hugging Face's renderer does.)
        assert_eq!(out, "TOOLS:get_weather;user:weather?assistant:[get_weather {\"city\":\"Paris\"}]tool:18C(call_1)");
        // Without tools, `tools` is undefined-like: the block is skipped.
        let plain = t.render(&[Message::new("user", "hi")], false).unwrap();
        assert_eq!(plain, "user:hi");
    }

    #[test]
    fn every_fixture_template_renders_the_standard_conversation() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/chat-templates");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("fixtures not found at {}", dir.display());
        };
        let mut failures = Vec::new();
        let mut count = 0;
        for e in entries {
            let path = e.unwrap().path();
            let src = std::fs::read_to_string(&path).unwrap();
            count += 1;
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let result = ChatTemplate::new(&src, "<s>", "</s>", Some("2024-07-26"))
                .and_then(|t| t.render(&conversation(), true));
            match result {
                Ok(out) => {
                    // Every message's content appears, in order.
                    let mut at = 0;
                    for m in &conversation()[1..] {
                        match out[at..].find(&m.content) {
                            Some(p) => at += p + m.content.len(),
                            None => failures.push(format!("{name}: `{}` missing or out of order", m.content)),
                        }
                    }
                    if !out.contains("You are a terse assistant.") {
                        failures.push(format!("{name}: system text missing"));
                    }
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        assert!(count >= 40, "only {count} templates found");
        assert!(failures.is_empty(), "{} of {count} failed:\n{}", failures.len(), failures.join("\n"));
    }
}
