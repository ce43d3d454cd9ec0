//! Llama 3.1 JSON: the message is `{"name": ..., "parameters": {...}}`
//! (several joined by `; `), optionally after `<|python_tag|>`.

use serde_json::json;

use super::{Format, Parser, WholeMessageParser, Wrap};
use crate::scan::{calls_from_json, json_end};
use crate::{Call, Function, call_schema, definitions};

pub struct Llama3;

const TAG: &str = "<|python_tag|>";

fn parse(text: &str) -> Option<Vec<Call>> {
    let mut rest = text.trim().strip_prefix(TAG).unwrap_or(text.trim()).trim_start();
    let mut calls = Vec::new();
    while !rest.is_empty() {
        let end = json_end(rest)?;
        calls.extend(calls_from_json(&rest[..end], &["parameters", "arguments"]).filter(|c| c.len() == 1)?);
        rest = rest[end..].trim_start();
        rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
    }
    (!calls.is_empty()).then_some(calls)
}

impl Format for Llama3 {
    fn name(&self) -> &'static str {
        "llama3"
    }

    fn system_prompt(&self, functions: &[Function]) -> String {
        format!(
            "Given the following functions, please respond with a JSON for a function call with its proper arguments \
             that best answers the given prompt.\n\nRespond in the format {{\"name\": function name, \"parameters\": \
             dictionary of argument name and its value}}. Do not use variables.\n\n{}",
            definitions(functions)
        )
    }

    fn write_calls(&self, calls: &[Call]) -> String {
        calls
            .iter()
            .map(|c| json!({"name": c.name, "parameters": c.arguments}).to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn tool_result(&self, content: &str) -> (String, String) {
        ("ipython".into(), content.into())
    }

    fn wrap(&self, functions: &[&Function], parallel: bool) -> Option<Wrap> {
        Some(Wrap {
            value: json!({"json_schema": call_schema(functions, "name", "parameters")}),
            open: String::new(),
            close: String::new(),
            prefix: String::new(),
            suffix: String::new(),
            separator: "; ".into(),
            max_values: if parallel { 4 } else { 1 },
            trigger: "{".into(),
            trigger_at_start: true,
            whole_message: true,
        })
    }

    fn parser(&self) -> Box<dyn Parser> {
        Box::new(WholeMessageParser::new(&["{", TAG], parse))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{calls, same_at_every_split};
    use super::*;
    use crate::Piece;

    #[test]
    fn calls_and_prose_at_every_split() {
        let out = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"name\": \"now\", \"parameters\": {}}";
        let c = calls(&same_at_every_split(&Llama3, out));
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].1["city"], "Paris");
        let tagged = "<|python_tag|>{\"name\": \"now\", \"parameters\": {}}";
        assert_eq!(calls(&same_at_every_split(&Llama3, tagged)).len(), 1);
        let prose = "The weather is {probably} fine.";
        assert_eq!(same_at_every_split(&Llama3, prose), vec![Piece::Text(prose.into())]);
        let broken = "{\"name\": \"f\", \"parameters\": {} } trailing words";
        assert_eq!(same_at_every_split(&Llama3, broken), vec![Piece::Text(broken.into())]);
    }
}
