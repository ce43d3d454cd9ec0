//! A constraint as a compact byte automaton: the regex is determinized once by
//! regex-automata, then copied into our own class-compressed table so the
//! per-step walk over the token trie is one array read per trie node.
//!
//! Invariant: state 0 is the dead state (no continuation can match), and
//! `dist[s]` is the fewest bytes that take `s` to a complete match, so a
//! sequence that always lowers `dist` is certain to finish.

use std::collections::{HashMap, VecDeque};

use regex_automata::dfa::{Automaton as _, StartKind, dense};
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};

/// The state no byte sequence leads out of to a match.
pub const DEAD: u32 = 0;

pub struct Automaton {
    classes: [u8; 256],
    nclasses: usize,
    /// `trans[state * nclasses + class]`.
    trans: Vec<u32>,
    /// The bytes read so far form a complete match.
    accepting: Vec<bool>,
    /// Some byte leads to a live state.
    continues: Vec<bool>,
    /// Fewest bytes to a complete match; `u32::MAX` only for the dead state.
    dist: Vec<u32>,
    start: u32,
}

impl Automaton {
    /// Compiles `pattern`, which must match the whole output (it is anchored at
    /// both ends). `max_bytes` bounds the determinized automaton's memory.
    pub fn from_regex(pattern: &str, max_bytes: usize) -> Result<Self, String> {
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(max_bytes))
                    .determinize_size_limit(Some(max_bytes)),
            )
            .syntax(syntax::Config::new().unicode(true).utf8(true))
            .build(pattern)
            .map_err(|e| format!("cannot compile the constraint: {e}"))?;
        let start_id = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|e| format!("cannot start the constraint: {e}"))?;

        let mut classes = [0u8; 256];
        let mut reps: Vec<u8> = Vec::new();
        {
            let bc = dfa.byte_classes();
            for b in 0..=255u8 {
                let c = bc.get(b);
                classes[b as usize] = c;
                if c as usize == reps.len() {
                    reps.push(b);
                }
            }
        }
        let nclasses = reps.len();

        // Number the live states reachable from the start, dead first.
        let mut index: HashMap<regex_automata::util::primitives::StateID, u32> = HashMap::new();
        let mut order = vec![None];
        let mut queue = VecDeque::new();
        let mut number = |id, order: &mut Vec<_>, queue: &mut VecDeque<_>| -> u32 {
            if dfa.is_dead_state(id) || dfa.is_quit_state(id) {
                return DEAD;
            }
            *index.entry(id).or_insert_with(|| {
                order.push(Some(id));
                let i = (order.len() - 1) as u32;
                queue.push_back((id, i));
                i
            })
        };
        let start = number(start_id, &mut order, &mut queue);
        let mut edges: Vec<(u32, u32)> = Vec::new();
        let mut trans = vec![DEAD; nclasses];
        while let Some((id, from)) = queue.pop_front() {
            debug_assert_eq!(trans.len(), from as usize * nclasses);
            for &b in &reps {
                let to = number(dfa.next_state(id, b), &mut order, &mut queue);
                trans.push(to);
                if to != DEAD {
                    edges.push((from, to));
                }
            }
            if trans.len() * 4 > max_bytes {
                return Err(format!("the constraint needs more than {max_bytes} bytes of automaton; simplify it"));
            }
        }
        let n = order.len();
        let mut accepting = vec![false; n];
        let mut continues = vec![false; n];
        for (i, id) in order.iter().enumerate() {
            if let Some(id) = *id {
                accepting[i] = dfa.is_match_state(dfa.next_eoi_state(id));
            }
        }
        for &(from, _) in &edges {
            continues[from as usize] = true;
        }

        // Breadth-first from the accepting states over reversed edges.
        let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
        for &(from, to) in &edges {
            rev[to as usize].push(from);
        }
        let mut dist = vec![u32::MAX; n];
        let mut q: VecDeque<u32> = VecDeque::new();
        for s in 1..n {
            if accepting[s] {
                dist[s] = 0;
                q.push_back(s as u32);
            }
        }
        while let Some(s) = q.pop_front() {
            for &p in &rev[s as usize] {
                if dist[p as usize] == u32::MAX {
                    dist[p as usize] = dist[s as usize] + 1;
                    q.push_back(p);
                }
            }
        }
        if start == DEAD || dist[start as usize] == u32::MAX {
            return Err("the constraint cannot be satisfied by any output".into());
        }
        // A live state with no way to a match is as good as dead.
        for s in 1..n {
            if dist[s] == u32::MAX {
                for c in 0..nclasses {
                    trans[s * nclasses + c] = DEAD;
                }
            }
        }
        for s in 0..n {
            let row = &mut trans[s * nclasses..(s + 1) * nclasses];
            for t in row.iter_mut() {
                if dist[*t as usize] == u32::MAX {
                    *t = DEAD;
                }
            }
            continues[s] = row.iter().any(|&t| t != DEAD);
        }
        Ok(Self { classes, nclasses, trans, accepting, continues, dist, start })
    }

    pub fn start(&self) -> u32 {
        self.start
    }

    #[inline(always)]
    pub fn next(&self, state: u32, byte: u8) -> u32 {
        self.trans[state as usize * self.nclasses + self.classes[byte as usize] as usize]
    }

    /// Runs `bytes` from `state`; [`DEAD`] if they leave the language.
    pub fn run(&self, mut state: u32, bytes: &[u8]) -> u32 {
        for &b in bytes {
            state = self.next(state, b);
            if state == DEAD {
                return DEAD;
            }
        }
        state
    }

    pub fn is_accepting(&self, state: u32) -> bool {
        self.accepting[state as usize]
    }

    pub fn can_continue(&self, state: u32) -> bool {
        self.continues[state as usize]
    }

    pub fn dist(&self, state: u32) -> u32 {
        self.dist[state as usize]
    }

    /// The largest finite [`dist`](Self::dist) of any state: below this many
    /// tokens left, some tokens could lead where the budget cannot finish.
    pub fn max_dist(&self) -> u32 {
        self.dist.iter().copied().filter(|&d| d != u32::MAX).max().unwrap_or(0)
    }

    /// Whether the whole of `s` matches.
    pub fn matches(&self, s: &[u8]) -> bool {
        let st = self.run(self.start, s);
        st != DEAD && self.is_accepting(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_match_and_distances() {
        let a = Automaton::from_regex(r"ab+c", 1 << 20).unwrap();
        assert!(a.matches(b"abc") && a.matches(b"abbbc"));
        assert!(!a.matches(b"ab") && !a.matches(b"abcx") && !a.matches(b"xabc"));
        assert_eq!(a.dist(a.start()), 3);
        let s = a.run(a.start(), b"ab");
        assert_eq!(a.dist(s), 1);
        let end = a.run(s, b"c");
        assert!(a.is_accepting(end) && !a.can_continue(end));
        let n = Automaton::from_regex(r"[0-9]+", 1 << 20).unwrap();
        let s = n.run(n.start(), b"12");
        assert!(n.is_accepting(s) && n.can_continue(s));
    }

    #[test]
    fn unsatisfiable_is_refused() {
        assert!(Automaton::from_regex(r"a[^\s\S]", 1 << 20).is_err());
    }

    #[test]
    fn utf8_is_enforced_across_bytes() {
        let a = Automaton::from_regex(r#""[^"\\]*""#, 1 << 20).unwrap();
        assert!(a.matches("\"héllo\"".as_bytes()));
        let s = a.run(a.start(), &[b'"', 0xC3]);
        assert_ne!(s, DEAD, "half a character is a live prefix");
        assert_eq!(a.run(s, b"\""), DEAD, "but cannot be closed");
    }
}
