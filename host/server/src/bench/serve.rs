//! `weft bench serve`: the served API under 1, 8 and 32 concurrent streaming
//! clients, and the engine alone on the same prompts in the same run, so the
//! cost of HTTP + tokenizer + chat template + Wasm sampler is a ratio.
//!
//! Fairness between the two sides: both share the machine's cores with
//! their readers, so the served side's clients are tasks on one thread (as
//! in vLLM's `benchmark_serving`), not a thread and a runtime each. Each client count runs
//! `--rounds` times (3 by default), served and engine alternating (and which
//! goes first alternating too: the side that runs first in a pair measured a
//! few percent slower), and the median round is reported: this machine's VMs
//! drift by 10% between runs a minute apart. Both sides are warmed on the same
//! prompts first, so both serve them from their prefix caches.
//!
//! Each side also reports where its time went per engine step, from the
//! engine's own counters (the served engine's through `/metrics`): the forward
//! pass, the rest of the step (sampling, events), and the time between steps
//! (the engine waiting for work). The served side's extra cost shows up in
//! one of the three.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_engine::{Engine, EngineConfig, Event, LoadOptions, Request, SamplingParams};

#[derive(Default)]
pub(super) struct Run {
    pub tokens: usize,
    pub secs: f64,
    ttft: Vec<f64>,
    itl: Vec<f64>,
    /// The engine's step counters over the run.
    steps: Steps,
}

/// Engine step counters (cumulative, or a difference of two readings).
#[derive(Default, Clone, Copy)]
struct Steps {
    steps: f64,
    step_secs: f64,
    forward_secs: f64,
}

impl Steps {
    const UNKNOWN: Steps = Steps { steps: f64::NAN, step_secs: f64::NAN, forward_secs: f64::NAN };

    fn since(self, before: Steps) -> Steps {
        Steps {
            steps: self.steps - before.steps,
            step_secs: self.step_secs - before.step_secs,
            forward_secs: self.forward_secs - before.forward_secs,
        }
    }

    fn of_engine(h: &weft_engine::EngineHandle) -> Steps {
        let m = h.metrics();
        Steps { steps: m.steps as f64, step_secs: m.total_step_secs, forward_secs: m.forward_secs }
    }

    /// The served engines' counters, summed, from the server's `/metrics`.
    fn scrape(c: &reqwest::blocking::Client, url: &str) -> anyhow::Result<Steps> {
        let text = c.get(format!("{url}/metrics")).send()?.error_for_status()?.text()?;
        let sum = |name: &str| -> f64 {
            text.lines()
                .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Ok(Steps {
            steps: sum("weft_engine_steps_total"),
            step_secs: sum("weft_engine_step_seconds_total"),
            forward_secs: sum("weft_engine_forward_seconds_total"),
        })
    }
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
    let st = r.steps;
    // NaN when the counters were unknown or no step ran.
    let per_step = |x: f64| if st.steps > 0.0 { x / st.steps * 1e3 } else { f64::NAN };
    json!({
        "output_tok_s": r.tokens as f64 / r.secs,
        "steps": st.steps,
        "forward_ms_per_step": per_step(st.forward_secs),
        "rest_of_step_ms_per_step": per_step(st.step_secs - st.forward_secs),
        "between_steps_ms_per_step": per_step(r.secs - st.step_secs),
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
    let metrics = reqwest::blocking::Client::new();
    // A server with tenants shows `/metrics` only to its admin key: then the
    // served side's split is unknown (NaN), the throughput still measured.
    let scrape = || Steps::scrape(&metrics, &url).unwrap_or(Steps::UNKNOWN);
    let served_round = |clients: usize| -> anyhow::Result<Run> {
        let before = scrape();
        let mut r = served(&url, clients, max_tokens)?;
        r.steps = scrape().since(before);
        Ok(r)
    };
    let engine_round = |clients: usize| -> anyhow::Result<Run> {
        let before = Steps::of_engine(&h);
        let mut r = engine_alone(&h, &prompts, clients, max_tokens)?;
        r.steps = Steps::of_engine(&h).since(before);
        Ok(r)
    };

    let mut report = serde_json::Map::new();
    let warm = counts.iter().copied().max().unwrap_or(1).min(TOPICS.len());
    let _ = served(&url, warm, 8)?;
    let _ = engine_alone(&h, &prompts, warm, 8)?;
    for &clients in counts {
        let mut rounds = Vec::new();
        for round in 0..rounds_per {
            let (s, e) = if round % 2 == 0 {
                let s = served_round(clients)?;
                (s, engine_round(clients)?)
            } else {
                let e = engine_round(clients)?;
                (served_round(clients)?, e)
            };
            let (s, e) = (summary(s), summary(e));
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
        println!("            per engine step (ms): forward / rest of step / between steps");
        for which in ["served", "engine"] {
            let x = &r[which];
            let f = |k: &str| x[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "                     {which:<6} {:6.2} / {:6.2} / {:6.2}   ({} steps)",
                f("forward_ms_per_step"),
                f("rest_of_step_ms_per_step"),
                f("between_steps_ms_per_step"),
                f("steps")
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
