//! Text scanning the formats share: where a JSON value ends, how much of a
//! chunk could be the start of a marker, and the call objects inside JSON.

use serde_json::Value;

use crate::Call;

/// The byte length of the JSON object or array at the start of `s` (after
/// whitespace), or `None` while it is incomplete. Brackets inside strings
/// (escapes included) do not count.
pub fn json_end(s: &str) -> Option<usize> {
    let start = s.len() - s.trim_start().len();
    let b = s.as_bytes();
    if !matches!(b.get(start), Some(b'{' | b'[')) {
        return None;
    }
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for (i, &c) in b.iter().enumerate().skip(start) {
        if in_str {
            match c {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// How many bytes at the end of `text` could begin `marker` (so must be held
/// back until the next chunk says whether they do).
pub fn partial_marker(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && marker.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

/// A call from one JSON object `{"name": ..., <args>: {...}}`, where the
/// arguments are under any of `args_keys` (an object, or a string holding one).
pub fn call_from_json(v: &Value, args_keys: &[&str]) -> Option<Call> {
    let o = v.as_object()?;
    let name = o.get("name")?.as_str()?.to_string();
    let args = args_keys.iter().find_map(|k| o.get(*k)).cloned().unwrap_or(Value::Object(Default::default()));
    let arguments = match args {
        Value::String(s) => serde_json::from_str::<Value>(&s).ok().filter(Value::is_object)?,
        v @ Value::Object(_) => v,
        _ => return None,
    };
    Some(Call { name, arguments })
}

/// Calls from JSON text that is one call object or an array of them.
pub fn calls_from_json(text: &str, args_keys: &[&str]) -> Option<Vec<Call>> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    match &v {
        Value::Array(items) if !items.is_empty() => items.iter().map(|i| call_from_json(i, args_keys)).collect(),
        Value::Object(_) => Some(vec![call_from_json(&v, args_keys)?]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_ends() {
        assert_eq!(json_end(r#"{"a": "}"}xyz"#), Some(10));
        assert_eq!(json_end(r#"  [1, {"b": "\"]"}] tail"#), Some(19));
        assert_eq!(json_end(r#"{"a": {"#), None);
        assert_eq!(json_end("text"), None);
    }

    #[test]
    fn partial_markers() {
        assert_eq!(partial_marker("hello <tool", "<tool_call>"), 5);
        assert_eq!(partial_marker("hello", "<tool_call>"), 0);
        assert_eq!(partial_marker("a <", "<tool_call>"), 1);
        assert_eq!(partial_marker("é", "<x>"), 0);
    }

    #[test]
    fn calls_in_json() {
        let c = calls_from_json(r#"{"name": "f", "arguments": "{\"x\": 1}"}"#, &["arguments"]).unwrap();
        assert_eq!(c[0].arguments["x"], 1, "string arguments are parsed");
        let c = calls_from_json(r#"[{"name": "f", "parameters": {}}, {"name": "g"}]"#, &["parameters"]).unwrap();
        assert_eq!(c.len(), 2);
        assert!(calls_from_json(r#"{"arguments": {}}"#, &["arguments"]).is_none(), "no name");
        assert!(calls_from_json(r#"{"name": "f", "arguments": 3}"#, &["arguments"]).is_none());
    }
}
