//! A sampler that misbehaves as its plugin arguments say, so the runtime's
//! limits and output validation can be tested against a real component:
//! `{"mode": "loop" | "oom" | "trap" | "oov" | "slow" | "ok"}` (or the `mode` config value).
//! `slow` spins `spin` iterations (argument or config value, default 20 million) each step, then answers:
//! a plugin that is slow but within its deadline. `sleep` sleeps 10 s through
//! WASI each step, then answers; `poll` sleeps 1 ms at a time until a second
//! has passed on the monotonic clock (frozen for plugins: it never has). With config `fail_init = "yes"`, `init` fails.

use weft_sdk::sampler::{Candidate, Decision, Plan, Sampler, SamplingParams, Session};
use weft_sdk::{Config, Metadata, Plugin, config_value};

/// The plugin's configured misbehaviour; a request's arguments may override it.
struct Hostile {
    mode: Option<String>,
    spin: Option<u64>,
}

struct Misbehaving {
    mode: String,
    hoard: Vec<Vec<u8>>,
    spin: u64,
}

impl Plugin for Hostile {
    fn metadata() -> Metadata {
        Metadata {
            name: "hostile-sampler".into(),
            version: "0.1.0".into(),
            description: "misbehaves on purpose".into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        if config_value(config, "fail_init") == Some("yes") {
            return Err("init refused: fail_init is set".into());
        }
        Ok(Hostile {
            mode: config_value(config, "mode").map(str::to_string),
            spin: config_value(config, "spin").and_then(|s| s.parse().ok()),
        })
    }
}

impl Sampler for Hostile {
    type Session = Misbehaving;

    fn session(&mut self, _params: SamplingParams, args: &str, _prompt: &[u32]) -> Result<Misbehaving, String> {
        let v: serde_json::Value =
            serde_json::from_str(if args.is_empty() { "{}" } else { args }).map_err(|e| e.to_string())?;
        // The request's arguments choose the misbehaviour, else the plugin's `mode` setting.
        let mode = v["mode"].as_str().map(str::to_string).or_else(|| self.mode.clone()).unwrap_or_else(|| "ok".into());
        let spin = v["spin"].as_u64().or(self.spin).unwrap_or(20_000_000);
        Ok(Misbehaving { mode, hoard: Vec::new(), spin })
    }
}

impl Session for Misbehaving {
    fn step(&mut self, candidates: &[Candidate]) -> Result<Decision, String> {
        match self.mode.as_str() {
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "oom" => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            "trap" => panic!("hostile sampler traps on purpose"),
            "slow" => {
                let mut x: u64 = 1;
                for _ in 0..self.spin {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                Ok(candidates
                    .first()
                    .map(|c| Decision::Token(c.id + (x == 0) as u32))
                    .unwrap_or(Decision::Plan(Plan::greedy())))
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(10));
                Ok(candidates.first().map(|c| Decision::Token(c.id)).unwrap_or(Decision::Plan(Plan::greedy())))
            }
            "poll" => {
                let t0 = std::time::Instant::now();
                while t0.elapsed() < std::time::Duration::from_secs(1) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Ok(candidates.first().map(|c| Decision::Token(c.id)).unwrap_or(Decision::Plan(Plan::greedy())))
            }
            "oov" => Ok(Decision::Token(u32::MAX - 7)),
            "error" => Err("hostile sampler reports an error".into()),
            _ => Ok(candidates.first().map(|c| Decision::Token(c.id)).unwrap_or(Decision::Plan(Plan::greedy()))),
        }
    }
}

weft_sdk::export_sampler!(Hostile);
