//! Hermes / Qwen: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
//! anywhere in the message, one block per call.

use serde_json::json;

use super::{Format, MarkerParser, Parser, Wrap};
use crate::scan::calls_from_json;
use crate::{Call, Function, call_schema, definitions};

pub struct Hermes;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

fn parse(body: &str) -> Option<Vec<Call>> {
    calls_from_json(body, &["arguments", "parameters"]).filter(|c| c.len() == 1)
}

impl Format for Hermes {
    fn name(&self) -> &'static str {
        "hermes"
    }

    fn system_prompt(&self, functions: &[Function]) -> String {
        format!(
            "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n\
             You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n{}\n</tools>\n\n\
             For each function call, return a json object with function name and arguments within \
             <tool_call></tool_call> XML tags:\n<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-json-object>}}\n</tool_call>",
            definitions(functions)
        )
    }

    fn write_calls(&self, calls: &[Call]) -> String {
        calls
            .iter()
            .map(|c| format!("{OPEN}\n{}\n{CLOSE}", json!({"name": c.name, "arguments": c.arguments})))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn tool_result(&self, content: &str) -> (String, String) {
        ("user".into(), format!("<tool_response>\n{content}\n</tool_response>"))
    }

    fn wrap(&self, functions: &[&Function], parallel: bool) -> Option<Wrap> {
        Some(Wrap {
            value: json!({"json_schema": call_schema(functions, "name", "arguments")}),
            open: String::new(),
            close: String::new(),
            prefix: format!("{OPEN}\n"),
            suffix: format!("\n{CLOSE}"),
            separator: "\n".into(),
            max_values: if parallel { 4 } else { 1 },
            trigger: OPEN.into(),
            trigger_at_start: false,
            whole_message: false,
        })
    }

    fn parser(&self) -> Box<dyn Parser> {
        Box::new(MarkerParser::new(OPEN, Some(CLOSE), parse))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{calls, same_at_every_split};
    use super::*;
    use crate::Piece;

    #[test]
    fn text_and_calls_at_every_split() {
        // As Qwen2.5 writes it: a sentence, then two calls.
        let out = "I'll check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"Europe/Paris\"}}\n</tool_call>";
        let p = same_at_every_split(&Hermes, out);
        assert_eq!(p[0], Piece::Text("I'll check both.\n".into()));
        assert_eq!(p.len(), 3, "the newline between the calls is not text: {p:?}");
        let c = calls(&p);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].0.as_str(), c[0].1["city"].as_str()), ("get_weather", Some("Paris")));
        assert_eq!(c[1].1["tz"], "Europe/Paris");
    }

    #[test]
    fn lookalikes_and_broken_calls_stay_text() {
        let p = same_at_every_split(&Hermes, "a < b and <tool> is not a call");
        assert_eq!(p, vec![Piece::Text("a < b and <tool> is not a call".into())]);
        let broken = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": }\n</tool_call> after";
        let p = same_at_every_split(&Hermes, broken);
        assert!(calls(&p).is_empty());
        assert_eq!(p, vec![Piece::Text(broken.into())]);
        // Unclosed at the end of the message: still a call if it parses.
        let p = same_at_every_split(&Hermes, "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n");
        assert_eq!(calls(&p).len(), 1);
    }

    #[test]
    fn history_round_trips_through_the_parser() {
        let call = Call { name: "f".into(), arguments: json!({"a": [1, "}"]}) };
        let text = Hermes.write_calls(&[call.clone(), call.clone()]);
        let p = same_at_every_split(&Hermes, &text);
        assert_eq!(calls(&p), vec![("f".into(), call.arguments.clone()); 2]);
    }
}
