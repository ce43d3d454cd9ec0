//! {{name}}: a weft sampler. Samples as the request asks, but never hotter
//! than config `max_temperature`, and never picks a banned token id (config
//! `banned`, comma-separated ids).

use weft_sdk::sampler::{Candidate, Capabilities, Decision, Plan, Sampler, SamplingParams, Session};
use weft_sdk::{Config, Metadata, Plugin};

pub struct Capper {
    cap: f32,
    banned: Vec<u32>,
}

impl Plugin for Capper {
    fn metadata() -> Metadata {
        Metadata { name: "{{name}}".into(), version: "0.1.0".into(), description: "caps temperature, bans ids".into() }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let get = |k| weft_sdk::config_value(config, k);
        let cap = get("max_temperature").unwrap_or("0.7").parse().map_err(|_| "max_temperature is not a number")?;
        let banned = get("banned")
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().parse().map_err(|_| format!("banned id `{t}` is not a token id")))
            .collect::<Result<_, _>>()?;
        Ok(Capper { cap, banned })
    }
}

pub struct Capped {
    plan: Plan,
}

impl Session for Capped {
    fn step(&mut self, _candidates: &[Candidate]) -> Result<Decision, String> {
        Ok(Decision::Plan(self.plan.clone()))
    }
}

impl Sampler for Capper {
    type Session = Capped;

    fn capabilities(&self) -> Capabilities {
        Capabilities { top_k: 8, needs_full_logits: false }
    }

    fn session(&mut self, params: SamplingParams, _args: &str, _prompt: &[u32]) -> Result<Capped, String> {
        let mut plan = Plan::from_params(&params);
        plan.temperature = plan.temperature.min(self.cap);
        plan.banned = self.banned.clone();
        Ok(Capped { plan })
    }
}

weft_sdk::export_sampler!(Capper);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_temperature_and_bans() {
        let mut s = Capper::init(&vec![("max_temperature".into(), "0.5".into()), ("banned".into(), "7, 9".into())]).unwrap();
        let params = SamplingParams { temperature: 1.2, ..Default::default() };
        let Decision::Plan(p) = s.session(params, "", &[]).unwrap().step(&[]).unwrap() else { panic!("a plan") };
        assert_eq!((p.temperature, p.banned), (0.5, vec![7, 9]));
        assert!(Capper::init(&vec![("banned".into(), "x".into())]).is_err());
    }
}
