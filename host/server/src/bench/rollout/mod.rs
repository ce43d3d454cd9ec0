//! `weft bench rollout`: a rolling restart that must lose nothing. Three
//! replicas, each a real host (its own network namespace), behind haproxy
//! checking `/ready`; 16 clients stream completions through haproxy the whole
//! time while each replica in turn gets SIGTERM, drains, exits, is started
//! again and rejoins. Every response is checked whole (`[DONE]`, its usage,
//! every token asked for); the report counts served, failed and truncated
//! requests, each replica's drain time and exit status, and the throughput
//! during the rollout against before it. `--check` exits 1 on any loss (the
//! end-to-end test runs that). Skipped, loudly, where network namespaces
//! cannot be made.

mod hosts;

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use hosts::{Balancer, Host};

/// How one streamed request ended.
enum Outcome {
    Served(usize),
    Failed(String),
    Truncated(String),
}

/// One completion streamed through the balancer and checked whole.
fn request(c: &reqwest::blocking::Client, url: &str, i: usize, max_tokens: usize) -> Outcome {
    let body = json!({
        "model": weft_engine::DefaultModel::NAME, "prompt": format!("Story number {i}:"),
        "max_tokens": max_tokens, "ignore_eos": true, "temperature": 0.8, "seed": i,
        "stream": true, "stream_options": {"include_usage": true},
    });
    let r = match c.post(format!("{url}/v1/completions")).json(&body).send() {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(format!("{e}")),
    };
    if r.status() != 200 {
        return Outcome::Failed(format!("status {}: {}", r.status(), r.text().unwrap_or_default()));
    }
    let (mut done, mut tokens, mut finish) = (false, None, None);
    for line in std::io::BufReader::new(r).lines() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Outcome::Truncated(format!("stream cut: {e}")),
        };
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            done = true;
            break;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return Outcome::Truncated(format!("bad chunk {data}"));
        };
        if v.get("error").is_some() {
            return Outcome::Failed(format!("error event {v}"));
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
        if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
            tokens = Some(n as usize);
        }
    }
    match (done, tokens, finish) {
        (true, Some(n), Some(_)) if n == max_tokens => Outcome::Served(n),
        (d, n, f) => Outcome::Truncated(format!("[DONE] {d}, tokens {n:?} of {max_tokens}, finish {f:?}")),
    }
}

struct Replica {
    host: Host,
    child: std::process::Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_ready(url: &str, within: Duration) -> anyhow::Result<()> {
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let t0 = Instant::now();
    loop {
        if c.get(format!("{url}/ready")).send().is_ok_and(|r| r.status() == 200) {
            return Ok(());
        }
        anyhow::ensure!(t0.elapsed() < within, "{url} did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn run(json_out: bool, check: bool, replicas: usize, clients: usize, max_tokens: usize) -> anyhow::Result<()> {
    if let Some(why) = hosts::unavailable() {
        let msg = format!("SKIPPED: network namespaces cannot be created here ({why}); run as root with iproute2");
        eprintln!("weft bench rollout: {msg}");
        if json_out {
            println!("{}", json!({"skipped": msg}));
        }
        return Ok(());
    }
    hosts::sweep();
    let dir = std::env::temp_dir().join(format!("weft-rollout-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("weft.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndrain_secs = 3\ngrace_secs = 30\n\n[[models]]\nname = \"{}\"\nkv_cache_mib = 128\n",
            weft_engine::DefaultModel::NAME
        ),
    )?;
    // Fetched once here, not by three replicas at once.
    crate::model_source::resolve(None)?;

    let mut fleet = Vec::new();
    for i in 0..replicas {
        let host = Host::new(i)?;
        let child = host.serve(&cfg, &dir.join(format!("replica-{i}.log")))?;
        fleet.push(Replica { host, child });
    }
    for r in &fleet {
        wait_ready(&r.host.url(), Duration::from_secs(300))?;
    }
    let urls: Vec<String> = fleet.iter().map(|r| format!("{}:8080", r.host.addr)).collect();
    let lb = Balancer::start(&dir, &urls)?;
    for i in 0..replicas {
        lb.wait_up(i, Duration::from_secs(30))?;
    }

    // Completed requests: (when, tokens); failures and truncations with why.
    let served: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let lost: Arc<Mutex<Vec<(&'static str, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..clients)
        .map(|k| {
            let (url, served, lost, stop) = (lb.url.clone(), served.clone(), lost.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build().unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    match request(&c, &url, k * 10_000 + n, max_tokens) {
                        Outcome::Served(t) => served.lock().unwrap().push((Instant::now(), t)),
                        Outcome::Failed(e) => lost.lock().unwrap().push(("failed", e)),
                        Outcome::Truncated(e) => lost.lock().unwrap().push(("truncated", e)),
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let tokens_between = |a: Instant, b: Instant| -> usize {
        served.lock().unwrap().iter().filter(|(t, _)| *t >= a && *t < b).map(|(_, n)| n).sum()
    };

    std::thread::sleep(Duration::from_secs(3)); // every client past its first request
    let before_start = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let before_end = Instant::now();
    let before = tokens_between(before_start, before_end) as f64 / (before_end - before_start).as_secs_f64();

    let roll_start = Instant::now();
    let mut steps = Vec::new();
    for (i, r) in fleet.iter_mut().enumerate() {
        let t0 = Instant::now();
        let pid = r.child.id().to_string();
        let st = std::process::Command::new("kill").args(["-TERM", &pid]).status()?;
        anyhow::ensure!(st.success(), "kill -TERM {pid}");
        let status = r.child.wait()?;
        let drain = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        r.child = r.host.serve(&cfg, &dir.join(format!("replica-{i}.log")))?;
        wait_ready(&r.host.url(), Duration::from_secs(300)).with_context(|| format!("replica {i} after restart"))?;
        let ready = t1.elapsed().as_secs_f64();
        let rejoin = lb.wait_up(i, Duration::from_secs(30))?.as_secs_f64();
        steps.push(json!({"replica": i, "exit_code": status.code(), "drain_secs": drain, "restart_to_ready_secs": ready, "ready_to_balanced_secs": rejoin}));
        if !json_out {
            eprintln!(
                "  replica {i}: SIGTERM -> exit {:?} after {drain:.2} s draining; ready again {ready:.2} s later; in haproxy {rejoin:.2} s after that",
                status.code()
            );
        }
    }
    let roll_end = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let during = tokens_between(roll_start, roll_end) as f64 / (roll_end - roll_start).as_secs_f64();
    let served_n = served.lock().unwrap().len();
    let lost = lost.lock().unwrap().clone();
    let failed = lost.iter().filter(|(k, _)| *k == "failed").count();
    let truncated = lost.len() - failed;
    let clean_exits = steps.iter().all(|s| s["exit_code"] == 0);
    let report = json!({
        "replicas": replicas, "clients": clients, "max_tokens": max_tokens,
        "served": served_n, "failed": failed, "truncated": truncated,
        "losses": lost.iter().take(10).map(|(k, e)| format!("{k}: {e}")).collect::<Vec<_>>(),
        "steps": steps,
        "tokens_per_sec_before": before, "tokens_per_sec_during": during,
        "during_over_before": during / before,
        "rollout_secs": (roll_end - roll_start).as_secs_f64(),
    });
    if json_out {
        println!("{report}");
    } else {
        println!(
            "weft bench rollout: {replicas} replicas behind haproxy, {clients} streaming clients, {max_tokens} tokens each"
        );
        println!("  requests served {served_n}, failed {failed}, truncated {truncated}");
        for (k, e) in lost.iter().take(10) {
            println!("    {k}: {e}");
        }
        println!(
            "  throughput before {before:.1} tok/s, during the rollout {during:.1} tok/s ({:.2}x) over {:.1} s",
            during / before,
            (roll_end - roll_start).as_secs_f64()
        );
    }
    drop(lb);
    drop(fleet);
    let _ = std::fs::remove_dir_all(&dir);
    if check && (failed > 0 || truncated > 0 || !clean_exits) {
        anyhow::bail!("the rollout lost requests or a replica did not exit 0: {report}");
    }
    Ok(())
}
