//! Redaction of personal data in both directions: in the request before the
//! model sees it, and in the response before the client does.
//!
//! Responses arrive in chunks, so a match may be split across two of them.
//! The filter keeps the last [`HOLD`] bytes of text back (and any match that
//! reaches into them) until more text or the end of the response shows
//! whether it is sensitive; everything before that is redacted and released.
//!
//! Rules are configurable (`rules`: a JSON list of `{"name", "pattern",
//! "replacement"}`); the defaults cover e-mail addresses, phone numbers and
//! card-like digit runs.

use regex::Regex;
use serde::Deserialize;

/// Bytes held back at the end of the streamed text.
pub const HOLD: usize = 48;

#[derive(Debug, Clone, Deserialize)]
pub struct Rule {
    pub name: String,
    pub pattern: String,
    pub replacement: String,
}

/// The default rules.
pub fn default_rules() -> Vec<Rule> {
    let r = |name: &str, pattern: &str, replacement: &str| Rule {
        name: name.into(),
        pattern: pattern.into(),
        replacement: replacement.into(),
    };
    vec![
        r("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", "[email]"),
        // 13-19 digits in groups separated by spaces or dashes: card numbers.
        r("card", r"\b(?:\d[ -]?){12,18}\d\b", "[card]"),
        // Phone numbers: optional +country, 9-15 digits with common separators.
        // Either an area code in parentheses and a local number ("(555) 867-5309"),
        // or three digit groups ("+1 555-123-4567", "020 7946 0958").
        r(
            "phone",
            r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?\d{3,4}[ .-]?\d{4}|\d{2,4}[ .-]\d{3,4}[ .-]?\d{3,4})\b",
            "[phone]",
        ),
    ]
}

/// Compiled rules, applied in order.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<(Regex, String)>,
}

impl Redactor {
    pub fn new(rules: &[Rule]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|r| {
                Regex::new(&r.pattern)
                    .map(|re| (re, r.replacement.clone()))
                    .map_err(|e| format!("rule `{}`: {e}", r.name))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Parses the `rules` setting (absent: the defaults).
    pub fn from_config(rules_json: Option<&str>) -> Result<Self, String> {
        match rules_json {
            None => Self::new(&default_rules()),
            Some(j) => {
                let rules: Vec<Rule> =
                    serde_json::from_str(j).map_err(|e| format!("`rules` is not a list of rules: {e}"))?;
                Self::new(&rules)
            }
        }
    }

    /// Redacts a complete text.
    pub fn redact(&self, text: &str) -> String {
        let mut s = text.to_string();
        for (re, rep) in &self.rules {
            s = re.replace_all(&s, rep.as_str()).into_owned();
        }
        s
    }

    /// Where a streamed buffer may be cut: before the held-back tail, and
    /// before any match that reaches into it.
    fn safe_cut(&self, buf: &str) -> usize {
        let mut cut = buf.len().saturating_sub(HOLD);
        while !buf.is_char_boundary(cut) {
            cut -= 1;
        }
        loop {
            let moved = self
                .rules
                .iter()
                .flat_map(|(re, _)| re.find_iter(buf))
                .filter(|m| m.start() < cut && m.end() > cut)
                .map(|m| m.start())
                .min();
            match moved {
                Some(start) => cut = start,
                None => return cut,
            }
        }
    }
}

/// The streaming side: one per response.
#[derive(Debug, Clone)]
pub struct StreamRedactor {
    redactor: Redactor,
    buf: String,
}

impl StreamRedactor {
    pub fn new(redactor: Redactor) -> Self {
        Self { redactor, buf: String::new() }
    }

    pub fn push(&mut self, chunk: &str) -> String {
        self.buf.push_str(chunk);
        let cut = self.redactor.safe_cut(&self.buf);
        let out = self.redactor.redact(&self.buf[..cut]);
        self.buf.drain(..cut);
        out
    }

    pub fn finish(&mut self) -> String {
        let out = self.redactor.redact(&self.buf);
        self.buf.clear();
        out
    }
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_whole_texts_and_split_streams() {
        let r = Redactor::from_config(None).unwrap();
        let text =
            "Mail jane.doe@example.com or call +1 555-123-4567 or (555) 867-5309; card 4111 1111 1111 1111, thanks.";
        let want = r.redact(text);
        assert!(
            !want.contains("example.com") && !want.contains("4111") && !want.contains("555") && !want.contains("867"),
            "{want}"
        );
        for size in [1, 2, 3, 7, 13] {
            let mut s = StreamRedactor::new(r.clone());
            let mut out = String::new();
            let chars: Vec<char> = text.chars().collect();
            for c in chars.chunks(size) {
                out.push_str(&s.push(&c.iter().collect::<String>()));
            }
            out.push_str(&s.finish());
            assert_eq!(out, want, "chunk size {size}");
        }
    }
}
