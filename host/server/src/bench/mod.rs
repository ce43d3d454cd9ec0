//! `weft bench ...`: benchmarks that print figures (and JSON with `--json`).
//! They never assert; the figures go in closing notes and the README.

mod isolation;
mod languages;
mod plugins;
mod reload;
mod rollout;
mod serve;
mod structured;
mod tenants;
mod tools;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Subcommand;

/// A `weft serve` child process started by a benchmark, killed when dropped.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Spawned {
    /// Starts `weft serve` on a free port (with `config`, if any), waits until
    /// it is ready, and returns it with its URL.
    fn serve(config: Option<&std::path::Path>) -> anyhow::Result<(Self, String)> {
        let port = free_port()?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["serve", "--port", &port.to_string()]);
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        let server = Spawned(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&url)?;
        Ok((server, url))
    }
}

/// Waits (up to 5 minutes: the first start may fetch the model) until `url/ready` answers 200.
fn wait_ready(url: &str) -> anyhow::Result<()> {
    let c = reqwest::blocking::Client::new();
    let t0 = Instant::now();
    while c.get(format!("{url}/ready")).send().map(|r| r.status() != 200).unwrap_or(true) {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(300), "the server at {url} did not become ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What a client saw of one streamed completion.
struct Streamed {
    /// Seconds from `start` to the first non-empty content delta (NaN if none came).
    ttft: f64,
    /// Seconds between consecutive content deltas.
    gaps: Vec<f64>,
    /// `usage.completion_tokens`, when the stream carried usage.
    completion_tokens: usize,
}

/// Folds an SSE chat stream's lines into a [`Streamed`], timing content deltas.
#[derive(Default)]
struct StreamReader {
    first: Option<f64>,
    last: Option<std::time::Instant>,
    gaps: Vec<f64>,
    completion_tokens: usize,
}

impl StreamReader {
    /// One line of the stream; `Ok(false)` at `[DONE]`. An error event is an error.
    fn line(&mut self, line: &str, start: std::time::Instant) -> anyhow::Result<bool> {
        let Some(data) = line.strip_prefix("data: ") else { return Ok(true) };
        if data.trim_end() == "[DONE]" {
            return Ok(false);
        }
        let v: serde_json::Value = serde_json::from_str(data)?;
        anyhow::ensure!(v.get("error").is_none(), "error event: {v}");
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.completion_tokens = u["completion_tokens"].as_u64().unwrap_or(0) as usize;
        }
        if v["choices"][0]["delta"]["content"].as_str().is_some_and(|t| !t.is_empty()) {
            let now = std::time::Instant::now();
            self.first.get_or_insert((now - start).as_secs_f64());
            if let Some(l) = self.last {
                self.gaps.push((now - l).as_secs_f64());
            }
            self.last = Some(now);
        }
        Ok(true)
    }

    fn finish(self) -> Streamed {
        Streamed { ttft: self.first.unwrap_or(f64::NAN), gaps: self.gaps, completion_tokens: self.completion_tokens }
    }
}

/// Reads an SSE chat stream to `[DONE]`, timing its content deltas; an error event is an error.
fn read_stream(r: reqwest::blocking::Response, start: std::time::Instant) -> anyhow::Result<Streamed> {
    use std::io::BufRead;
    anyhow::ensure!(r.status() == 200, "status {}", r.status());
    let mut reader = StreamReader::default();
    for line in std::io::BufReader::new(r).lines() {
        if !reader.line(&line?, start)? {
            break;
        }
    }
    Ok(reader.finish())
}

/// [`read_stream`] on an async response: many clients share one thread.
async fn read_stream_async(mut r: reqwest::Response, start: std::time::Instant) -> anyhow::Result<Streamed> {
    anyhow::ensure!(r.status() == 200, "status {}", r.status());
    let (mut reader, mut buf) = (StreamReader::default(), Vec::<u8>::new());
    while let Some(chunk) = r.chunk().await? {
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            if !reader.line(std::str::from_utf8(&line)?.trim_end_matches(['\r', '\n']), start)? {
                return Ok(reader.finish());
            }
        }
    }
    Ok(reader.finish())
}

/// The `p` quantile (0..=1) of `v`, nearest rank; NaN when empty.
fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Plugin costs: call overhead, Wasm vs native sampler and tokenizer, the
    /// Wasm sampler's share of an engine step on the default model, and one
    /// transform in Rust, Python and JavaScript side by side.
    Plugins {
        #[arg(long)]
        json: bool,
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
        /// Only the languages comparison (one transform in Rust, Python and JavaScript).
        #[arg(long, conflicts_with = "no_languages")]
        languages: bool,
        /// Skip the languages comparison (it builds three plugins and starts four servers).
        #[arg(long)]
        no_languages: bool,
    },
    /// Constrained decoding: sampler-json's per-step cost (mask walk, cached
    /// and not) against the plain sampler, and engine tokens/s constrained vs not.
    Structured {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quick: bool,
    },
    /// Tool calling: the tool constraint's cost per step, and how often calls validate.
    Tools {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quick: bool,
    },
    /// Hot reload: time from an admin upload or a file write to the first
    /// request served by the new version (warm and cold precompiled cache),
    /// and throughput under load with and without a burst of reloads.
    Reload {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quick: bool,
    },
    /// Tenant fairness: B's TTFT while A floods (FCFS vs VTC), token shares
    /// under weights 1:1 and 2:1, and B's latency beside A's slow sampler plugin.
    Tenants {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quick: bool,
    },
    /// Isolation: a well-behaved tenant's TTFT and inter-token latency on the
    /// real server alone and beside a slow sampler, a sleeping sampler and
    /// poison prompts, with the engine's tokens/s in each case.
    Isolation {
        #[arg(long)]
        json: bool,
        #[arg(long)]
        quick: bool,
    },
    /// A rolling restart of replicas (each in its own network namespace)
    /// behind haproxy under streaming clients: requests served, failed and
    /// truncated, each replica's drain time, throughput during against before.
    Rollout {
        #[arg(long)]
        json: bool,
        /// Exit 1 if any request failed or was truncated, or a replica did not exit 0.
        #[arg(long)]
        check: bool,
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// Generated tokens per request.
        #[arg(long, default_value_t = 48)]
        max_tokens: usize,
    },
    /// Served throughput and latency at 1, 8 and 32 concurrent streaming
    /// clients, against the engine alone on the same workload.
    Serve {
        /// A running server; by default one is started on a free port.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
        /// Generated tokens per request.
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// Client counts to run, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 8, 32])]
        clients: Vec<usize>,
        /// Rounds per client count (served and engine alternating); the median is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

pub fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Plugins { json, quick, languages, no_languages } => {
            let mut r = serde_json::Map::new();
            if !languages {
                r.insert("calls".into(), plugins::run(json, quick)?);
            }
            if !no_languages {
                let l = languages::run(quick)?;
                if !json {
                    languages::print(&l);
                }
                r.insert("languages".into(), l);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            Ok(())
        }
        BenchCmd::Structured { json, quick } => structured::run(json, quick),
        BenchCmd::Tools { json, quick } => tools::run(json, quick),
        BenchCmd::Reload { json, quick } => reload::run(json, quick),
        BenchCmd::Tenants { json, quick } => tenants::run(json, quick),
        BenchCmd::Isolation { json, quick } => isolation::run(json, quick),
        BenchCmd::Serve { url, json, max_tokens, clients, rounds } => {
            serve::run(url, json, max_tokens, &clients, rounds.max(1))
        }
        BenchCmd::Rollout { json, check, replicas, clients, max_tokens } => {
            rollout::run(json, check, replicas, clients, max_tokens)
        }
    }
}
