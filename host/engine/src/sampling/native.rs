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

/// `e^x` for the sampler's weights, accurate to a few ulp (Cephes' `expf`
/// polynomial) and written without calls or branches so a loop over a row
/// vectorizes; libm's `expf` is a call per entry, ~0.25 ms over a 49k
/// vocabulary. Exactly 0 below -87 (a banned token's -inf stays impossible
/// to draw), and meant for `x <= 0` (weights relative to the row's maximum).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let c = x.clamp(-87.0, 88.0);
    let n = (c * LOG2E + ROUND) - ROUND;
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { y * scale }
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

/// Entries per block in [`draw`]'s two-level walk.
const BLOCK: usize = 64;

type Scratch = (Vec<f32>, Vec<f32>);

thread_local! {
    /// A row's weights and their block sums, kept between calls (vocabulary-sized buffers).
    static WEIGHTS: std::cell::RefCell<Scratch> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Draws from the tokens at or above `floor` in proportion to `e^(l - max)`,
/// `u` in [0, 1). Weights in one vectorized pass, sums per block of
/// [`BLOCK`] in eight lanes, then a walk over the blocks and inside the one
/// the draw lands in: a single running sum over the vocabulary is a chain of
/// dependent additions that alone took longer than the rest of the step's
/// sampling. The draw is exact up to float rounding, as the single sum was.
fn draw(row: &[f32], w: &mut Vec<f32>, blocks: &mut Vec<f32>, floor: f32, max: f32, u: f32) -> u32 {
    // Every entry is written below: no need to zero the scratch first (a
    // 200 KB memset per token at a 49k vocabulary).
    w.resize(row.len(), 0.0);
    for (o, &l) in w.iter_mut().zip(row) {
        let e = exp(l - max);
        *o = if l >= floor { e } else { 0.0 };
    }
    blocks.clear();
    blocks.extend(w.chunks(BLOCK).map(|b| {
        let mut acc = [0.0f32; 8];
        let chunks = b.chunks_exact(8);
        let rest: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>() + rest
    }));
    let total: f32 = blocks.iter().sum();
    let mut target = u * total;
    for (bi, &bs) in blocks.iter().enumerate() {
        if target < bs {
            let start = bi * BLOCK;
            let mut last = None;
            for (i, &x) in w[start..(start + BLOCK).min(w.len())].iter().enumerate() {
                if x > 0.0 {
                    last = Some(start + i);
                    target -= x;
                    if target < 0.0 {
                        return (start + i) as u32;
                    }
                }
            }
            // Rounding between the block's sum and its entries: its last kept entry.
            if let Some(i) = last {
                return i as u32;
            }
        }
        target -= bs;
    }
    // Rounding at the very end: the last kept entry.
    w.iter().rposition(|&x| x > 0.0).unwrap_or_else(|| argmax(row) as usize) as u32
}

/// Samples from `row` (already divided by temperature) with top-k/min-p/top-p.
/// `u` is a uniform draw in [0, 1).
pub fn sample_filtered(row: &[f32], top_k: usize, top_p: f32, min_p: f32, u: f32) -> u32 {
    let max = row_max(row);
    if !max.is_finite() {
        return argmax(row);
    }
    let weight = |l: f32| exp(l - max);
    // min-p keeps tokens whose probability is at least min_p times the best one's,
    // i.e. whose logit is at least max + ln(min_p).
    let floor = if min_p > 0.0 { max + min_p.ln() } else { f32::NEG_INFINITY };
    let k = if top_k == 0 { row.len() } else { top_k.min(row.len()) };

    if top_p >= 1.0 && k == row.len() {
        // No ordering needed: one pass over the kept tokens. Each weight is
        // computed once, in a loop that vectorizes (an `exp` per vocabulary
        // entry was most of a step's sampling time at one stream), then
        // summed and walked in vocabulary order.
        return WEIGHTS.with_borrow_mut(|(w, blocks)| draw(row, w, blocks, floor, max, u));
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
    fn the_blocked_draw_lands_where_the_cumulative_weights_say() {
        // 1000 entries (not a multiple of the block), some below the floor.
        let row: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 613) as f32 * 0.01 - 6.0).collect();
        let max = row_max(&row);
        let floor = max - 4.0;
        let w: Vec<f64> = row.iter().map(|&l| if l >= floor { ((l - max) as f64).exp() } else { 0.0 }).collect();
        let total: f64 = w.iter().sum();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for k in 0..200 {
            let u = (k as f32 + 0.5) / 200.0;
            let i = draw(&row, &mut a, &mut b, floor, max, u) as usize;
            assert!(row[i] >= floor, "drew a token below the floor");
            let before: f64 = w[..i].iter().sum::<f64>() / total;
            let after = before + w[i] / total;
            assert!(
                before - 1e-4 <= u as f64 && u as f64 <= after + 1e-4,
                "u {u}: drew {i} covering [{before}, {after}]"
            );
        }
    }

    #[test]
    fn exp_is_within_a_few_ulp_of_libm() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
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
