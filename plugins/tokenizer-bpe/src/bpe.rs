//! Merging one word's symbols into tokens.
//!
//! Both algorithms follow llama.cpp exactly (its test fixtures are the
//! reference): a priority queue of adjacent pairs, the best pair merged first,
//! ties broken by position. Byte-level BPE ranks pairs by merge order; SentencePiece
//! BPE by the score of the merged token.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::vocab::Vocab;

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    len: usize,
    prev: isize,
    next: isize,
}

/// A candidate merge. `key` orders the heap (larger pops first).
struct Pair {
    key: (f32, i64),
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Pair {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Pair {}
impl PartialOrd for Pair {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pair {
    fn cmp(&self, o: &Self) -> Ordering {
        self.key.0.total_cmp(&o.key.0).then(self.key.1.cmp(&o.key.1))
    }
}

fn symbols(word: &str) -> Vec<Sym> {
    let n = word.chars().count();
    let mut out = Vec::with_capacity(n);
    for (i, (start, c)) in word.char_indices().enumerate() {
        out.push(Sym {
            start,
            len: c.len_utf8(),
            prev: i as isize - 1,
            next: if i + 1 == n { -1 } else { i as isize + 1 },
        });
    }
    out
}

/// The shared merge loop: `key(left, right, merged)` gives a pair's priority
/// (larger merges first; `None`: the pair cannot merge); ties go leftmost.
fn merge<'a>(word: &'a str, key: impl Fn(&str, &str, &str) -> Option<f32>) -> Vec<&'a str> {
    let mut syms = symbols(word);
    let mut heap = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<Pair>, syms: &[Sym], l: isize, r: isize| {
        if l < 0 || r < 0 {
            return;
        }
        let (ls, rs) = (&syms[l as usize], &syms[r as usize]);
        let (lt, rt) = (&word[ls.start..ls.start + ls.len], &word[rs.start..rs.start + rs.len]);
        if let Some(k) = key(lt, rt, &word[ls.start..rs.start + rs.len]) {
            heap.push(Pair { key: (k, -(l as i64)), left: l as usize, right: r as usize, size: ls.len + rs.len });
        }
    };
    for i in 1..syms.len() {
        push(&mut heap, &syms, i as isize - 1, i as isize);
    }
    while let Some(p) = heap.pop() {
        let (l, r) = (syms[p.left], syms[p.right]);
        // Stale entry: one side was merged since it was queued.
        if l.len == 0 || r.len == 0 || l.next != p.right as isize || l.len + r.len != p.size {
            continue;
        }
        syms[p.left].len += r.len;
        syms[p.right].len = 0;
        syms[p.left].next = r.next;
        if r.next >= 0 {
            syms[r.next as usize].prev = p.left as isize;
        }
        let (prev, next) = (syms[p.left].prev, syms[p.left].next);
        push(&mut heap, &syms, prev, p.left as isize);
        push(&mut heap, &syms, p.left as isize, next);
    }
    let mut out = Vec::new();
    let mut i = 0isize;
    while i >= 0 && (i as usize) < syms.len() {
        let s = &syms[i as usize];
        out.push(&word[s.start..s.start + s.len]);
        i = s.next;
    }
    out
}

/// Merges `word` (already in the byte-level alphabet) by merge rank; returns the pieces.
pub fn merge_by_rank<'a>(vocab: &Vocab, word: &'a str) -> Vec<&'a str> {
    if vocab.ignore_merges && vocab.ids.contains_key(word) {
        return vec![word];
    }
    // Lowest rank first.
    merge(word, |l, r, _| vocab.ranks.get(&format!("{l} {r}")).map(|&rank| -(rank as f32)))
}

/// Merges `text` (spaces already `▁`) by token score; returns the pieces.
pub fn merge_by_score<'a>(vocab: &Vocab, text: &'a str) -> Vec<&'a str> {
    // Highest score first.
    merge(text, |_, _, merged| vocab.ids.get(merged).map(|&id| vocab.scores.get(id as usize).copied().unwrap_or(0.0)))
}
