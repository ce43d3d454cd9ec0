//! The engine calls a Wasm sampler exactly as it calls the native one.

mod common;

use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request, SamplingParams};
use weft_runtime::{Limits, WasmSamplerFactory};

fn tokens(mut s: weft_engine::RequestStream) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    while let Some(ev) = s.blocking_next() {
        match ev {
            Event::Token { id, .. } => out.push(id),
            Event::Finished { .. } => return Ok(out),
            Event::Error(e) => return Err(format!("{} ({})", e, e.kind())),
        }
    }
    Err("stream ended without a final event".into())
}

#[test]
fn wasm_sampler_in_the_engine_matches_native_and_failures_stay_local() {
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let h = Engine::start(weft_engine::model::load(&path, LoadOptions::default()).unwrap(), EngineConfig::default())
        .unwrap();
    let vocab = h.model().config.vocab_size;
    let standard =
        WasmSamplerFactory::new(common::load("sampler-standard", "sampler_standard.wasm", Limits::default(), vec![]))
            .unwrap();
    let hostile =
        WasmSamplerFactory::new(common::load("hostile", "hostile_sampler.wasm", Limits::default(), vec![])).unwrap();
    let prompt: Vec<u32> = (0..20u32).map(|i| 1000 + i * 37).collect();
    let params = SamplingParams { seed: Some(42), temperature: 0.8, top_p: 0.9, ..Default::default() };
    let req = |sampler: Option<Box<dyn weft_engine::sampling::SequenceSampler>>| {
        let mut r = Request::new(prompt.clone(), 24).with_params(params.clone());
        r.ignore_eos = true;
        r.sampler = sampler;
        r
    };
    let native = tokens(h.submit(req(None)).unwrap()).unwrap();
    // The Wasm run shares the batch with a sequence whose sampler traps.
    let bad = h
        .submit(req(Some(Box::new(hostile.session(&params, 24, r#"{"mode":"trap"}"#, &prompt, vocab).unwrap()))))
        .unwrap();
    let good = h.submit(req(Some(Box::new(standard.session(&params, 24, "", &prompt, vocab).unwrap())))).unwrap();
    let err = tokens(bad).unwrap_err();
    assert!(err.contains("trap") && err.contains("hostile"), "{err}");
    assert_eq!(tokens(good).unwrap(), native, "same seed, same tokens, through the plugin");
    let t0 = std::time::Instant::now();
    while h.metrics().running > 0 {
        assert!(t0.elapsed().as_secs() < 10);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    h.check_idle().unwrap();
}
