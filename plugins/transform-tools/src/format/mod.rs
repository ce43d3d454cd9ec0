//! The tool-call formats, one per file, behind one trait: how a format
//! describes the tools to the model, writes earlier calls and results back
//! into the conversation, wraps a forced call, and parses calls out of the
//! stream. The two stream parsers here cover every format: calls opened by a
//! marker anywhere in the text ([`MarkerParser`]), or a message that is
//! nothing but calls ([`WholeMessageParser`]).

mod hermes;
mod llama3;
mod mistral;
mod pythonic;

use serde_json::Value;

use crate::scan::{json_end, partial_marker};
use crate::{Call, Function, Piece};

/// How a constrained call is written: a value (the structured sampler's
/// `json_schema` or `python_calls` argument) between `prefix` and `suffix`,
/// up to `max_values` of them joined by `separator`, all between `open` and
/// `close`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrap {
    pub value: Value,
    pub open: String,
    pub close: String,
    pub prefix: String,
    pub suffix: String,
    pub separator: String,
    pub max_values: u64,
    /// What opens a call when the model may also write text (`auto`).
    pub trigger: String,
    /// The trigger counts only at the start of the message.
    pub trigger_at_start: bool,
    /// The calls are the whole message (nothing may follow them).
    pub whole_message: bool,
}

/// One tool-call format.
pub trait Format {
    fn name(&self) -> &'static str;
    /// The system prompt text that describes `functions` and how to call them.
    fn system_prompt(&self, functions: &[Function]) -> String;
    /// An assistant's earlier calls, as the model would have written them.
    fn write_calls(&self, calls: &[Call]) -> String;
    /// A tool's answer as a message the chat template takes: (role, content).
    fn tool_result(&self, content: &str) -> (String, String);
    /// How a forced call is written; `None` if this format's calls cannot be
    /// constrained (then `required` is refused).
    fn wrap(&self, functions: &[&Function], parallel: bool) -> Option<Wrap>;
    /// A parser for one response.
    fn parser(&self) -> Box<dyn Parser>;
}

/// Turns one response's text, chunk by chunk, into text and calls.
pub trait Parser {
    fn push(&mut self, text: &str) -> Vec<Piece>;
    fn finish(&mut self) -> Vec<Piece>;
}

/// The format called `name`.
pub fn by_name(name: &str) -> Option<Box<dyn Format>> {
    Some(match name {
        "hermes" | "qwen" => Box::new(hermes::Hermes),
        "llama3" | "llama3_json" => Box::new(llama3::Llama3),
        "mistral" => Box::new(mistral::Mistral),
        "pythonic" => Box::new(pythonic::Pythonic),
        _ => return None,
    })
}

/// The names `by_name` knows.
pub const NAMES: &[&str] = &["hermes", "llama3", "mistral", "pythonic"];

fn text(t: impl Into<String>) -> Option<Piece> {
    let t = t.into();
    (!t.is_empty()).then_some(Piece::Text(t))
}

/// Parsed calls as pieces, or the raw text when it held none. The raw text
/// goes with the first call (sent as text if that call is refused); later
/// calls have none of their own.
fn pieces(calls: Option<Vec<Call>>, raw: String) -> Vec<Piece> {
    match calls {
        Some(calls) if !calls.is_empty() => calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| Piece::Call(c, if i == 0 { raw.clone() } else { String::new() }))
            .collect(),
        _ => vec![Piece::Text(raw)],
    }
}

/// Calls opened by `open` anywhere in the text; a call's body ends at
/// `close`, or (without one) where its JSON value ends.
pub struct MarkerParser {
    open: &'static str,
    close: Option<&'static str>,
    parse: fn(&str) -> Option<Vec<Call>>,
    buf: String,
    in_call: bool,
    /// A call just closed: the whitespace that separates calls is not text.
    after_call: bool,
}

impl MarkerParser {
    pub fn new(open: &'static str, close: Option<&'static str>, parse: fn(&str) -> Option<Vec<Call>>) -> Self {
        Self { open, close, parse, buf: String::new(), in_call: false, after_call: false }
    }

    /// Text to send, minus the whitespace right after a call.
    fn text(&mut self, t: &str) -> Option<Piece> {
        let t = if self.after_call { t.trim_start() } else { t };
        if !t.is_empty() {
            self.after_call = false;
        }
        text(t)
    }

    /// The body (after the open marker) ends here, with this many bytes of close marker.
    fn body_end(&self) -> Option<(usize, usize)> {
        match self.close {
            Some(c) => self.buf.find(c).map(|at| (at, c.len())),
            None => json_end(&self.buf).map(|at| (at, 0)),
        }
    }

    fn call_pieces(&self, body: &str, raw: String) -> Vec<Piece> {
        pieces((self.parse)(body), raw)
    }
}

impl Parser for MarkerParser {
    fn push(&mut self, t: &str) -> Vec<Piece> {
        self.buf.push_str(t);
        let mut out = Vec::new();
        loop {
            if !self.in_call {
                match self.buf.find(self.open) {
                    Some(at) => {
                        let before: String = self.buf.drain(..at + self.open.len()).collect();
                        out.extend(self.text(&before[..at]));
                        self.in_call = true;
                    }
                    None => {
                        let hold = partial_marker(&self.buf, self.open);
                        let send: String = self.buf.drain(..self.buf.len() - hold).collect();
                        out.extend(self.text(&send));
                        return out;
                    }
                }
            }
            let Some((end, close_len)) = self.body_end() else { return out };
            let body: String = self.buf.drain(..end + close_len).collect();
            let raw = format!("{}{body}", self.open);
            let pieces = self.call_pieces(&body[..end], raw);
            self.after_call = pieces.iter().any(|p| matches!(p, Piece::Call(..)));
            out.extend(pieces);
            self.in_call = false;
        }
    }

    fn finish(&mut self) -> Vec<Piece> {
        let rest = std::mem::take(&mut self.buf);
        if !self.in_call {
            return self.text(&rest).into_iter().collect();
        }
        self.in_call = false;
        // An unclosed call (the model ended instead of writing the close marker) still counts if it parses.
        let raw = format!("{}{rest}", self.open);
        self.call_pieces(&rest, raw)
    }
}

/// A message that is calls and nothing else: decided by its first
/// non-space text (`starts`), held to the end, and parsed whole.
pub struct WholeMessageParser {
    starts: &'static [&'static str],
    parse: fn(&str) -> Option<Vec<Call>>,
    buf: String,
    /// None: undecided; Some(true): holding a possible call; Some(false): text.
    calls: Option<bool>,
}

impl WholeMessageParser {
    pub fn new(starts: &'static [&'static str], parse: fn(&str) -> Option<Vec<Call>>) -> Self {
        Self { starts, parse, buf: String::new(), calls: None }
    }
}

impl Parser for WholeMessageParser {
    fn push(&mut self, t: &str) -> Vec<Piece> {
        if self.calls == Some(false) {
            return text(t).into_iter().collect();
        }
        self.buf.push_str(t);
        if self.calls.is_none() {
            let head = self.buf.trim_start();
            if self.starts.iter().any(|s| head.starts_with(s)) {
                self.calls = Some(true);
            } else if head.is_empty() || self.starts.iter().any(|s| s.starts_with(head)) {
                return Vec::new(); // too early to tell
            } else {
                self.calls = Some(false);
                return text(std::mem::take(&mut self.buf)).into_iter().collect();
            }
        }
        Vec::new()
    }

    fn finish(&mut self) -> Vec<Piece> {
        let raw = std::mem::take(&mut self.buf);
        if self.calls != Some(true) {
            return text(raw).into_iter().collect();
        }
        pieces((self.parse)(&raw), raw)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Feeds `text` split at byte `at` (and, separately, one byte at a time)
    /// and returns the pieces with adjacent text merged.
    pub fn run_split(f: &dyn Format, text: &str, at: usize) -> Vec<Piece> {
        let mut p = f.parser();
        let mut out = Vec::new();
        let (a, b) = text.split_at(at);
        out.extend(p.push(a));
        out.extend(p.push(b));
        out.extend(p.finish());
        merge(out)
    }

    pub fn merge(pieces: Vec<Piece>) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        for p in pieces {
            match (out.last_mut(), p) {
                (Some(Piece::Text(a)), Piece::Text(b)) => a.push_str(&b),
                (_, p) => out.push(p),
            }
        }
        out
    }

    /// Every split point (on char boundaries) gives the same pieces as one chunk.
    pub fn same_at_every_split(f: &dyn Format, text: &str) -> Vec<Piece> {
        let whole = run_split(f, text, 0);
        for at in 1..text.len() {
            if text.is_char_boundary(at) {
                assert_eq!(run_split(f, text, at), whole, "split at {at} of {text:?}");
            }
        }
        let mut p = f.parser();
        let mut bytes = Vec::new();
        for ch in text.chars() {
            bytes.extend(p.push(&ch.to_string()));
        }
        bytes.extend(p.finish());
        assert_eq!(merge(bytes), whole, "char by char");
        whole
    }

    pub fn calls(pieces: &[Piece]) -> Vec<(String, Value)> {
        pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Call(c, _) => Some((c.name.clone(), c.arguments.clone())),
                Piece::Text(_) => None,
            })
            .collect()
    }
}
