//! Every world through the runtime with real components, and hostile
//! components: each failure gets its typed error and the next call works.

mod common;

use std::time::{Duration, Instant};

use weft_engine::sampling::{History, NativeSampler, SamplingParams, SequenceSampler};
use weft_runtime::{
    BackendInfo, ChatMessage, ErrorKind, Limits, RouteDecision, RouteRequest, TransformRequest, WasmRouter,
    WasmSamplerFactory, WasmTransform, World,
};

const VOCAB: usize = 1000;

fn logits(step: usize) -> Vec<f32> {
    (0..VOCAB).map(|i| (((i * 7919 + step * 104_729) % 1009) as f32) / 200.0).collect()
}

fn run<S: SequenceSampler + ?Sized>(s: &mut S, steps: usize) -> Result<Vec<u32>, weft_engine::sampling::SamplerError> {
    let mut out = Vec::new();
    for step in 0..steps {
        let mut row = logits(step);
        let t = s.sample(&mut row, History { prompt: &[1, 2, 3], output: &out })?;
        s.accept(t)?;
        out.push(t);
    }
    Ok(out)
}

#[test]
fn standard_sampler_plugin_matches_native_with_the_same_seed() {
    let plugin = common::load("sampler-standard", "sampler_standard.wasm", Limits::default(), vec![]);
    assert_eq!(plugin.world, World::Sampler);
    assert_eq!(plugin.info.name, "sampler-standard");
    let f = WasmSamplerFactory::new(plugin).unwrap();
    for params in [
        SamplingParams { seed: Some(42), temperature: 0.9, top_p: 0.8, ..Default::default() },
        SamplingParams { seed: Some(7), temperature: 1.3, top_k: 20, frequency_penalty: 0.5, ..Default::default() },
        SamplingParams { temperature: 0.0, repetition_penalty: 1.3, ..Default::default() },
    ] {
        let mut wasm = f.session(&params, 64, "", &[1, 2, 3], VOCAB).unwrap();
        let mut native = NativeSampler::new(params.clone());
        assert_eq!(run(&mut wasm, 40).unwrap(), run(&mut native, 40).unwrap(), "{params:?}");
    }
    // Plugin arguments override parameters: top_k 1 is greedy.
    let mut s =
        f.session(&SamplingParams { seed: Some(1), ..Default::default() }, 8, r#"{"top_k": 1}"#, &[], VOCAB).unwrap();
    let mut greedy = NativeSampler::new(SamplingParams::greedy());
    assert_eq!(run(&mut s, 10).unwrap(), run(&mut greedy, 10).unwrap());
    assert!(f.session(&SamplingParams::default(), 8, "{not json", &[], VOCAB).is_err());
}

fn hostile(limits: Limits) -> WasmSamplerFactory {
    WasmSamplerFactory::new(common::load("hostile", "hostile_sampler.wasm", limits, vec![])).unwrap()
}

fn failure(f: &WasmSamplerFactory, mode: &str) -> weft_engine::sampling::SamplerError {
    let mut s = f.session(&SamplingParams::default(), 8, &format!(r#"{{"mode":"{mode}"}}"#), &[], VOCAB).unwrap();
    let e = run(&mut s, 1).expect_err("hostile mode must fail");
    // The failed session stays failed; a new session works normally.
    assert!(run(&mut s, 1).is_err());
    let mut ok = f.session(&SamplingParams::default(), 8, r#"{"mode":"ok"}"#, &[], VOCAB).unwrap();
    assert_eq!(run(&mut ok, 3).unwrap().len(), 3, "next session after {mode} works");
    e
}

#[test]
fn infinite_loop_times_out_within_the_deadline() {
    let f = hostile(Limits { deadline: Duration::from_millis(100), ..Default::default() });
    let t0 = Instant::now();
    let e = failure(&f, "loop");
    assert_eq!(e.kind, "timeout", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert!(e.message.contains("hostile"), "names the plugin: {e}");
}

#[test]
fn memory_bomb_stops_at_the_limit() {
    let f = hostile(Limits { memory_bytes: 32 << 20, ..Default::default() });
    let e = failure(&f, "oom");
    assert_eq!(e.kind, "memory", "{e}");
}

#[test]
fn trap_and_garbage_are_typed_errors() {
    let f = hostile(Limits::default());
    assert_eq!(failure(&f, "trap").kind, "trap");
    let e = failure(&f, "oov");
    assert_eq!(e.kind, "invalid-output", "{e}");
    assert!(e.message.contains("outside the vocabulary"));
    assert_eq!(failure(&f, "error").kind, "plugin");
    assert!(f.plugin().metrics.error_counts().iter().any(|(k, n)| *k == "trap" && *n >= 1));
}

#[test]
fn init_failure_refuses_the_plugin() {
    let e = common::runtime()
        .load_file(
            "hostile",
            &common::plugin_path("hostile_sampler.wasm"),
            Limits::default(),
            vec![("fail_init".into(), "yes".into())],
        )
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Init, "{e}");
    assert!(e.to_string().contains("fail_init"));
}

#[test]
fn incompatible_contract_and_garbage_files_are_refused() {
    let e = common::runtime()
        .load_file("future", &common::plugin_path("future_contract.wasm"), Limits::default(), vec![])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Version, "{e}");
    assert!(
        e.message.contains("9.0.0") && e.message.contains(weft_runtime::CONTRACT_VERSION),
        "names both versions: {e}"
    );

    let e = common::runtime().load("junk", b"\0asm\x01\0\0\0garbage", Limits::default(), vec![]).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Load, "{e}");
    let e = common::runtime()
        .load_file("missing", std::path::Path::new("/nonexistent/plugin.wasm"), Limits::default(), vec![])
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Load);
}

#[test]
fn oversized_and_looping_transforms_are_stopped() {
    let p = common::load(
        "hostile-transform",
        "hostile_transform.wasm",
        Limits { deadline: Duration::from_secs(2), ..Default::default() },
        vec![],
    );
    let t = WasmTransform::new(p).unwrap();
    let req = |mode: &str| TransformRequest {
        model: "m".into(),
        prompt: Some("hi".into()),
        params: vec![("mode".into(), format!("\"{mode}\""))],
        ..Default::default()
    };
    let e = t.on_request(&req("huge")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidOutput, "{e}");
    let e = t.on_request(&req("loop")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    let r = t.on_request(&req("reject")).unwrap().unwrap_err();
    assert_eq!((r.status, r.message.as_str()), (403, "rejected on purpose"));
    assert_eq!(t.on_request(&req("pass")).unwrap().unwrap().prompt.as_deref(), Some("hi"));
    let mut s = t.response_stream(&TransformRequest::default()).unwrap();
    assert_eq!(text(s.on_chunk("abc").unwrap()), "ABC");
    assert_eq!(text(s.on_end().unwrap()), "");
}

#[test]
fn chat_template_plugin_renders_every_fixture_template() {
    let dir = common::shared().join("chat-templates");
    let convo = vec![
        ChatMessage::text("system", "You are a terse assistant."),
        ChatMessage::text("user", "What is the capital of France?"),
        ChatMessage::text("assistant", "Paris."),
        ChatMessage::text("user", "And of Italy?"),
    ];
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let src = std::fs::read_to_string(&path).unwrap();
        let config = vec![
            ("chat_template".into(), src),
            ("bos_token".into(), "<s>".into()),
            ("eos_token".into(), "</s>".into()),
        ];
        let p = common::runtime()
            .load("transform-chat-template", weft_runtime::builtin::TRANSFORM_CHAT_TEMPLATE, Limits::default(), config)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t = WasmTransform::new(p).unwrap();
        let req = TransformRequest { model: "m".into(), messages: Some(convo.clone()), ..Default::default() };
        let out = t.on_request(&req).unwrap().unwrap_or_else(|r| panic!("{}: {}", path.display(), r.message));
        assert!(out.messages.is_none());
        let prompt = out.prompt.unwrap();
        let mut at = 0;
        for m in &convo[1..] {
            let p = prompt[at..]
                .find(&m.content)
                .unwrap_or_else(|| panic!("{}: `{}` missing or out of order", path.display(), m.content));
            at += p + m.content.len();
        }
        assert!(prompt.contains("You are a terse assistant."), "{}", path.display());
        n += 1;
    }
    assert!(n >= 40);
}

#[test]
fn chat_template_of_the_default_model_is_chatml() {
    let path = weft_engine::ensure_default_model(&mut |l| eprintln!("{l}")).unwrap();
    let (_, template) = weft_engine::model::read_tokenizer(&path).unwrap();
    let p = common::runtime()
        .load(
            "transform-chat-template",
            weft_runtime::builtin::TRANSFORM_CHAT_TEMPLATE,
            Limits::default(),
            vec![("chat_template".into(), template.unwrap())],
        )
        .unwrap();
    let t = WasmTransform::new(p).unwrap();
    let req = TransformRequest {
        model: "m".into(),
        messages: Some(vec![ChatMessage::text("user", "Hi")]),
        ..Default::default()
    };
    let prompt = t.on_request(&req).unwrap().unwrap().prompt.unwrap();
    assert!(
        prompt.contains("<|im_start|>user\nHi<|im_end|>\n") && prompt.ends_with("<|im_start|>assistant\n"),
        "{prompt:?}"
    );
}

#[test]
fn least_loaded_router_chooses_and_validates() {
    let p = common::runtime()
        .load("router-least-loaded", weft_runtime::builtin::ROUTER_LEAST_LOADED, Limits::default(), vec![])
        .unwrap();
    let r = WasmRouter::new(p).unwrap();
    let b = |id: &str, q: u32, healthy: bool| BackendInfo {
        id: id.into(),
        model: "m".into(),
        queue_depth: q,
        running: 1,
        free_kv_fraction: 0.5,
        cached_prefix_tokens: 0,
        healthy,
    };
    let req = RouteRequest { model: "m".into(), ..Default::default() };
    assert_eq!(
        r.route(&req, &[b("a", 5, true), b("b", 1, true), b("c", 0, false)]).unwrap(),
        RouteDecision::Backend(1)
    );
    assert!(matches!(r.route(&req, &[b("a", 0, false)]).unwrap(), RouteDecision::Reject { status: 503, .. }));
}

#[test]
fn a_plugin_of_the_wrong_kind_is_refused_by_adapters() {
    let p = common::load("sampler-standard", "sampler_standard.wasm", Limits::default(), vec![]);
    let e = WasmTransform::new(p).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Link);
}

#[test]
fn precompiled_cache_is_hit_on_second_load() {
    let bytes = weft_runtime::builtin::SAMPLER_STANDARD;
    let _ = common::runtime().load("s", bytes, Limits::default(), vec![]).unwrap();
    let again = common::runtime().load("s", bytes, Limits::default(), vec![]).unwrap();
    assert!(again.cache_hit);
}

#[test]
fn registry_swaps_versions_without_touching_pinned_users_and_isolates_tenants() {
    let reg = weft_runtime::PluginRegistry::new();
    let v1 = common::load("hostile-transform", "hostile_transform.wasm", Limits::default(), vec![]);
    assert!(reg.install(None, v1.clone()).is_none());
    let pinned = WasmTransform::new(reg.get(None, "hostile-transform").unwrap()).unwrap();
    let mut stream = pinned.response_stream(&TransformRequest::default()).unwrap();
    let v2 =
        common::load("hostile-transform", "hostile_transform.wasm", Limits::default(), vec![("v".into(), "2".into())]);
    assert!(reg.install(None, v2.clone()).is_some());
    // The stream started on v1 keeps v1's instance.
    assert_eq!(text(stream.on_chunk("still v1").unwrap()), "STILL V1");
    assert!(std::sync::Arc::ptr_eq(pinned.plugin(), &v1));
    assert!(std::sync::Arc::ptr_eq(&reg.get(None, "hostile-transform").unwrap(), &v2));
    // Tenants have their own slots.
    assert!(reg.get(Some("acme"), "hostile-transform").is_none());
    reg.install(Some("acme"), common::load("hostile-transform", "hostile_transform.wasm", Limits::default(), vec![]));
    assert!(!std::sync::Arc::ptr_eq(&reg.get(Some("acme"), "hostile-transform").unwrap(), &v2));
    // Rollback restores v1.
    assert!(std::sync::Arc::ptr_eq(&reg.rollback(None, "hostile-transform").unwrap(), &v1));
    assert_eq!(reg.list().len(), 2);
}

#[test]
fn fallback_policy_hands_a_failing_session_to_the_native_sampler() {
    let f = hostile(Limits::default());
    let params = SamplingParams { seed: Some(3), ..Default::default() };
    let mut s = f.session(&params, 8, r#"{"mode":"trap"}"#, &[], VOCAB).unwrap().with_fallback(true);
    let mut native = NativeSampler::new(params.clone());
    assert_eq!(run(&mut s, 6).unwrap(), run(&mut native, 6).unwrap());
}

#[test]
fn fuel_limit_stops_a_runaway_call() {
    let rt = weft_runtime::PluginRuntime::new(weft_runtime::RuntimeConfig {
        cache_dir: None,
        fuel_metering: true,
        max_instances: 16,
        ..Default::default()
    })
    .unwrap();
    let limits = Limits { fuel: Some(50_000_000), deadline: Duration::from_secs(30), ..Default::default() };
    let p = rt.load_file("hostile", &common::plugin_path("hostile_sampler.wasm"), limits, vec![]).unwrap();
    let f = WasmSamplerFactory::new(p).unwrap();
    let t0 = Instant::now();
    let e = failure(&f, "loop");
    assert_eq!(e.kind, "timeout", "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10), "fuel, not the 30 s deadline, stopped it: {:?}", t0.elapsed());
}

#[test]
fn redaction_catches_matches_split_across_tiny_chunks() {
    let p = common::runtime()
        .load("transform-redact", weft_runtime::builtin::TRANSFORM_REDACT, Limits::default(), vec![])
        .unwrap();
    let t = WasmTransform::new(p).unwrap();
    let secret = "Write to jane.doe@example.com, call +1 555-123-4567, card 4111 1111 1111 1111.";
    let req = TransformRequest {
        model: "m".into(),
        messages: Some(vec![ChatMessage::text("user", secret)]),
        ..Default::default()
    };
    let out = t.on_request(&req).unwrap().unwrap();
    let content = &out.messages.unwrap()[0].content;
    for leak in ["jane.doe", "example.com", "555-123", "4111"] {
        assert!(!content.contains(leak), "request leaks {leak}: {content}");
    }
    for size in [1, 2, 5] {
        let mut s = t.response_stream(&TransformRequest::default()).unwrap();
        let mut streamed = String::new();
        let chars: Vec<char> = secret.chars().collect();
        for c in chars.chunks(size) {
            streamed.push_str(&text(s.on_chunk(&c.iter().collect::<String>()).unwrap()));
        }
        streamed.push_str(&text(s.on_end().unwrap()));
        for leak in ["jane.doe", "example.com", "555-123", "4111"] {
            assert!(!streamed.contains(leak), "chunk size {size} leaks {leak}: {streamed}");
        }
        assert!(
            streamed.contains("[email]") && streamed.contains("[card]") && streamed.contains("[phone]"),
            "{streamed}"
        );
    }
}

#[test]
fn prefix_affinity_router_prefers_the_cache_until_it_is_saturated() {
    let p = common::runtime()
        .load(
            "router-prefix-affinity",
            weft_runtime::builtin::ROUTER_PREFIX_AFFINITY,
            Limits::default(),
            vec![("max_extra_load".into(), "3".into())],
        )
        .unwrap();
    let r = WasmRouter::new(p).unwrap();
    let b = |id: &str, load: u32, cached: u32| BackendInfo {
        id: id.into(),
        model: "m".into(),
        queue_depth: load,
        running: 0,
        free_kv_fraction: 0.5,
        cached_prefix_tokens: cached,
        healthy: true,
    };
    let req =
        RouteRequest { model: "m".into(), prompt_tokens: 300, prefix_hashes: vec![1, 2, 3], ..Default::default() };
    // The cached backend wins while its extra load is within 3...
    assert_eq!(r.route(&req, &[b("a", 0, 0), b("b", 3, 256)]).unwrap(), RouteDecision::Backend(1));
    // ...and loses to least-loaded beyond that.
    assert_eq!(r.route(&req, &[b("a", 0, 0), b("b", 4, 256)]).unwrap(), RouteDecision::Backend(0));
    // No cache anywhere: least-loaded.
    assert_eq!(r.route(&req, &[b("a", 2, 0), b("b", 1, 0)]).unwrap(), RouteDecision::Backend(1));
}

#[test]
fn idle_instances_are_bounded_by_memory_and_dropped_when_unused() {
    let runtime = |idle_memory_bytes: usize| {
        weft_runtime::PluginRuntime::new(weft_runtime::RuntimeConfig {
            cache_dir: None,
            max_instances: 8,
            idle_memory_bytes,
            idle_ttl: Duration::from_millis(300),
            ..Default::default()
        })
        .unwrap()
    };
    let req = RouteRequest { model: "m".into(), ..Default::default() };
    let b = BackendInfo {
        id: "a".into(),
        model: "m".into(),
        queue_depth: 0,
        running: 0,
        free_kv_fraction: 1.0,
        cached_prefix_tokens: 0,
        healthy: true,
    };
    let route = |rt: &weft_runtime::PluginRuntime| {
        let p = rt.load("router", weft_runtime::builtin::ROUTER_LEAST_LOADED, Limits::default(), vec![]).unwrap();
        let r = WasmRouter::new(p.clone()).unwrap();
        assert_eq!(r.route(&req, std::slice::from_ref(&b)).unwrap(), RouteDecision::Backend(0));
        (p, r)
    };

    let roomy = runtime(1 << 30);
    let (p, _r) = route(&roomy);
    let held = p.idle_memory_bytes();
    assert!(held >= 64 << 10, "the idle instance's linear memory is counted: {held} bytes");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while p.idle_memory_bytes() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(p.idle_memory_bytes(), 0, "unused past the idle time: dropped without any call");

    let tight = runtime(held - 1);
    let (p, _r) = route(&tight);
    assert_eq!(p.idle_memory_bytes(), 0, "an instance that does not fit the budget is not kept");
}

/// The text of a response stream's outputs (these filters emit no tool calls).
fn text(outputs: Vec<weft_runtime::Output>) -> String {
    outputs
        .into_iter()
        .map(|o| match o {
            weft_runtime::Output::Text(t) => t,
            weft_runtime::Output::ToolCall(c) => panic!("unexpected tool call {c:?}"),
        })
        .collect()
}
