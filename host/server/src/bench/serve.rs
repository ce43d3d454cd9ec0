//! `weft bench serve`: the served API under 1, 8 and 32 concurrent streaming
//! clients, and the engine alone on the same prompts in the same run, so the
//! cost of HTTP + tokenizer + chat template + Wasm sampler is a ratio.
//!
//! Fairness between the two sides: both share the machine's cores with
//! their readers, so the served side's clients are tasks on one thread (as
//! in vLLM's `benchmark_serving`), not a thread and a runtime each. Each client count runs
//! `--rounds` times (3 by default), served and engine alternating, and the median round is
//! reported: this machine's VMs drift by 10% between runs a minute apart.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request, SamplingParams};

#[derive(Default)]
pub(super) struct Run {
    pub tokens: usize,
    pub secs: f64,
    ttft: Vec<f64>,
    itl: Vec<f64>,
}

const TOPICS: [&str; 8] = ["the sea", "a robot", "winter", "a lost key", "bees", "a city", "trains", "the moon"];

fn body(i: usize, max_tokens: usize) -> Value {
    json!({
        "model": weft_engine::DefaultModel::NAME,
        "messages": [{"role": "user", "content": format!("Write a short story about {}.", TOPICS[i % TOPICS.len()])}],
        "max_tokens": max_tokens, "temperature": 0.7, "seed": i, "ignore_eos": true,
        "stream": true, "stream_options": {"include_usage": true},
    })
}

/// The served side: every client is a task on one client thread (a real
/// load generator's shape; a thread and a connection runtime per client
/// would spend the cores the server under test needs).
pub(super) fn served(url: &str, clients: usize, max_tokens: usize) -> anyhow::Result<Run> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let c = reqwest::Client::builder().timeout(Duration::from_secs(600)).pool_max_idle_per_host(64).build()?;
    rt.block_on(async {
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let (c, url) = (c.clone(), url.to_string());
                tokio::spawn(async move {
                    let start = Instant::now();
                    let r = c.post(format!("{url}/v1/chat/completions")).json(&body(i, max_tokens)).send().await?;
                    super::read_stream_async(r, start).await
                })
            })
            .collect();
        let mut run = Run::default();
        for t in tasks {
            let s = t.await??;
            run.tokens += s.completion_tokens;
            run.ttft.push(s.ttft);
            run.itl.extend(s.gaps);
        }
        run.secs = t0.elapsed().as_secs_f64();
        Ok(run)
    })
}

fn engine_alone(
    h: &weft_engine::EngineHandle,
    prompts: &[Vec<u32>],
    clients: usize,
    max_tokens: usize,
) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let mut streams = Vec::new();
    for i in 0..clients {
        let mut r = Request::new(prompts[i % prompts.len()].clone(), max_tokens).with_params(SamplingParams {
            temperature: 0.7,
            seed: Some(i as u64),
            ..Default::default()
        });
        r.ignore_eos = true;
        streams.push((Instant::now(), h.submit(r)?));
    }
    let handles: Vec<_> = streams
        .into_iter()
        .map(|(start, mut s)| {
            std::thread::spawn(move || {
                let (mut first, mut last, mut itl, mut n) = (f64::NAN, None::<Instant>, Vec::new(), 0);
                while let Some(Event::Token { .. }) = s.blocking_next() {
                    let now = Instant::now();
                    if n == 0 {
                        first = (now - start).as_secs_f64();
                    }
                    if let Some(l) = last {
                        itl.push((now - l).as_secs_f64());
                    }
                    last = Some(now);
                    n += 1;
                }
                (n, first, itl)
            })
        })
        .collect();
    let mut run = Run::default();
    for h in handles {
        let (n, f, i) = h.join().map_err(|_| anyhow::anyhow!("reader panicked"))?;
        run.tokens += n;
        run.ttft.push(f);
        run.itl.extend(i);
    }
    run.secs = t0.elapsed().as_secs_f64();
    Ok(run)
}

fn summary(mut r: Run) -> Value {
    json!({
        "output_tok_s": r.tokens as f64 / r.secs,
        "ttft_p50_s": super::pct(&mut r.ttft, 0.5), "ttft_p99_s": super::pct(&mut r.ttft, 0.99),
        "itl_p50_s": super::pct(&mut r.itl, 0.5), "itl_p99_s": super::pct(&mut r.itl, 0.99),
        "tokens": r.tokens,
    })
}

pub fn run(
    url: Option<String>,
    as_json: bool,
    max_tokens: usize,
    counts: &[usize],
    rounds_per: usize,
) -> anyhow::Result<()> {
    let mut _spawned = None;
    let url = match url {
        Some(u) => {
            super::wait_ready(&u)?;
            u
        }
        None => {
            let (server, url) = super::Spawned::serve(None)?;
            _spawned = Some(server);
            url
        }
    };

    // The engine alone, in this process, on the same rendered prompts.
    let path = crate::model_source::resolve(None)?;
    let model = weft_engine::model::load(&path, LoadOptions::default())?;
    let template = model.chat_template.clone().unwrap_or_default();
    let spec = model.tokenizer.clone().ok_or_else(|| anyhow::anyhow!("no tokenizer"))?;
    let rt = crate::cli::runtime()?;
    let tok = weft_runtime::WasmTokenizer::new(crate::cli::builtin(&rt, "tokenizer-bpe", vec![])?, &spec)?;
    let tmpl = transform_chat_template::ChatTemplate::new(&template, "", "", None).map_err(anyhow::Error::msg)?;
    let prompts = TOPICS
        .iter()
        .map(|t| {
            let m = vec![transform_chat_template::Message::new("user", &format!("Write a short story about {t}."))];
            Ok(tok.encode(&tmpl.render(&m, true).map_err(anyhow::Error::msg)?, false)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let h = Engine::start(model, EngineConfig::default())?;

    let mut report = serde_json::Map::new();
    let _ = served(&url, 2, 8)?;
    for &clients in counts {
        let mut rounds = Vec::new();
        for _ in 0..rounds_per {
            let s = summary(served(&url, clients, max_tokens)?);
            let e = summary(engine_alone(&h, &prompts, clients, max_tokens)?);
            let ratio = s["output_tok_s"].as_f64().unwrap_or(0.0) / e["output_tok_s"].as_f64().unwrap_or(1.0);
            rounds.push(json!({"served": s, "engine": e, "served_over_engine": ratio}));
        }
        let all: Vec<f64> = rounds.iter().map(|r| r["served_over_engine"].as_f64().unwrap_or(f64::NAN)).collect();
        rounds.sort_by(|a, b| {
            a["served_over_engine"]
                .as_f64()
                .partial_cmp(&b["served_over_engine"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut median = rounds.swap_remove(rounds_per / 2);
        median["rounds"] = json!(all);
        report.insert(format!("c{clients}"), median);
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("weft bench serve ({url}, {max_tokens} tokens per request, streaming, median of {rounds_per} rounds)");
    println!("  clients   path     tok/s   TTFT p50   TTFT p99   ITL p50   ITL p99");
    for &clients in counts {
        let r = &report[&format!("c{clients}")];
        for which in ["served", "engine"] {
            let x = &r[which];
            let f = |k: &str| x[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {clients:>7}   {which:<6} {:7.1}   {:7.3}s   {:7.3}s   {:6.1}ms  {:6.1}ms",
                f("output_tok_s"),
                f("ttft_p50_s"),
                f("ttft_p99_s"),
                f("itl_p50_s") * 1e3,
                f("itl_p99_s") * 1e3
            );
        }
        let all: Vec<String> = r["rounds"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| format!("{:.2}", x.as_f64().unwrap_or(f64::NAN)))
            .collect();
        println!(
            "            served/engine = {:.2} (median of rounds {})",
            r["served_over_engine"].as_f64().unwrap_or(f64::NAN),
            all.join(", ")
        );
    }
    Ok(())
}
