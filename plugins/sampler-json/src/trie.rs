//! The vocabulary as a byte trie laid out in preorder, so finding every token
//! an automaton state accepts is one forward pass that skips a whole subtree
//! the moment its prefix dies (the approach of llguidance's toktrie).
//!
//! Invariant: node `i`'s subtree is `i .. skip[i]`; a node's tokens are the
//! ones whose bytes end exactly there. Tokens with no bytes (control tokens)
//! are not in the trie: no text constraint can ever accept them.

use crate::automaton::{Automaton, DEAD};

pub struct TokenTrie {
    byte: Vec<u8>,
    depth: Vec<u16>,
    skip: Vec<u32>,
    /// `tokens[tok_start[i] .. tok_start[i + 1]]` end at node `i`.
    tok_start: Vec<u32>,
    tokens: Vec<u32>,
    max_depth: usize,
}

impl TokenTrie {
    /// `vocab[id]` is the bytes of token `id`.
    pub fn new(vocab: &[Vec<u8>]) -> Self {
        let mut ids: Vec<u32> = (0..vocab.len() as u32).filter(|&i| !vocab[i as usize].is_empty()).collect();
        ids.sort_by(|&a, &b| vocab[a as usize].cmp(&vocab[b as usize]));
        let mut t = TokenTrie {
            byte: Vec::new(),
            depth: Vec::new(),
            skip: Vec::new(),
            tok_start: Vec::new(),
            tokens: Vec::new(),
            max_depth: 0,
        };
        t.build(vocab, &ids, 0);
        t.tok_start.push(t.tokens.len() as u32);
        t
    }

    /// Adds the children of a node whose tokens (`ids`, sorted, all longer than
    /// `depth`) share their first `depth` bytes.
    fn build(&mut self, vocab: &[Vec<u8>], ids: &[u32], depth: usize) {
        let mut i = 0;
        while i < ids.len() {
            let b = vocab[ids[i] as usize][depth];
            let mut j = i;
            while j < ids.len() && vocab[ids[j] as usize][depth] == b {
                j += 1;
            }
            let node = self.byte.len();
            self.byte.push(b);
            self.depth.push((depth + 1) as u16);
            self.skip.push(0);
            self.tok_start.push(self.tokens.len() as u32);
            self.max_depth = self.max_depth.max(depth + 1);
            // Sorted order puts the tokens that end here first.
            let mut k = i;
            while k < j && vocab[ids[k] as usize].len() == depth + 1 {
                self.tokens.push(ids[k]);
                k += 1;
            }
            self.build(vocab, &ids[k..j], depth + 1);
            self.skip[node] = self.byte.len() as u32;
            i = j;
        }
    }

    /// Calls `f(token, end_state)` for every token whose bytes keep `a` alive from `state`.
    pub fn walk(&self, a: &Automaton, state: u32, mut f: impl FnMut(u32, u32)) {
        let mut states = vec![DEAD; self.max_depth + 1];
        states[0] = state;
        let n = self.byte.len();
        let mut i = 0;
        while i < n {
            let d = self.depth[i] as usize;
            let s = a.next(states[d - 1], self.byte[i]);
            if s == DEAD {
                i = self.skip[i] as usize;
                continue;
            }
            states[d] = s;
            for &t in &self.tokens[self.tok_start[i] as usize..self.tok_start[i + 1] as usize] {
                f(t, s);
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_finds_exactly_the_viable_tokens() {
        let vocab: Vec<Vec<u8>> =
            ["a", "ab", "abc", "b", "", "bc", "c", "ca", "abd"].iter().map(|s| s.as_bytes().to_vec()).collect();
        let trie = TokenTrie::new(&vocab);
        let a = Automaton::from_regex("ab*c", 1 << 20).unwrap();
        let mut got = Vec::new();
        trie.walk(&a, a.start(), |t, _| got.push(t));
        got.sort();
        assert_eq!(got, vec![0, 1, 2]); // a, ab, abc; not abd, b, c
        let s = a.run(a.start(), b"a");
        let mut got = Vec::new();
        trie.walk(&a, s, |t, _| got.push(t));
        got.sort();
        assert_eq!(got, vec![3, 5, 6]); // b, bc, c
        // Brute force agrees on a richer pattern.
        let a = Automaton::from_regex("(ab|ca)*c?", 1 << 20).unwrap();
        let mut got = Vec::new();
        trie.walk(&a, a.start(), |t, _| got.push(t));
        got.sort();
        let want: Vec<u32> = (0..vocab.len() as u32)
            .filter(|&i| !vocab[i as usize].is_empty() && a.run(a.start(), &vocab[i as usize]) != DEAD)
            .collect();
        assert_eq!(got, want);
    }
}
