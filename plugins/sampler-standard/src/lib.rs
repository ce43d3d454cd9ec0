//! The standard sampler as a plugin: temperature, top-k, top-p, min-p,
//! penalties and logit bias from the request, optionally overridden per
//! request by plugin arguments (`{"top_k": 20, "temperature": 0.3}`).
//!
//! It never touches the logits itself: every step it returns a plan the host
//! runs natively with the sequence's seeded RNG, so with the same seed it
//! yields exactly the tokens of the native sampler, at the cost of one call.

use weft_sdk::sampler::{Candidate, Capabilities, Decision, Plan, Sampler, SamplingParams, Session};
use weft_sdk::{Config, Metadata, Plugin};

struct Standard;

/// One sequence: the plan its parameters and arguments make, every step.
struct Planned {
    plan: Plan,
}

impl Plugin for Standard {
    fn metadata() -> Metadata {
        Metadata {
            name: "sampler-standard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Standard)
    }
}

fn override_f32(args: &serde_json::Value, key: &str, slot: &mut f32) -> Result<(), String> {
    if let Some(v) = args.get(key) {
        *slot = v.as_f64().ok_or(format!("plugin argument `{key}` must be a number"))? as f32;
    }
    Ok(())
}

impl Sampler for Standard {
    type Session = Planned;

    fn capabilities(&self) -> Capabilities {
        // The plan needs no candidates; ask for the fewest.
        Capabilities { top_k: 1, needs_full_logits: false }
    }

    fn session(&mut self, params: SamplingParams, args: &str, _prompt: &[u32]) -> Result<Planned, String> {
        let mut plan = Plan::from_params(&params);
        if !args.trim().is_empty() {
            let a: serde_json::Value =
                serde_json::from_str(args).map_err(|e| format!("plugin arguments are not JSON: {e}"))?;
            override_f32(&a, "temperature", &mut plan.temperature)?;
            override_f32(&a, "top_p", &mut plan.top_p)?;
            override_f32(&a, "min_p", &mut plan.min_p)?;
            override_f32(&a, "repetition_penalty", &mut plan.repetition_penalty)?;
            if let Some(k) = a.get("top_k") {
                plan.top_k = k.as_u64().ok_or("plugin argument `top_k` must be a non-negative integer")? as u32;
            }
        }
        Ok(Planned { plan })
    }
}

impl Session for Planned {
    fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
        Ok(Decision::Plan(self.plan.clone()))
    }
}

weft_sdk::export_sampler!(Standard);
