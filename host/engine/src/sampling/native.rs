//! The native sampler: OpenAI/vLLM sampling parameters applied in Rust.
//!
//! Order, as in vLLM: logit bias, penalties, then greedy argmax or
//! temperature, top-k, min-p, top-p and a draw from the session's own RNG.
//! One RNG per sequence seeded from the request makes the output depend only
//! on the request, never on what else shares the batch.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{Accept, History, SamplerError, SamplingParams, SequenceSampler};

/// Native implementation of [`SequenceSampler`].
pub struct NativeSampler {
    params: SamplingParams,
    rng: StdRng,
    /// Occurrences of each token in the output so far.
    counts: HashMap<u32, u32>,
    /// Distinct prompt tokens, computed on first use (repetition penalty).
    prompt_set: Option<Vec<u32>>,
}

impl NativeSampler {
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(rand::random);
        Self { params, rng: StdRng::seed_from_u64(seed), counts: HashMap::new(), prompt_set: None }
    }

    /// Samples with `params` instead of the session's own (a plan a plugin
    /// returned), restricted to `allowed` when given and never choosing `banned`.
    /// Uses this session's RNG and history, so a plan equal to the request's
    /// parameters gives exactly the tokens [`SequenceSampler::sample`] would.
    pub fn sample_with(
        &mut self,
        logits: &mut [f32],
        history: History<'_>,
        params: &SamplingParams,
        allowed: Option<&[u32]>,
        banned: &[u32],
    ) -> u32 {
        if let Some(allowed) = allowed {
            let mut keep = vec![f32::NEG_INFINITY; logits.len()];
            for &t in allowed {
                if let Some(k) = keep.get_mut(t as usize) {
                    *k = logits[t as usize];
                }
            }
            logits.copy_from_slice(&keep);
        }
        for &t in banned {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        Self::apply_penalties_with(params, &mut self.prompt_set, &self.counts, logits, history);
        if params.temperature < 1e-5 {
            return argmax(logits);
        }
        let inv_t = 1.0 / params.temperature;
        if inv_t != 1.0 {
            logits.iter_mut().for_each(|l| *l *= inv_t);
        }
        let u: f32 = self.rng.random();
        sample_filtered(logits, params.top_k, params.top_p, params.min_p, u)
    }

    fn apply_penalties_with(
        p: &SamplingParams,
        prompt_set: &mut Option<Vec<u32>>,
        counts: &HashMap<u32, u32>,
        logits: &mut [f32],
        history: History<'_>,
    ) {
        for (&tok, &bias) in &p.logit_bias {
            if let Some(l) = logits.get_mut(tok as usize) {
                *l += bias;
            }
        }
        if p.repetition_penalty != 1.0 {
            let set = prompt_set.get_or_insert_with(|| {
                let mut v = history.prompt.to_vec();
                v.sort_unstable();
                v.dedup();
                v
            });
            let rp = p.repetition_penalty;
            let penalize = |l: &mut f32| *l = if *l > 0.0 { *l / rp } else { *l * rp };
            for &t in set.iter() {
                if let Some(l) = logits.get_mut(t as usize) {
                    penalize(l);
                }
            }
            for &t in counts.keys() {
                if set.binary_search(&t).is_err()
                    && let Some(l) = logits.get_mut(t as usize)
                {
                    penalize(l);
                }
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            for (&t, &c) in counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= p.presence_penalty + p.frequency_penalty * c as f32;
                }
            }
        }
    }
}

/// Index of the largest value; ties go to the lowest index.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    let mut bv = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > bv {
            bv = v;
            best = i;
        }
    }
    best as u32
}

/// The largest value, NaNs ignored (as `f32::max` does). Sixteen running
/// maxima rather than one, so the loop vectorizes: a single chain of
/// dependent `max`es over a 49k vocabulary takes longer than the sampling.
pub fn row_max(row: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 16];
    let chunks = row.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &b) in m.iter_mut().zip(c) {
            *a = a.max(b);
        }
    }
    rest.iter().chain(&m).copied().fold(f32::NEG_INFINITY, f32::max)
}

thread_local! {
    /// A row's weights, kept between calls (a vocabulary-sized buffer).
    static WEIGHTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Samples from `row` (already divided by temperature) with top-k/min-p/top-p.
/// `u` is a uniform draw in [0, 1).
pub fn sample_filtered(row: &[f32], top_k: usize, top_p: f32, min_p: f32, u: f32) -> u32 {
    let max = row_max(row);
    if !max.is_finite() {
        return argmax(row);
    }
    let weight = |l: f32| (l - max).exp();
    // min-p keeps tokens whose probability is at least min_p times the best one's,
    // i.e. whose logit is at least max + ln(min_p).
    let floor = if min_p > 0.0 { max + min_p.ln() } else { f32::NEG_INFINITY };
    let k = if top_k == 0 { row.len() } else { top_k.min(row.len()) };

    if top_p >= 1.0 && k == row.len() {
        // No ordering needed: one pass over the kept tokens. Each weight is
        // computed once (an `exp` per vocabulary entry is most of a step's
        // sampling time at one stream) and summed and walked in the same
        // order as before, so the token drawn for a given `u` is unchanged.
        return WEIGHTS.with_borrow_mut(|w| {
            w.clear();
            w.extend(row.iter().map(|&l| if l >= floor { weight(l) } else { -1.0 }));
            let total: f32 = w.iter().filter(|&&x| x >= 0.0).sum();
            let mut target = u * total;
            let mut last = 0;
            for (i, &x) in w.iter().enumerate() {
                if x < 0.0 {
                    continue;
                }
                last = i;
                target -= x;
                if target < 0.0 {
                    return i as u32;
                }
            }
            last as u32
        });
    }

    // Sorted candidates are needed; grow the window until it covers top_p of the mass.
    let total_all: f32 = row.iter().filter(|&&l| l >= floor).map(|&l| weight(l)).sum();
    let mut window = 64.min(k);
    let cands = loop {
        let c: Vec<u32> = super::logprobs::top_n(row, window).into_iter().map(|(i, _)| i).collect();
        let mass: f32 = c.iter().map(|&i| row[i as usize]).filter(|&l| l >= floor).map(weight).sum();
        // The kept set is the top-k (or all) tokens; top-p applies within it.
        let kept_total = if k == row.len() { total_all } else { f32::INFINITY };
        if window >= k || mass >= top_p * kept_total {
            break c;
        }
        window = (window * 8).min(k);
    };
    let kept: Vec<(u32, f32)> = cands
        .into_iter()
        .map(|i| (i, row[i as usize]))
        .filter(|&(_, l)| l >= floor)
        .map(|(i, l)| (i, weight(l)))
        .collect();
    let kept_total: f32 = if k == row.len() { total_all } else { kept.iter().map(|x| x.1).sum() };
    // Smallest prefix whose mass reaches top_p of the kept mass (always at least one token).
    let mut cum = 0.0;
    let mut cut = kept.len();
    for (n, &(_, w)) in kept.iter().enumerate() {
        cum += w;
        if cum >= top_p * kept_total {
            cut = n + 1;
            break;
        }
    }
    let kept = &kept[..cut.max(1)];
    let mass: f32 = kept.iter().map(|x| x.1).sum();
    let mut target = u * mass;
    for &(i, w) in kept {
        target -= w;
        if target < 0.0 {
            return i;
        }
    }
    kept[kept.len() - 1].0
}

impl SequenceSampler for NativeSampler {
    fn sample(&mut self, logits: &mut [f32], history: History<'_>) -> Result<u32, SamplerError> {
        let params = self.params.clone();
        Ok(self.sample_with(logits, history, &params, None, &[]))
    }

    fn accept(&mut self, token: u32) -> Result<Accept, SamplerError> {
        *self.counts.entry(token).or_default() += 1;
        Ok(Accept::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist<'a>(p: &'a [u32], o: &'a [u32]) -> History<'a> {
        History { prompt: p, output: o }
    }

    #[test]
    fn row_max_matches_a_fold_and_ignores_nan() {
        for n in [0, 1, 15, 16, 17, 100, 49152] {
            let row: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 * 0.01 - 3.0).collect();
            assert_eq!(row_max(&row), row.iter().copied().fold(f32::NEG_INFINITY, f32::max), "n = {n}");
        }
        assert_eq!(row_max(&[1.0, f32::NAN, 2.0]), 2.0);
    }

    #[test]
    fn greedy_is_argmax_with_bias() {
        let mut s = NativeSampler::new(SamplingParams {
            logit_bias: [(2, 10.0)].into_iter().collect(),
            ..SamplingParams::greedy()
        });
        let mut l = vec![1.0, 5.0, 0.0, 2.0];
        assert_eq!(s.sample(&mut l, hist(&[], &[])).unwrap(), 2);
    }

    #[test]
    fn top_k_one_is_greedy_and_min_p_filters() {
        let row = [0.1, 3.0, 2.9, -1.0];
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(sample_filtered(&row, 1, 1.0, 0.0, u), 1);
            // min_p 0.99 keeps only tokens within ln(0.99) of the max.
            assert_eq!(sample_filtered(&row, 0, 1.0, 0.99, u), 1);
        }
        // top_p small keeps only the best token.
        assert_eq!(sample_filtered(&row, 0, 0.01, 0.0, 0.99), 1);
    }

    #[test]
    fn same_seed_same_tokens() {
        let row: Vec<f32> = (0..1000).map(|i| ((i * 37) % 101) as f32 / 30.0).collect();
        let run = |seed| {
            let mut s = NativeSampler::new(SamplingParams { seed: Some(seed), top_p: 0.9, ..Default::default() });
            (0..20)
                .map(|_| {
                    let t = s.sample(&mut row.clone(), hist(&[], &[])).unwrap();
                    s.accept(t).unwrap();
                    t
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn penalties_push_down_repeats() {
        let mut s = NativeSampler::new(SamplingParams { frequency_penalty: 2.0, ..SamplingParams::greedy() });
        s.accept(0).unwrap();
        s.accept(0).unwrap();
        let mut l = vec![3.0, 0.5];
        assert_eq!(s.sample(&mut l, hist(&[], &[0, 0])).unwrap(), 1);
    }

    #[test]
    fn sampling_distribution_follows_probabilities() {
        // p = softmax([ln 3, 0]) = [0.75, 0.25]
        let row = [3f32.ln(), 0.0];
        let n = 4000;
        let hits = (0..n).filter(|i| sample_filtered(&row, 0, 1.0, 0.0, (*i as f32 + 0.5) / n as f32) == 0).count();
        assert!((hits as f32 / n as f32 - 0.75).abs() < 0.01, "{hits}");
    }
}
