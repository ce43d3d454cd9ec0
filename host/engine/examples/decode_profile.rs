//! Runs `c` concurrent greedy requests (default 32) for profiling the step loop:
//! `cargo run --release --example decode_profile -- 32 128`
use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request, SamplingParams};
fn main() {
    let a: Vec<usize> = std::env::args().skip(1).filter_map(|x| x.parse().ok()).collect();
    let (c, n) = (a.first().copied().unwrap_or(32), a.get(1).copied().unwrap_or(128));
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let h = Engine::start(weft_engine::model::load(&path, LoadOptions::default()).unwrap(), EngineConfig::default())
        .unwrap();
    let t0 = std::time::Instant::now();
    let streams: Vec<_> = (0..c)
        .map(|i| {
            let p: Vec<u32> = (0..32u32).map(|j| 1000 + (j * 7919 + i as u32 * 104_729) % 30_000).collect();
            let mut r = Request::new(p, n).with_params(SamplingParams::greedy());
            r.ignore_eos = true;
            h.submit(r).unwrap()
        })
        .collect();
    let mut total = 0;
    for mut s in streams {
        while let Some(Event::Token { .. }) = s.blocking_next() {
            total += 1;
        }
    }
    let m = h.metrics();
    println!(
        "{total} tokens in {:.2}s; {} steps, mean step {:.1} ms",
        t0.elapsed().as_secs_f64(),
        m.steps,
        m.total_step_secs / m.steps as f64 * 1e3
    );
}
