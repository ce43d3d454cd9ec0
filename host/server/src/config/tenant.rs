//! The `[[tenants]]` part of the configuration, and the view of the whole
//! configuration one tenant's pipeline is built from.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{BUILTINS, Config, Failure, LimitsSection, PluginSection};

/// A tenant: its keys, the models it may use, its own pipeline and plugins,
/// its quotas and its share of the engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    pub id: String,
    /// SHA-256 of each key, hex (`weft tenant hash-key KEY` prints it); keys themselves are never stored.
    #[serde(default)]
    pub api_keys: Vec<String>,
    /// Models the tenant may use; unset: all.
    pub models: Option<Vec<String>>,
    /// Share of the engine under contention (fair scheduling).
    #[serde(default = "default_weight")]
    pub weight: f64,
    #[serde(default)]
    pub quotas: QuotaSection,
    /// Replaces parts of the model's pipeline for this tenant.
    #[serde(default)]
    pub pipeline: PipelineOverride,
    /// Plugins of this tenant's own (same form as `[[plugins]]`); a name here
    /// shadows a global plugin of that name, with its own code, limits and config.
    #[serde(default)]
    pub plugins: Vec<PluginSection>,
    /// Tenants naming the same group share prefix-cache blocks; unset: the
    /// tenant's cache is its own, and no other tenant can hit (or time) it.
    pub cache_group: Option<String>,
}

impl TenantSection {
    /// The engine's cache salt for this tenant's requests.
    pub fn cache_salt(&self) -> String {
        match &self.cache_group {
            Some(g) => format!("group:{g}"),
            None => format!("tenant:{}", self.id),
        }
    }
}

fn default_weight() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSection {
    pub max_concurrent: Option<usize>,
    pub requests_per_minute: Option<u32>,
    /// Prompt plus completion tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Largest `max_tokens` a request may ask for (also the default when it asks none).
    pub max_tokens: Option<u32>,
    /// Largest fraction of each engine's KV blocks the tenant may hold.
    pub kv_share: Option<f64>,
    /// Live plugin instances the tenant's requests may hold at once (default: half the server's).
    pub max_instances: Option<usize>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineOverride {
    pub transforms: Option<Vec<String>>,
    pub tokenizer: Option<String>,
    pub sampler: Option<String>,
    pub structured_sampler: Option<String>,
    pub router: Option<String>,
    pub failure: Option<Failure>,
}

/// The SHA-256 of an API key, as stored in `tenants[].api_keys`.
pub fn hash_key(key: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(key.trim().as_bytes()))
}

impl Config {
    /// The configuration as one tenant's pipeline sees it: its overrides
    /// applied and every plugin name prefixed with `<tenant>/`, so each tenant
    /// loads its own plugins (own instances, limits and config).
    pub fn for_tenant(&self, t: &TenantSection) -> Config {
        let mut c = self.clone();
        c.tenants.clear();
        let mut plugins: Vec<PluginSection> = t.plugins.clone();
        for g in &self.plugins {
            if !plugins.iter().any(|p| p.name == g.name) {
                plugins.push(g.clone());
            }
        }
        c.plugins = plugins;
        let o = &t.pipeline;
        for m in &mut c.models {
            let p = &mut m.pipeline;
            if let Some(v) = &o.transforms {
                p.transforms = v.clone();
            }
            if let Some(v) = &o.tokenizer {
                p.tokenizer = v.clone();
            }
            if let Some(v) = &o.sampler {
                p.sampler = v.clone();
            }
            if let Some(v) = &o.structured_sampler {
                p.structured_sampler = v.clone();
            }
            if let Some(v) = &o.router {
                p.router = v.clone();
            }
            if let Some(v) = &o.failure {
                p.failure = v.clone();
            }
        }
        c.scoped(|n| format!("{}/{n}", t.id))
    }

    /// The view one model's pipeline is built from: only that model, and when
    /// the server has several, every plugin name suffixed `@<model>` so each
    /// model loads its own plugins (a tokenizer or template plugin carries its
    /// model's vocabulary and template).
    pub fn for_model(&self, i: usize) -> Config {
        let mut c = self.clone();
        c.models = vec![self.models[i].clone()];
        if self.models.len() == 1 {
            return c;
        }
        let model = self.models[i].name.clone();
        c.scoped(|n| format!("{n}@{model}"))
    }

    /// Renames every plugin the models' pipelines use and every
    /// plugin section with `rename`; built-ins named directly in the pipeline
    /// become explicit sections first, so the renamed pipeline still finds them.
    fn scoped(mut self, rename: impl Fn(&str) -> String) -> Config {
        let rn = |n: &mut String| {
            if n != "native" && n != "none" {
                *n = rename(n);
            }
        };
        for m in &mut self.models {
            let p = &mut m.pipeline;
            let mut used: Vec<String> = p.transforms.clone();
            used.extend([p.tokenizer.clone(), p.sampler.clone(), p.structured_sampler.clone(), p.router.clone()]);
            for n in used {
                if n == "native" || n == "none" || self.plugins.iter().any(|q| q.name == n) {
                    continue;
                }
                if let Some((_, kind)) = BUILTINS.iter().find(|(b, _)| *b == n) {
                    self.plugins.push(PluginSection {
                        name: n.clone(),
                        file: None,
                        builtin: Some(n.clone()),
                        kind: kind.to_string(),
                        limits: LimitsSection::default(),
                        config: BTreeMap::new(),
                    });
                }
            }
            p.transforms.iter_mut().for_each(rn);
            for n in [&mut p.tokenizer, &mut p.sampler, &mut p.structured_sampler, &mut p.router] {
                rn(n);
            }
        }
        for q in &mut self.plugins {
            q.name = rename(&q.name);
        }
        self
    }

    pub(super) fn check_tenants(&self) -> Result<(), String> {
        let mut keys = std::collections::HashSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            let at = format!("tenants[{i}]");
            if t.id.is_empty() || !t.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(format!("key `{at}.id`: `{}` must be letters, digits, - or _", t.id));
            }
            if self.tenants.iter().filter(|u| u.id == t.id).count() > 1 {
                return Err(format!("key `{at}.id`: tenant `{}` is defined twice", t.id));
            }
            for (j, k) in t.api_keys.iter().enumerate() {
                if k.len() != 64 || !k.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!(
                        "key `{at}.api_keys[{j}]`: not a SHA-256 hex digest (use `weft tenant hash-key KEY`)"
                    ));
                }
                if !keys.insert(k.to_ascii_lowercase()) {
                    return Err(format!("key `{at}.api_keys[{j}]`: this key already belongs to a tenant"));
                }
            }
            if !(t.weight > 0.0 && t.weight.is_finite()) {
                return Err(format!("key `{at}.weight`: must be positive"));
            }
            if t.quotas.kv_share.is_some_and(|f| !(f > 0.0 && f <= 1.0)) {
                return Err(format!("key `{at}.quotas.kv_share`: must be in (0, 1]"));
            }
            for m in t.models.iter().flatten() {
                if !self.models.iter().any(|x| x.name == *m) {
                    return Err(format!("key `{at}.models`: no model named `{m}`"));
                }
            }
            let view = self.for_tenant(t);
            for i in 0..view.models.len() {
                view.for_model(i).check_one().map_err(|e| format!("{e} (in tenant `{}`)", t.id))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Config {
        let mut c = Config::default_serving();
        c.tenants.push(TenantSection {
            id: "acme".into(),
            api_keys: vec![hash_key("k1-secret")],
            models: None,
            weight: 1.0,
            quotas: QuotaSection::default(),
            pipeline: PipelineOverride { sampler: Some("native".into()), ..Default::default() },
            plugins: Vec::new(),
            cache_group: None,
        });
        c
    }

    #[test]
    fn a_tenant_view_prefixes_every_plugin_and_applies_overrides() {
        let c = base();
        c.check().unwrap();
        let v = c.for_tenant(&c.tenants[0]);
        let p = &v.models[0].pipeline;
        assert_eq!(p.transforms, vec!["acme/transform-chat-template"]);
        assert_eq!(p.tokenizer, "acme/tokenizer-bpe");
        assert_eq!(p.sampler, "native");
        assert!(
            v.plugins.iter().any(|q| q.name == "acme/tokenizer-bpe" && q.builtin.as_deref() == Some("tokenizer-bpe"))
        );
        assert_eq!(hash_key("k1-secret").len(), 64);
    }

    #[test]
    fn bad_tenants_are_refused_with_the_key_named() {
        let mut c = base();
        c.tenants[0].api_keys = vec!["plaintext-key".into()];
        assert!(c.check().unwrap_err().contains("tenants[0].api_keys[0]"));
        let mut c = base();
        let mut t2 = c.tenants[0].clone();
        t2.id = "other".into();
        c.tenants.push(t2);
        assert!(c.check().unwrap_err().contains("already belongs"));
        let mut c = base();
        c.tenants[0].pipeline.transforms = Some(vec!["nope".into()]);
        let e = c.check().unwrap_err();
        assert!(e.contains("no plugin named `acme/nope`") && e.contains("tenant `acme`"), "{e}");
    }
}
