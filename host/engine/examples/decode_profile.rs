//! Runs `c` concurrent greedy requests (default 32) of `n` new tokens after
//! `p`-token prompts (default 32) for profiling the step loop:
//! `cargo run --release --example decode_profile -- 32 128 [512]`. Prints the
//! decode rate (steps after every prompt is in) and the mean step.
//! `WEFT_KV=f32` runs with an f32 KV cache instead of f16, for comparison.
use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request, SamplingParams};
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).filter_map(|x| x.parse().ok()).collect();
    let (c, n) = (a.first().copied().unwrap_or(32), a.get(1).copied().unwrap_or(128));
    let plen = a.get(2).copied().unwrap_or(32) as u32;
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let kv_dtype = std::env::var("WEFT_KV").ok().and_then(|v| v.parse().ok()).unwrap_or_default();
    let cfg = EngineConfig { kv_dtype, ..EngineConfig::default() };
    let h = Engine::start(weft_engine::model::load(&path, LoadOptions::default()).unwrap(), cfg).unwrap();
    let t0 = std::time::Instant::now();
    let streams: Vec<_> = (0..c)
        .map(|i| {
            let p: Vec<u32> = (0..plen).map(|j| 1000 + (j * 7919 + i as u32 * 104_729) % 30_000).collect();
            let mut r = Request::new(p, n).with_params(SamplingParams::greedy());
            r.ignore_eos = true;
            h.submit(r).unwrap()
        })
        .collect();
    let mut total = 0;
    let mut streams: Vec<_> = streams.into_iter().map(Some).collect();
    // Every first token: the prompts are in; decode is timed from here.
    for s in streams.iter_mut() {
        if !matches!(s.as_mut().unwrap().blocking_next(), Some(Event::Token { .. })) {
            *s = None;
        }
        total += 1;
    }
    let (m0, t1) = (h.metrics(), std::time::Instant::now());
    let mut decoded = 0;
    for mut s in streams.into_iter().flatten() {
        while let Some(Event::Token { .. }) = s.blocking_next() {
            decoded += 1;
        }
    }
    total += decoded;
    let m = h.metrics();
    println!(
        "c={c} kv {kv_dtype:?} prompt {plen}: {total} tokens in {:.2}s; decode {:.1} tok/s, mean decode step {:.2} ms over {} steps",
        t0.elapsed().as_secs_f64(),
        decoded as f64 / t1.elapsed().as_secs_f64(),
        (m.total_step_secs - m0.total_step_secs) / (m.steps - m0.steps).max(1) as f64 * 1e3,
        m.steps - m0.steps
    );
    let steps = (m.steps - m0.steps).max(1) as f64;
    let (step, fwd) = (m.total_step_secs - m0.total_step_secs, m.forward_secs - m0.forward_secs);
    println!(
        "  per step: forward {:.3} ms, the step's own work outside it (schedule, batch, sample, emit) {:.3} ms",
        fwd / steps * 1e3,
        (step - fwd) / steps * 1e3
    );
}
