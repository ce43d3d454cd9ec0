//! Mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`, one
//! marker then a JSON array of every call.
//!
//! In Mistral's own vocabularies `[TOOL_CALLS]` is a control token with no
//! text, which a byte-level constraint cannot emit: forcing calls there needs
//! the marker as text (as in models that spell it out).

use serde_json::json;

use super::{Format, MarkerParser, Parser, Wrap};
use crate::scan::calls_from_json;
use crate::{Call, Function, call_schema, definitions};

pub struct Mistral;

const OPEN: &str = "[TOOL_CALLS]";

fn parse(body: &str) -> Option<Vec<Call>> {
    calls_from_json(body, &["arguments", "parameters"])
}

impl Format for Mistral {
    fn name(&self) -> &'static str {
        "mistral"
    }

    fn system_prompt(&self, functions: &[Function]) -> String {
        let defs: Vec<serde_json::Value> =
            definitions(functions).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        format!(
            "[AVAILABLE_TOOLS] {} [/AVAILABLE_TOOLS]\nTo call functions, answer with {OPEN} followed by a JSON list \
             of calls: {OPEN}[{{\"name\": <function-name>, \"arguments\": <args-json-object>}}]",
            serde_json::Value::Array(defs)
        )
    }

    fn write_calls(&self, calls: &[Call]) -> String {
        let list: Vec<_> = calls.iter().map(|c| json!({"name": c.name, "arguments": c.arguments})).collect();
        format!("{OPEN}{}", serde_json::Value::Array(list))
    }

    fn tool_result(&self, content: &str) -> (String, String) {
        ("tool".into(), format!("[TOOL_RESULTS] {content} [/TOOL_RESULTS]"))
    }

    fn wrap(&self, functions: &[&Function], parallel: bool) -> Option<Wrap> {
        Some(Wrap {
            value: json!({"json_schema": {
                "type": "array", "items": call_schema(functions, "name", "arguments"),
                "minItems": 1, "maxItems": if parallel { 4 } else { 1 },
            }}),
            open: String::new(),
            close: String::new(),
            prefix: OPEN.into(),
            suffix: String::new(),
            separator: String::new(),
            max_values: 1,
            trigger: OPEN.into(),
            trigger_at_start: false,
            whole_message: false,
        })
    }

    fn parser(&self) -> Box<dyn Parser> {
        Box::new(MarkerParser::new(OPEN, None, parse))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{calls, same_at_every_split};
    use super::*;
    use crate::Piece;

    #[test]
    fn one_marker_several_calls_at_every_split() {
        let out = "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome ]\"}}]";
        let p = same_at_every_split(&Mistral, out);
        let c = calls(&p);
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].1["city"], "Rome ]", "brackets inside strings do not end the list");
        assert!(p.iter().all(|x| matches!(x, Piece::Call(..))));
    }

    #[test]
    fn text_around_and_broken_lists() {
        let p = same_at_every_split(&Mistral, "Sure. [TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}] done");
        assert_eq!(p.first(), Some(&Piece::Text("Sure. ".into())));
        assert_eq!(calls(&p).len(), 1);
        assert_eq!(p.last(), Some(&Piece::Text("done".into())), "the space after the call is not text");
        let p = same_at_every_split(&Mistral, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\":");
        assert!(calls(&p).is_empty(), "cut off: text");
        let call = Call { name: "g".into(), arguments: json!({"q": "x"}) };
        let p = same_at_every_split(&Mistral, &Mistral.write_calls(&[call]));
        assert_eq!(calls(&p)[0].0, "g");
    }
}
