//! Pythonic (Llama 3.2 / 4 style): the message is a Python list of calls,
//! `[get_weather(city="Paris"), now()]`, arguments as Python literals.
//!
//! Forced and lazily constrained calls use the structured sampler's
//! `python_calls`: keyword arguments from each function's schema, values as
//! Python literals.

use serde_json::{Map, Value};

use super::{Format, Parser, WholeMessageParser, Wrap};
use crate::{Call, Function, definitions};

pub struct Pythonic;

/// A small recursive-descent reader of Python literals and calls.
struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let ok = self.s.get(self.i) == Some(&b);
        self.i += ok as usize;
        ok
    }

    fn ident(&mut self) -> Option<String> {
        self.ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-' || *b == b'.') {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// `a, b, c` up to `close` (a trailing comma allowed).
    fn list<T>(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Some(out);
            }
            out.push(item(self)?);
            if !self.eat(b',') {
                return self.eat(close).then_some(out);
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let q = *self.s.get(self.i)?;
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = *self.s.get(self.i)?;
            self.i += 1;
            match b {
                _ if b == q => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        other => other,
                    });
                }
                _ => out.push(b),
            }
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.ws();
        match *self.s.get(self.i)? {
            b'"' | b'\'' => self.string().map(Value::String),
            b'[' | b'(' => {
                let close = if self.s[self.i] == b'[' { b']' } else { b')' };
                self.i += 1;
                self.list(close, |r| r.value()).map(Value::Array)
            }
            b'{' => {
                self.i += 1;
                let pairs = self.list(b'}', |r| {
                    let k = match r.value()? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    r.eat(b':').then_some(())?;
                    Some((k, r.value()?))
                })?;
                Some(Value::Object(pairs.into_iter().collect()))
            }
            _ => {
                let word = self.ident()?;
                match word.as_str() {
                    "True" | "true" => Some(Value::Bool(true)),
                    "False" | "false" => Some(Value::Bool(false)),
                    "None" | "null" => Some(Value::Null),
                    _ => serde_json::from_str::<serde_json::Number>(&word).ok().map(Value::Number),
                }
            }
        }
    }

    fn number_sign(&mut self) -> Option<Value> {
        self.ws();
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
            let v = self.value()?;
            return serde_json::from_str(&format!("-{v}")).ok();
        }
        self.value()
    }

    fn call(&mut self) -> Option<Call> {
        let name = self.ident()?;
        if !self.eat(b'(') {
            return None;
        }
        let args = self.list(b')', |r| {
            let k = r.ident()?;
            r.eat(b'=').then_some(())?;
            Some((k, r.number_sign()?))
        })?;
        Some(Call { name, arguments: Value::Object(args.into_iter().collect::<Map<_, _>>()) })
    }
}

fn parse(text: &str) -> Option<Vec<Call>> {
    let mut r = Reader { s: text.trim().as_bytes(), i: 0 };
    if !r.eat(b'[') {
        return None;
    }
    let calls = r.list(b']', |r| r.call())?;
    r.ws();
    (r.i == r.s.len() && !calls.is_empty()).then_some(calls)
}

/// A JSON value as a Python literal.
fn py(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Array(a) => format!("[{}]", a.iter().map(py).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => {
            format!(
                "{{{}}}",
                o.iter()
                    .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), py(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        other => other.to_string(),
    }
}

impl Format for Pythonic {
    fn name(&self) -> &'static str {
        "pythonic"
    }

    fn system_prompt(&self, functions: &[Function]) -> String {
        format!(
            "You can call functions. To call one or more, answer with only a Python list of calls, for example \
             [func_name1(param1=value1, param2=value2), func_name2(param=value)], and nothing else.\n\
             The functions:\n{}",
            definitions(functions)
        )
    }

    fn write_calls(&self, calls: &[Call]) -> String {
        let one = |c: &Call| {
            let args = c
                .arguments
                .as_object()
                .map(|o| o.iter().map(|(k, v)| format!("{k}={}", py(v))).collect::<Vec<_>>().join(", "));
            format!("{}({})", c.name, args.unwrap_or_default())
        };
        format!("[{}]", calls.iter().map(one).collect::<Vec<_>>().join(", "))
    }

    fn tool_result(&self, content: &str) -> (String, String) {
        ("ipython".into(), content.into())
    }

    fn wrap(&self, functions: &[&Function], parallel: bool) -> Option<Wrap> {
        let calls: Vec<Value> =
            functions.iter().map(|f| serde_json::json!({"name": f.name, "parameters": f.parameters})).collect();
        Some(Wrap {
            value: serde_json::json!({"python_calls": calls}),
            open: "[".into(),
            close: "]".into(),
            prefix: String::new(),
            suffix: String::new(),
            separator: ", ".into(),
            max_values: if parallel { 4 } else { 1 },
            trigger: "[".into(),
            trigger_at_start: true,
            whole_message: true,
        })
    }

    fn parser(&self) -> Box<dyn Parser> {
        Box::new(WholeMessageParser::new(&["["], parse))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{calls, same_at_every_split};
    use super::*;
    use crate::Piece;
    use serde_json::json;

    #[test]
    fn python_calls_at_every_split() {
        let out = "[get_weather(city='Paris', days=3, metric=True), search(q=\"a, b\", tags=['x', \"y\"], limit=None, filt={'k': -1.5}), now()]";
        let c = calls(&same_at_every_split(&Pythonic, out));
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].1, json!({"city": "Paris", "days": 3, "metric": true}));
        assert_eq!(c[1].1, json!({"q": "a, b", "tags": ["x", "y"], "limit": null, "filt": {"k": -1.5}}));
        assert_eq!(c[2], ("now".into(), json!({})));
        for prose in ["[1] is a footnote.", "Nothing to call here.", "[f(x=1)] and more words"] {
            assert_eq!(same_at_every_split(&Pythonic, prose), vec![Piece::Text(prose.into())], "{prose}");
        }
    }

    #[test]
    fn history_round_trips() {
        let call = Call { name: "f".into(), arguments: json!({"a": [1, null, true], "s": "it's"}) };
        let text = Pythonic.write_calls(&[call.clone()]);
        assert_eq!(calls(&same_at_every_split(&Pythonic, &text)), vec![("f".into(), call.arguments)]);
    }
}
