//! Tool-calling benchmark: what the tool constraint costs per step, and how
//! often calls come back valid.
//!
//! Cost: the Hermes constraint for two tools (as `transform-tools` builds
//! it, forced and lazy) against the plain `sampler-standard` step on the
//! default model's vocabulary, and an engine run of 8 constrained sequences
//! against 8 unconstrained ones, in this process. Validity: a `weft serve`
//! child with the Hermes format, 50 requests with `required` and 50 with
//! `auto` at temperature 0.7, every call's arguments checked against its
//! function's schema by the `jsonschema` crate.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weft_engine::{Engine, EngineConfig};

use super::structured::{Samplers, engine_run, print_steps, record_steps, samplers, step_times};

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 14}},
            "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "search", "description": "Search the web",
            "parameters": {"type": "object", "properties": {
                "query": {"type": "string", "maxLength": 60},
                "safe": {"type": "boolean"}},
            "required": ["query", "safe"], "additionalProperties": false}}}
    ])
}

/// The sampler arguments `transform-tools` attaches for this choice (Hermes).
fn constraint(choice: &str) -> anyhow::Result<String> {
    let t = transform_tools::Tools::from_params(Some(&tools().to_string()), Some(&json!(choice).to_string()), None)
        .map_err(anyhow::Error::msg)?
        .ok_or_else(|| anyhow::anyhow!("no tools"))?;
    let fmt = transform_tools::format::by_name("hermes").expect("a shipped format");
    let args = transform_tools::constraint(fmt.as_ref(), &t).map_err(anyhow::Error::msg)?;
    Ok(args.ok_or_else(|| anyhow::anyhow!("no constraint"))?.to_string())
}

const QUESTIONS: [&str; 5] = [
    "What's the weather in Lyon?",
    "Search the web for rust tutorials.",
    "Weather in Oslo in fahrenheit for 3 days?",
    "Find news about bees.",
    "Write the text <tool_call> and then the JSON for the weather in Rome.",
];

/// (requests, requests with calls, calls, valid calls) over `n` requests.
fn validity(url: &str, choice: &str, n: usize) -> anyhow::Result<(usize, usize, usize, usize)> {
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let schemas: Vec<(String, jsonschema::Validator)> = tools()
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            let v = jsonschema::validator_for(&t["function"]["parameters"]).expect("valid schema");
            (t["function"]["name"].as_str().expect("a name").to_string(), v)
        })
        .collect();
    let (mut with_calls, mut calls, mut valid) = (0, 0, 0);
    for i in 0..n {
        let body = json!({"model": weft_engine::DefaultModel::NAME,
            "messages": [{"role": "user", "content": QUESTIONS[i % QUESTIONS.len()]}],
            "tools": tools(), "tool_choice": choice, "max_tokens": 100, "temperature": 0.7, "seed": i});
        let r: Value = c.post(format!("{url}/v1/chat/completions")).json(&body).send()?.json()?;
        let list = r["choices"][0]["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
        with_calls += usize::from(!list.is_empty());
        for call in list {
            calls += 1;
            let name = call["function"]["name"].as_str().unwrap_or_default();
            let args: Option<Value> = call["function"]["arguments"].as_str().and_then(|a| serde_json::from_str(a).ok());
            let ok = schemas.iter().find(|(n, _)| n == name).zip(args).is_some_and(|((_, v), a)| v.is_valid(&a));
            valid += usize::from(ok);
        }
    }
    Ok((n, with_calls, calls, valid))
}

pub fn run(as_json: bool, quick: bool) -> anyhow::Result<()> {
    let Samplers { loaded, vocab, json_f, std_f } = samplers()?;
    let (required, auto) = (constraint("required")?, constraint("auto")?);
    let steps = if quick { 300 } else { 3000 };
    let mut r = serde_json::Map::new();
    let t0 = Instant::now();
    let _ = json_f.session(&weft_engine::sampling::SamplingParams::default(), 64, &required, &[1], vocab)?;
    r.insert("first_session_ms".into(), json!(t0.elapsed().as_secs_f64() * 1e3));
    for (k, f, args) in
        [("required", &json_f, &required), ("auto", &json_f, &auto), ("standard", &std_f, &String::new())]
    {
        record_steps(&mut r, k, step_times(f, args, vocab, steps)?.0);
    }

    let h = Engine::start(loaded, EngineConfig::default())?;
    let (c, n) = (8, if quick { 32 } else { 96 });
    let _ = engine_run(&h, &std_f, "", &[4; 2], vocab)?;
    // A forced call ends when it closes, each sequence at its own length:
    // the unconstrained run generates exactly those lengths (end of
    // sequence ignored), so both runs step through the same batches and the
    // step times differ by the constraint alone.
    let tool = engine_run(&h, &json_f, &required, &vec![n; c], vocab)?;
    let lens: Vec<usize> = tool.per_seq.iter().map(|&t| t.max(1)).collect();
    let free = engine_run(&h, &std_f, "", &lens, vocab)?;
    for (k, run) in [("unconstrained", &free), ("required", &tool)] {
        r.insert(format!("engine_c8_{k}_step_ms"), json!(run.step_ms));
        r.insert(format!("engine_c8_{k}_tok_s"), json!(run.tok_s));
        r.insert(format!("engine_c8_{k}_steps"), json!(run.steps));
        r.insert(format!("engine_c8_{k}_tokens"), json!(run.tokens));
    }
    drop(h);

    // Validity through a real server with the Hermes format.
    let dir = std::env::temp_dir().join(format!("weft-bench-tools-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("weft.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[plugins]]\nname = \"tools\"\nbuiltin = \"transform-tools\"\nkind = \"transform\"\n[plugins.config]\nformat = \"hermes\"\n\n\
             [[models]]\nname = \"{}\"\n[models.pipeline]\ntransforms = [\"tools\", \"transform-chat-template\"]\n",
            weft_engine::DefaultModel::NAME
        ),
    )?;
    let (_server, url) = super::Spawned::serve(Some(&cfg))?;
    let requests = if quick { 10 } else { 50 };
    for choice in ["required", "auto"] {
        let (n, with, calls, valid) = validity(&url, choice, requests)?;
        r.insert(
            format!("{choice}_validity"),
            json!({"requests": n, "with_calls": with, "calls": calls, "valid": valid}),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);

    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!("weft bench tools (default model, {vocab}-token vocabulary, Hermes format, 2 tools)");
    println!("  first constrained session (vocabulary, trie, constraint compile): {:.1} ms", f("first_session_ms"));
    print_steps(
        &r,
        &[
            ("required", "tool constraint, forced (required)"),
            ("auto", "tool constraint, lazy (auto)"),
            ("standard", "sampler-standard (no constraint)"),
        ],
    );
    println!(
        "  engine, {c} seqs of the same lengths ({} tokens in {} / {} steps): unconstrained {:.2} ms/step, forced tool calls {:.2} ms/step ({:.2}x)",
        r["engine_c8_required_tokens"],
        r["engine_c8_unconstrained_steps"],
        r["engine_c8_required_steps"],
        f("engine_c8_unconstrained_step_ms"),
        f("engine_c8_required_step_ms"),
        f("engine_c8_required_step_ms") / f("engine_c8_unconstrained_step_ms")
    );
    for choice in ["required", "auto"] {
        let v = &r[&format!("{choice}_validity")];
        println!(
            "  {choice:<8} at temperature 0.7: {} requests, {} with calls, {} calls, {} valid",
            v["requests"], v["with_calls"], v["calls"], v["valid"]
        );
    }
    Ok(())
}
