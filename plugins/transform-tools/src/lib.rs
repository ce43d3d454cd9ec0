//! Tool calling as a transform plugin: a tool-call format is policy, so it is
//! a plugin, chosen per model or tenant in config (`format = "hermes" |
//! "llama3" | "mistral" | "pythonic"`), hot-reloadable like any other.
//!
//! On the request side it renders the tool definitions into the system
//! prompt (unless `render_tools = "false"`: the model's template renders the
//! `tools` it receives), rewrites earlier calls and tool results into the
//! format's text, and attaches a decoding constraint for the structured-output
//! sampler: with `tool_choice` `required` or a named function, a call from the
//! first token; with `auto`, a lazy one that applies from the moment the
//! format's opening marker is sampled until the call closes. Either way the
//! arguments match the function's schema.
//!
//! On the response side its stream parses the text as it arrives into
//! [`Piece`]s: text passes on at once, except what could still be the start
//! of a call, which is held until it is one (a complete call becomes a tool
//! call) or is not (it goes out as text). A call that does not parse, or
//! names a function the request did not offer, stays text.
//!
//! Every format is one file in [`format`]; this module holds what they share.

pub mod format;
pub mod scan;

#[cfg(target_arch = "wasm32")]
mod component;

use serde_json::{Value, json};

/// A function the request offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    pub description: Option<String>,
    /// The arguments' JSON Schema (an object schema).
    pub parameters: Value,
}

/// What `tool_choice` asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice {
    None,
    Auto,
    Required,
    Named(String),
}

/// The request's tools, as the host passes them in `params`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tools {
    pub functions: Vec<Function>,
    pub choice: Choice,
    pub parallel: bool,
}

/// A call as parsed from the model's text (or given back in the history).
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    /// The arguments object.
    pub arguments: Value,
}

/// What a format's stream parser yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// A call, with the text it was parsed from (sent as text if the call is refused).
    Call(Call, String),
}

impl Tools {
    /// From the request's `tools`, `tool_choice` and `parallel_tool_calls`
    /// parameters (JSON text); `None` without tools.
    pub fn from_params(
        tools: Option<&str>,
        choice: Option<&str>,
        parallel: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let Some(tools) = tools else { return Ok(None) };
        let list: Value = serde_json::from_str(tools).map_err(|e| format!("`tools` is not JSON: {e}"))?;
        let Some(list) = list.as_array() else { return Ok(None) };
        if list.is_empty() {
            return Ok(None);
        }
        let mut functions = Vec::with_capacity(list.len());
        for t in list {
            let f = &t["function"];
            let name = f["name"].as_str().ok_or("a tool has no function name")?.to_string();
            let parameters = match &f["parameters"] {
                Value::Null => json!({"type": "object", "properties": {}}),
                p => p.clone(),
            };
            functions.push(Function { name, description: f["description"].as_str().map(str::to_string), parameters });
        }
        let choice = match choice.map(serde_json::from_str::<Value>).transpose().map_err(|e| e.to_string())? {
            None => Choice::Auto,
            Some(Value::String(s)) => match s.as_str() {
                "none" => Choice::None,
                "auto" => Choice::Auto,
                "required" => Choice::Required,
                other => return Err(format!("unknown tool_choice `{other}`")),
            },
            Some(v) => match v["function"]["name"].as_str() {
                Some(n) => Choice::Named(n.to_string()),
                None => return Err("tool_choice must name a function".into()),
            },
        };
        let parallel = parallel.is_none_or(|p| p.trim() != "false");
        Ok(Some(Self { functions, choice, parallel }))
    }

    /// The functions a call may name: all, or the one `tool_choice` names.
    pub fn callable(&self) -> Vec<&Function> {
        match &self.choice {
            Choice::Named(n) => self.functions.iter().filter(|f| &f.name == n).collect(),
            _ => self.functions.iter().collect(),
        }
    }

    pub fn offers(&self, name: &str) -> bool {
        self.functions.iter().any(|f| f.name == name)
    }
}

/// The JSON Schema of one call object, `{<name_key>: const, <args_key>: schema}`,
/// any of the callable functions.
pub fn call_schema(functions: &[&Function], name_key: &str, args_key: &str) -> Value {
    let one = |f: &Function| {
        let mut props = serde_json::Map::new();
        props.insert(name_key.into(), json!({"const": f.name}));
        props.insert(args_key.into(), f.parameters.clone());
        json!({"type": "object", "properties": props, "required": [name_key, args_key], "additionalProperties": false})
    };
    match functions {
        [f] => one(f),
        fs => json!({"anyOf": fs.iter().map(|f| one(f)).collect::<Vec<_>>()}),
    }
}

/// The tool definitions as a model reads them (one JSON object per line).
pub fn definitions(functions: &[Function]) -> String {
    functions
        .iter()
        .map(|f| {
            let mut d = serde_json::Map::new();
            d.insert("name".into(), json!(f.name));
            if let Some(desc) = &f.description {
                d.insert("description".into(), json!(desc));
            }
            d.insert("parameters".into(), f.parameters.clone());
            json!({"type": "function", "function": d}).to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A call id unique within the conversation: the conversation so far (which
/// differs every turn) hashed with the call's position. There is no clock or
/// randomness in the sandbox, and none is needed.
pub fn call_id(seed: u64, index: usize) -> String {
    let mut h = seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(index as u64 + 1);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    format!("call_{h:016x}")
}

/// FNV-1a over `bytes`.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The sampler arguments for this request's choice, if it constrains decoding:
/// `required` or a named function from the first token, `auto` lazily. An
/// error (the request's fault) when the format cannot force a call (none of
/// the shipped ones).
pub fn constraint(fmt: &dyn format::Format, tools: &Tools) -> Result<Option<Value>, String> {
    let functions = tools.callable();
    let forced = matches!(tools.choice, Choice::Required | Choice::Named(_));
    let Some(w) = fmt.wrap(&functions, tools.parallel) else {
        if forced {
            return Err(format!(
                "the `{}` tool format cannot force a call (tool_choice `required` or a named function): use `auto`",
                fmt.name()
            ));
        }
        return Ok(None);
    };
    let mut args = w.value.clone();
    for (k, v) in [("open", &w.open), ("close", &w.close), ("prefix", &w.prefix), ("suffix", &w.suffix)] {
        if !v.is_empty() {
            args[k] = json!(v);
        }
    }
    args["whitespace"] = json!("compact");
    if tools.choice == Choice::None {
        return Ok(None);
    }
    if w.max_values > 1 && (forced || w.whole_message) {
        // Lazily, marker formats open each call with its own trigger; a
        // whole-message format's trigger opens all of its calls at once.
        args["separator"] = json!(w.separator);
        args["max_values"] = json!(w.max_values);
    }
    match tools.choice {
        Choice::None | Choice::Required | Choice::Named(_) => {}
        Choice::Auto => {
            // Lazily, each trigger opens one value (a later trigger opens the next);
            // a message that is only calls, or one call, ends with it.
            args["trigger"] = json!(w.trigger);
            if w.trigger_at_start {
                args["trigger_at_start"] = json!(true);
            }
            if !tools.parallel || w.whole_message {
                args["once"] = json!(true);
            }
        }
    }
    Ok(Some(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_from_params() {
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
                        {"type":"function","function":{"name":"now"}}]"#;
        let t =
            Tools::from_params(Some(tools), Some(r#"{"type":"function","function":{"name":"now"}}"#), Some("false"))
                .unwrap()
                .unwrap();
        assert_eq!(t.choice, Choice::Named("now".into()));
        assert!(!t.parallel);
        assert_eq!(t.callable().len(), 1);
        assert_eq!(t.functions[1].parameters["type"], "object", "no parameters: an empty object");
        assert!(Tools::from_params(None, None, None).unwrap().is_none());
        assert!(Tools::from_params(Some("[]"), None, None).unwrap().is_none());
        assert_eq!(
            Tools::from_params(Some(tools), Some("\"required\""), None).unwrap().unwrap().choice,
            Choice::Required
        );
    }

    #[test]
    fn call_ids_differ_by_conversation_and_position() {
        let a = call_id(fnv(b"turn 1"), 0);
        assert_ne!(a, call_id(fnv(b"turn 1"), 1));
        assert_ne!(a, call_id(fnv(b"turn 2"), 0));
        assert_eq!(a, call_id(fnv(b"turn 1"), 0));
        assert!(a.starts_with("call_") && a.len() == 21);
    }
}
