//! Constrained decoding as a sampler plugin: every completion is a JSON value
//! valid under a JSON Schema, any JSON object, or a full match of a regular
//! expression, and the sequence ends the moment the value is complete.
//!
//! How: the constraint becomes one byte automaton ([`automaton`]); each step
//! walks the vocabulary's token trie ([`trie`]) from the current state to find
//! every token that keeps the output viable, and hands that set to the host as
//! the plan's allowed (or, when smaller, banned) list, so the host masks and
//! samples natively with the request's temperature and seed. Masks are cached
//! per automaton state, so a long string costs one walk, not one per token.
//!
//! Budget: when the tokens left are no more than the bytes needed to finish,
//! only tokens that bring the value strictly closer to complete are allowed,
//! so a value always closes within `max_tokens`.
//!
//! Arguments (JSON, per request): `{"json_schema": {...}}`, `{"json_object":
//! true}` or `{"regex": "..."}`, with optional `"whitespace": "compact" |
//! "flexible"`, `"max_depth"`, and `"mask_cache": false` (benchmarks: walk
//! the trie every step).
//!
//! Tool calls (set by a tool-format transform): `{"python_calls": [{"name",
//! "parameters"}]}` is a Python call of one of the functions, keyword
//! arguments as Python literals; `"prefix"` and `"suffix"`
//! (literal text around the value, e.g. `<tool_call>\n`), `"separator"` and
//! `"max_values"` (up to that many values, each wrapped, separated), `"open"`
//! and `"close"` (around them all, e.g. a Python list's brackets), and
//! `"trigger"`: a lazy constraint. The output is free until it contains the
//! trigger (the prefix starts with it); from there it must complete one
//! wrapped value, after which it is free again (`"once": true` ends the
//! sequence instead). `"trigger_at_start": true` fires only if the output
//! begins with the trigger.

pub mod automaton;
pub mod formats;
pub mod numbers;
pub mod schema;
pub mod trie;

#[cfg(target_arch = "wasm32")]
mod component;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use automaton::{Automaton, DEAD};
use schema::{Options, Whitespace};
use trie::TokenTrie;

/// Bytes of automaton a single constraint may use.
pub const MAX_AUTOMATON_BYTES: usize = 32 << 20;
/// Automaton states whose masks are kept, per constraint.
const MASK_CACHE: usize = 256;

/// The regex a request's arguments ask for.
pub fn constraint_regex(args: &str) -> Result<String, String> {
    let a: serde_json::Value = serde_json::from_str(args).map_err(|e| format!("plugin arguments are not JSON: {e}"))?;
    let mut opts = Options::default();
    match a.get("whitespace").and_then(|w| w.as_str()) {
        None | Some("compact") => {}
        Some("flexible") => opts.whitespace = Whitespace::Flexible,
        Some(o) => return Err(format!("`whitespace` must be \"compact\" or \"flexible\", not {o:?}")),
    }
    if let Some(d) = a.get("max_depth") {
        opts.max_depth = d.as_u64().filter(|&d| (1..=6).contains(&d)).ok_or("`max_depth` must be 1 to 6")? as usize;
    }
    let value = if let Some(calls) = a.get("python_calls") {
        // [{"name": ..., "parameters": {...}}, ...]: a call of any of them.
        let calls = calls.as_array().filter(|c| !c.is_empty()).ok_or("`python_calls` must be a non-empty array")?;
        let alts = calls
            .iter()
            .map(|c| {
                let name = c["name"].as_str().ok_or("each of `python_calls` needs a `name`")?;
                schema::python_call_regex(name, &c["parameters"], opts)
            })
            .collect::<Result<Vec<_>, String>>()?;
        format!("(?:{})", alts.join("|"))
    } else if let Some(s) = a.get("json_schema") {
        schema::schema_regex(s, opts)?
    } else if a.get("json_object").is_some_and(|v| v == &serde_json::Value::Bool(true)) {
        schema::any_object_regex(opts)
    } else if let Some(r) = a.get("regex") {
        let r = r.as_str().ok_or("`regex` must be a string")?;
        regex_syntax::Parser::new().parse(r).map_err(|e| format!("invalid `regex`: {e}"))?;
        r.to_string()
    } else {
        return Err("give one of `json_schema`, `json_object: true` or `regex`".into());
    };
    let text = |k: &str| -> Result<String, String> {
        match a.get(k) {
            None => Ok(String::new()),
            Some(v) => v.as_str().map(regex_syntax::escape).ok_or(format!("`{k}` must be a string")),
        }
    };
    let (prefix, suffix, sep) = (text("prefix")?, text("suffix")?, text("separator")?);
    let (open, close) = (text("open")?, text("close")?);
    let max = match a.get("max_values") {
        None => 1,
        Some(v) => v.as_u64().filter(|n| (1..=16).contains(n)).ok_or("`max_values` must be 1 to 16")?,
    };
    if prefix.is_empty() && suffix.is_empty() && open.is_empty() && close.is_empty() && max == 1 {
        return Ok(value);
    }
    let one = format!("{prefix}(?:{value}){suffix}");
    let all = if max == 1 { one } else { format!("{one}(?:{sep}{one}){{0,{}}}", max - 1) };
    Ok(format!("{open}{all}{close}"))
}

/// A lazy constraint's trigger, from the arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub text: Vec<u8>,
    /// Only at the start of the output (after whitespace).
    pub at_start: bool,
    /// One constrained value ends the sequence.
    pub once: bool,
}

impl Trigger {
    pub fn from_args(args: &str) -> Result<Option<Self>, String> {
        let a: serde_json::Value =
            serde_json::from_str(args).map_err(|e| format!("plugin arguments are not JSON: {e}"))?;
        let Some(t) = a.get("trigger") else { return Ok(None) };
        let text = t.as_str().filter(|t| !t.is_empty()).ok_or("`trigger` must be a non-empty string")?;
        let field = |k: &str| a.get(k).and_then(|p| p.as_str()).unwrap_or_default().to_string();
        let prefix = field("open") + &field("prefix");
        if !prefix.starts_with(text) && !(prefix.is_empty() && a.get("trigger_at_start").is_some()) {
            return Err("the `prefix` must start with the `trigger` (the constraint covers the trigger too)".into());
        }
        let flag = |k: &str| a.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        Ok(Some(Self { text: text.as_bytes().to_vec(), at_start: flag("trigger_at_start"), once: flag("once") }))
    }
}

/// Whether the arguments leave the per-state mask cache on (the default).
pub fn mask_cache_enabled(args: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(args).ok().and_then(|a| a.get("mask_cache")?.as_bool()).unwrap_or(true)
}

/// The allowed set of one automaton state, in the form cheaper to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Mask {
    Allowed(Vec<u32>),
    Banned(Vec<u32>),
}

impl Mask {
    pub fn allows(&self, t: u32) -> bool {
        match self {
            Mask::Allowed(a) => a.binary_search(&t).is_ok(),
            Mask::Banned(b) => b.binary_search(&t).is_err(),
        }
    }

    pub fn len(&self, vocab: usize) -> usize {
        match self {
            Mask::Allowed(a) => a.len(),
            Mask::Banned(b) => vocab - b.len(),
        }
    }

    pub fn is_empty(&self, vocab: usize) -> bool {
        self.len(vocab) == 0
    }
}

/// The model's vocabulary as the plugin sees it.
pub struct Vocab {
    pub bytes: Vec<Vec<u8>>,
    pub eos: Vec<u32>,
    pub trie: TokenTrie,
}

impl Vocab {
    pub fn new(bytes: Vec<Vec<u8>>, eos: Vec<u32>) -> Self {
        let trie = TokenTrie::new(&bytes);
        Self { bytes, eos, trie }
    }
}

/// A compiled constraint, shared by every sequence that uses it.
pub struct Compiled {
    pub automaton: Automaton,
    masks: RefCell<HashMap<u32, Rc<Mask>>>,
    /// The fewest tokens of a complete value, once a search found it.
    min_tokens: std::cell::Cell<Option<u32>>,
}

/// States the search for the fewest tokens may expand (each is one walk of
/// the token trie, well under a millisecond) before it gives up.
const MIN_TOKENS_SEARCH: usize = 512;

/// What the search for the fewest tokens of a complete value found.
#[derive(Debug, PartialEq)]
pub enum MinTokens {
    Exactly(u32),
    /// No complete value within this many tokens.
    MoreThan(u32),
    /// The search budget ran out first.
    Unknown,
}

impl Compiled {
    pub fn new(regex: &str) -> Result<Self, String> {
        Ok(Self {
            automaton: Automaton::from_regex(regex, MAX_AUTOMATON_BYTES)?,
            masks: RefCell::default(),
            min_tokens: Default::default(),
        })
    }

    /// The fewest tokens of `vocab` that spell a complete value, looked for
    /// up to `limit` tokens: a breadth-first search over the automaton's
    /// states, one level per token, each state expanded once.
    pub fn min_tokens(&self, vocab: &Vocab, limit: u32) -> MinTokens {
        if let Some(n) = self.min_tokens.get() {
            return if n <= limit { MinTokens::Exactly(n) } else { MinTokens::MoreThan(limit) };
        }
        let a = &self.automaton;
        let mut frontier = vec![a.start()];
        let mut seen: std::collections::HashSet<u32> = frontier.iter().copied().collect();
        let mut expanded = 0;
        for depth in 0..=limit {
            if frontier.iter().any(|&s| a.is_accepting(s)) {
                self.min_tokens.set(Some(depth));
                return MinTokens::Exactly(depth);
            }
            if depth == limit || frontier.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for &s in &frontier {
                expanded += 1;
                if expanded > MIN_TOKENS_SEARCH {
                    return MinTokens::Unknown;
                }
                vocab.trie.walk(a, s, |_, end| {
                    if seen.insert(end) {
                        next.push(end);
                    }
                });
            }
            frontier = next;
        }
        MinTokens::MoreThan(limit)
    }

    /// Tokens allowed in `state`. With `closing`, only those that take the
    /// value strictly closer to complete; with `budget`, only those after
    /// which a complete value is at most that many bytes (so tokens) away.
    pub fn mask(&self, vocab: &Vocab, state: u32, closing: bool, budget: Option<u32>, cache: bool) -> Rc<Mask> {
        let cache = cache && !closing && budget.is_none();
        if cache && let Some(m) = self.masks.borrow().get(&state) {
            return m.clone();
        }
        let a = &self.automaton;
        let here = a.dist(state);
        let mut allowed = Vec::new();
        vocab.trie.walk(a, state, |t, end| {
            if (!closing || a.dist(end) < here) && budget.is_none_or(|b| a.dist(end) <= b) {
                allowed.push(t);
            }
        });
        if a.is_accepting(state) {
            allowed.extend(&vocab.eos);
        }
        allowed.sort_unstable();
        allowed.dedup();
        let n = vocab.bytes.len();
        let mask = if allowed.len() > n / 2 {
            let mut banned = Vec::with_capacity(n - allowed.len());
            let mut it = allowed.iter().peekable();
            for t in 0..n as u32 {
                if it.peek() == Some(&&t) {
                    it.next();
                } else {
                    banned.push(t);
                }
            }
            Mask::Banned(banned)
        } else {
            Mask::Allowed(allowed)
        };
        let mask = Rc::new(mask);
        if cache {
            let mut c = self.masks.borrow_mut();
            if c.len() >= MASK_CACHE {
                c.clear();
            }
            c.insert(state, mask.clone());
        }
        mask
    }
}

/// What [`Decoder::accept`] concluded.
#[derive(Debug, PartialEq)]
pub enum Progress {
    Continue,
    /// The value is complete and nothing may follow (or end of sequence was chosen).
    Done,
}

/// One sequence's position in its constraint.
pub struct Decoder {
    pub compiled: Rc<Compiled>,
    pub state: u32,
    /// Tokens the sequence may still produce.
    pub remaining: u32,
    /// Reuse masks computed for the same state (off only to measure the walk).
    pub cache: bool,
    /// A lazy constraint: `Some` while the output is free, waiting for it.
    lazy: Option<Lazy>,
}

/// The free phase of a lazy constraint.
struct Lazy {
    trigger: Trigger,
    /// The constraint applies now (the trigger was seen, the value is not complete).
    active: bool,
    /// The last bytes of the output (a trigger may span tokens); with
    /// `at_start`, the whole output until the trigger is seen or missed.
    tail: Vec<u8>,
    /// An `at_start` trigger that can no longer fire.
    passed: bool,
}

impl Decoder {
    pub fn new(compiled: Rc<Compiled>, max_tokens: u32) -> Self {
        let state = compiled.automaton.start();
        Self { compiled, state, remaining: max_tokens, cache: true, lazy: None }
    }

    /// A decoder that leaves the output free until `trigger` appears.
    pub fn lazy(compiled: Rc<Compiled>, max_tokens: u32, trigger: Trigger) -> Self {
        let mut d = Self::new(compiled, max_tokens);
        d.lazy = Some(Lazy { trigger, active: false, tail: Vec::new(), passed: false });
        d
    }

    /// Whether the constraint applies to the next token (always, unless lazy and untriggered).
    pub fn constrained(&self) -> bool {
        self.lazy.as_ref().is_none_or(|l| l.active)
    }

    /// Refuses a budget too small for any complete value. The error starts
    /// with `max_tokens`, which the host reports as the parameter at fault.
    /// A budget of at least the shortest value's bytes always suffices (the
    /// closing rule advances one byte per token at least), so only smaller
    /// budgets are searched.
    pub fn check_budget(&self, vocab: &Vocab) -> Result<(), String> {
        if self.lazy.is_some() || self.remaining >= self.compiled.automaton.dist(self.state) {
            return Ok(());
        }
        match self.compiled.min_tokens(vocab, self.remaining) {
            MinTokens::MoreThan(n) => {
                Err(format!("max_tokens {n} is too small for this format: no complete value takes {n} tokens or fewer"))
            }
            MinTokens::Exactly(_) | MinTokens::Unknown => Ok(()),
        }
    }

    /// The tokens allowed next.
    pub fn mask(&self, vocab: &Vocab) -> Result<Rc<Mask>, String> {
        let a = &self.compiled.automaton;
        let closing = self.remaining <= a.dist(self.state).saturating_add(1);
        // With fewer tokens left than the longest way to finish, a token may
        // not lead somewhere the rest cannot complete (a repeated value
        // started too late). Single bytes are tokens, so a distance of d
        // bytes takes at most d tokens.
        let budget = (self.remaining <= a.max_dist().saturating_add(1)).then(|| self.remaining.saturating_sub(1));
        let mut m = self.compiled.mask(vocab, self.state, closing, budget, self.cache);
        if budget.is_some() && m.is_empty(vocab.bytes.len()) {
            // Too late to finish whatever comes (a lazy value triggered near the
            // end): go as far toward complete as the budget allows.
            m = self.compiled.mask(vocab, self.state, closing, None, self.cache);
        }
        if m.is_empty(vocab.bytes.len()) {
            return Err("no token of this vocabulary can continue the constrained output".into());
        }
        Ok(m)
    }

    pub fn accept(&mut self, vocab: &Vocab, token: u32) -> Result<Progress, String> {
        self.remaining = self.remaining.saturating_sub(1);
        if vocab.eos.contains(&token) {
            return Ok(Progress::Done);
        }
        let bytes = vocab.bytes.get(token as usize).ok_or(format!("token {token} is outside the vocabulary"))?;
        if let Some(l) = self.lazy.as_mut()
            && !l.active
        {
            // Free text: look for the trigger across the token boundary.
            if l.passed {
                return Ok(Progress::Continue);
            }
            let keep = l.tail.len();
            l.tail.extend_from_slice(bytes);
            let t = &l.trigger.text;
            let at = if l.trigger.at_start {
                // The output so far, leading whitespace aside, must still be a prefix of the trigger.
                let start = l.tail.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(l.tail.len());
                let body = &l.tail[start..];
                if body.starts_with(t) {
                    Some(start)
                } else {
                    l.passed = !t.starts_with(body);
                    None
                }
            } else {
                l.tail.windows(t.len()).position(|w| w == t.as_slice()).filter(|&p| p + t.len() > keep)
            };
            let Some(p) = at else {
                if !l.trigger.at_start {
                    let cut = l.tail.len().saturating_sub(t.len().saturating_sub(1));
                    l.tail.drain(..cut);
                }
                return Ok(Progress::Continue);
            };
            // The value starts at the trigger: run everything from there.
            let from = l.tail.split_off(p);
            l.tail.clear();
            let a = &self.compiled.automaton;
            let next = a.run(a.start(), &from);
            if next == DEAD {
                // The token ran past the trigger into something the format forbids:
                // that is text, not a call; keep looking.
                return Ok(Progress::Continue);
            }
            l.active = true;
            self.state = next;
            return Ok(self.after_value());
        }
        let a = &self.compiled.automaton;
        let next = a.run(self.state, bytes);
        if next == DEAD || bytes.is_empty() {
            return Err(format!("token {token} ({:?}) breaks the constraint", String::from_utf8_lossy(bytes)));
        }
        self.state = next;
        Ok(self.after_value())
    }

    /// Done when the value is complete and nothing may follow; a lazy
    /// constraint then goes back to free text (unless once).
    fn after_value(&mut self) -> Progress {
        let a = &self.compiled.automaton;
        let complete = a.is_accepting(self.state) && !a.can_continue(self.state);
        match self.lazy.as_mut() {
            None if complete => Progress::Done,
            Some(l) if complete && l.trigger.once => Progress::Done,
            Some(l) if complete => {
                l.active = false;
                self.state = a.start();
                Progress::Continue
            }
            _ => Progress::Continue,
        }
    }
}

#[cfg(test)]
mod tests;
