//! Log-probabilities of the raw logits, for `logprobs` / `top_logprobs`.

/// One alternative in a top-n list.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    pub token: u32,
    pub logprob: f32,
}

/// The chosen token's log-probability and the top alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    pub top: Vec<TopLogprob>,
}

/// A copy of a raw logits row and its log-sum-exp, taken before the sampler
/// may transform the row in place.
pub struct RawLogprobs {
    norm: f32,
    raw: Vec<f32>,
}

impl RawLogprobs {
    pub fn new(row: &[f32]) -> Self {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&x| (x - max).exp()).sum();
        Self { norm: max + sum.ln(), raw: row.to_vec() }
    }

    /// Log-probability of `token`.
    pub fn of(&self, token: u32) -> f32 {
        self.raw.get(token as usize).map(|v| v - self.norm).unwrap_or(f32::NEG_INFINITY)
    }

    /// The `n` most likely tokens, descending.
    pub fn top(&self, n: usize) -> Vec<TopLogprob> {
        top_n(&self.raw, n)
            .into_iter()
            .map(|(token, v)| TopLogprob { token, logprob: v - self.norm })
            .collect()
    }
}

/// The `n` largest entries, descending, ties broken by lower token id.
pub fn top_n(row: &[f32], n: usize) -> Vec<(u32, f32)> {
    if n == 0 {
        return Vec::new();
    }
    let mut idx: Vec<u32> = (0..row.len() as u32).collect();
    let cmp = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
    if n < idx.len() {
        idx.select_nth_unstable_by(n - 1, cmp);
        idx.truncate(n);
    }
    idx.sort_by(cmp);
    idx.into_iter().map(|i| (i, row[i as usize])).collect()
}
