//! `weft.toml`: the whole configuration, refused whole on any unknown key or
//! bad value, with the error naming the file and the key path.

mod tenant;

pub use tenant::{TenantSection, hash_key};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub models: Vec<ModelSection>,
    #[serde(default)]
    pub plugins: Vec<PluginSection>,
    #[serde(default)]
    pub admin: AdminSection,
    /// With tenants, every request needs a tenant's API key; without, the server is open.
    #[serde(default)]
    pub tenants: Vec<TenantSection>,
}

/// The admin API (hot reload, plugin status). Off unless `key` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    pub listen: String,
    /// Bearer key for every admin request.
    pub key: Option<String>,
    /// Or a file holding it (a mounted Kubernetes Secret), relative to the config file.
    pub key_file: Option<PathBuf>,
    /// Reload when the config file or a plugin file changes.
    pub watch: bool,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self { listen: "127.0.0.1:8081".into(), key: None, key_file: None, watch: true }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub host: String,
    pub port: u16,
    pub max_queued_requests: usize,
    pub max_request_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub grace_secs: u64,
    /// A client must send its request headers within this time.
    pub header_read_timeout_secs: u64,
    /// And its request body within this time.
    pub body_read_timeout_secs: u64,
    /// Linear memory idle plugin instances may hold together.
    pub plugin_idle_memory_mib: usize,
    /// An idle plugin instance unused this long is dropped.
    pub plugin_idle_secs: u64,
    /// After SIGTERM, how long `/ready` answers 503 while requests are still
    /// served, so load balancers (a Kubernetes Service, haproxy) stop sending
    /// before the listener closes. Then in-flight requests finish within `grace_secs`.
    pub drain_secs: u64,
    /// Behind a trusted gateway (the Gateway API Inference Extension, llm-d):
    /// its fairness-id header becomes the fair scheduler's key and its
    /// objective header the request's priority. Off: both are ignored.
    pub trusted_gateway: bool,
    /// Priority per inference objective name (`x-gateway-inference-objective`);
    /// a numeric header value is taken as the priority itself.
    pub objective_priorities: BTreeMap<String, i32>,
    /// Memory the models' weights and KV caches may take together; a config
    /// that cannot fit is refused at startup with the sizes named. Unset: the
    /// machine's available memory.
    pub memory_budget_mib: Option<usize>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            max_queued_requests: 256,
            max_request_body_bytes: 4 << 20,
            request_timeout_secs: 600,
            grace_secs: 30,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            plugin_idle_memory_mib: 1024,
            plugin_idle_secs: 60,
            drain_secs: 5,
            trusted_gateway: false,
            objective_priorities: BTreeMap::new(),
            memory_budget_mib: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Name clients use in `model`.
    pub name: String,
    /// `default` (SmolLM2-135M-Instruct, fetched on first use) or a GGUF / Hugging Face path.
    #[serde(default = "default_source")]
    pub source: String,
    #[serde(default = "default_quantize")]
    pub quantize: String,
    #[serde(default = "default_kv")]
    pub kv_cache_mib: usize,
    /// The KV cache's element type: `f16` (twice the tokens per MiB) or `f32`.
    #[serde(default = "default_kv_dtype")]
    pub kv_dtype: String,
    #[serde(default = "default_step_tokens")]
    pub max_tokens_per_step: usize,
    #[serde(default = "default_seqs")]
    pub max_sequences: usize,
    /// Identical engines serving this model (ignored when `engines` is given).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Engines with their own settings, e.g. one at the file's quantization and one re-quantized to q8_0.
    #[serde(default)]
    pub engines: Vec<EngineSection>,
    #[serde(default)]
    pub pipeline: Pipeline,
    /// `fcfs` or `vtc` (weighted fair sharing between tenants); default: `vtc` with tenants, else `fcfs`.
    pub scheduler: Option<String>,
    /// How long a step waits for plugin samplers before going on without the late ones.
    #[serde(default = "default_sample_budget")]
    pub sample_budget_ms: f64,
}

fn default_sample_budget() -> f64 {
    5.0
}

/// One engine of a model; unset keys take the model's values.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    pub quantize: Option<String>,
    pub kv_cache_mib: Option<usize>,
}

impl ModelSection {
    /// The engines to start, each with its quantization and KV size.
    pub fn engine_settings(&self) -> Vec<(String, usize)> {
        if self.engines.is_empty() {
            return vec![(self.quantize.clone(), self.kv_cache_mib); self.replicas];
        }
        self.engines
            .iter()
            .map(|e| {
                (
                    e.quantize.clone().unwrap_or_else(|| self.quantize.clone()),
                    e.kv_cache_mib.unwrap_or(self.kv_cache_mib),
                )
            })
            .collect()
    }
}

fn default_replicas() -> usize {
    1
}

fn default_source() -> String {
    "default".into()
}
fn default_quantize() -> String {
    "none".into()
}
fn default_kv_dtype() -> String {
    "f16".into()
}
fn default_kv() -> usize {
    512
}
fn default_step_tokens() -> usize {
    512
}
fn default_seqs() -> usize {
    64
}

/// What happens when a stage's plugin fails.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailurePolicy {
    /// The request fails with an error naming the plugin and the error kind.
    #[default]
    Closed,
    /// The stage is skipped.
    Open,
    /// The native built-in does the stage's work.
    Fallback,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pipeline {
    /// Request transforms in order; `transform-chat-template` renders chat messages.
    pub transforms: Vec<String>,
    pub tokenizer: String,
    /// A sampler plugin name, or `native`.
    pub sampler: String,
    /// The sampler for requests with `response_format` or `guided_json`/`guided_regex`; `none` refuses them.
    pub structured_sampler: String,
    /// Chooses the engine per request when the model has several.
    pub router: String,
    pub failure: Failure,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self {
            transforms: vec!["transform-chat-template".into()],
            tokenizer: "tokenizer-bpe".into(),
            sampler: "sampler-standard".into(),
            structured_sampler: "sampler-json".into(),
            router: "router-least-loaded".into(),
            failure: Failure::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Failure {
    pub transforms: FailurePolicy,
    pub tokenizer: FailurePolicy,
    pub sampler: FailurePolicy,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSection {
    pub name: String,
    /// A component file, relative to the config file.
    pub file: Option<PathBuf>,
    /// Or a built-in: tokenizer-bpe, sampler-standard, transform-chat-template, router-least-loaded.
    pub builtin: Option<String>,
    /// tokenizer, sampler, router or transform.
    pub kind: String,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    pub memory_mib: usize,
    pub deadline_ms: u64,
    pub fuel: Option<u64>,
    /// Faults in a row (trap, timeout, memory, invalid output) that open the plugin's breaker.
    pub breaker_failures: u32,
    /// How long an open breaker refuses the plugin's requests.
    pub breaker_cooldown_secs: f64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self { memory_mib: 256, deadline_ms: 2000, fuel: None, breaker_failures: 5, breaker_cooldown_secs: 10.0 }
    }
}

pub(crate) const BUILTINS: [(&str, &str); 8] = [
    ("transform-tools", "transform"),
    ("sampler-json", "sampler"),
    ("router-prefix-affinity", "router"),
    ("transform-redact", "transform"),
    ("tokenizer-bpe", "tokenizer"),
    ("sampler-standard", "sampler"),
    ("transform-chat-template", "transform"),
    ("router-least-loaded", "router"),
];

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let de = toml::Deserializer::new(&text);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            anyhow::anyhow!("{}: key `{key}`: {}", path.display(), e.into_inner().message().trim())
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tenant_plugins: Vec<&mut PluginSection> =
            cfg.tenants.iter_mut().flat_map(|t| t.plugins.iter_mut()).collect();
        for p in tenant_plugins.into_iter().chain(cfg.plugins.iter_mut()) {
            if let Some(f) = &p.file
                && f.is_relative()
            {
                p.file = Some(base.join(f));
            }
        }
        if let Some(f) = cfg.admin.key_file.clone() {
            let f = base.join(f);
            if cfg.admin.key.is_some() {
                anyhow::bail!("{}: key `admin.key_file`: set either admin.key or admin.key_file", path.display());
            }
            let key = std::fs::read_to_string(&f)
                .map_err(|e| anyhow::anyhow!("{}: key `admin.key_file`: {}: {e}", path.display(), f.display()))?;
            cfg.admin.key = Some(key.trim().to_string());
        }
        cfg.check().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// The configuration `weft serve` uses without `--config`.
    pub fn default_serving() -> Self {
        Self {
            server: ServerSection::default(),
            models: vec![ModelSection {
                name: weft_engine::DefaultModel::NAME.into(),
                source: default_source(),
                quantize: default_quantize(),
                kv_cache_mib: default_kv(),
                kv_dtype: default_kv_dtype(),
                max_tokens_per_step: default_step_tokens(),
                max_sequences: default_seqs(),
                replicas: default_replicas(),
                engines: Vec::new(),
                pipeline: Pipeline::default(),
                scheduler: None,
                sample_budget_ms: default_sample_budget(),
            }],
            plugins: Vec::new(),
            admin: AdminSection::default(),
            tenants: Vec::new(),
        }
    }

    /// Whether any plugin, global or a tenant's, sets a fuel limit (metering is engine-wide).
    pub fn wants_fuel(&self) -> bool {
        self.plugins.iter().chain(self.tenants.iter().flat_map(|t| t.plugins.iter())).any(|p| p.limits.fuel.is_some())
    }

    /// The kind of a plugin name (configured or built-in).
    pub fn plugin_kind(&self, name: &str) -> Option<&str> {
        self.plugins
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.kind.as_str())
            .or_else(|| BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k))
    }

    fn check(&self) -> Result<(), String> {
        self.check_one()?;
        self.check_tenants()?;
        Ok(())
    }

    fn check_one(&self) -> Result<(), String> {
        if self.models.is_empty() {
            return Err("key `models`: at least one [[models]] entry is needed".into());
        }
        if self.models.len() > 1 {
            for (i, m) in self.models.iter().enumerate() {
                if m.name.is_empty() || m.name.contains('@') {
                    return Err(format!("key `models[{i}].name`: with several models each needs a name, without `@`"));
                }
                if self.models[..i].iter().any(|o| o.name == m.name) {
                    return Err(format!("key `models[{i}].name`: `{}` is served twice", m.name));
                }
            }
        }
        if self.admin.key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err("key `admin.key`: use at least 16 characters".into());
        }
        if self.admin.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("key `admin.listen`: `{}` is not an address:port", self.admin.listen));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let at = format!("plugins[{i}]");
            if p.kind.parse::<weft_runtime::World>().is_err() {
                return Err(format!("key `{at}.kind`: `{}` is not tokenizer, sampler, router or transform", p.kind));
            }
            match (&p.file, &p.builtin) {
                (Some(f), None) if !f.exists() => {
                    return Err(format!("key `{at}.file`: {} does not exist", f.display()));
                }
                (Some(_), None) => {}
                (None, Some(b)) if weft_runtime::builtin::get(b).is_none() => {
                    return Err(format!("key `{at}.builtin`: no built-in plugin `{b}`"));
                }
                (None, Some(_)) => {}
                _ => return Err(format!("key `{at}`: set exactly one of `file` or `builtin`")),
            }
            if self.plugins.iter().filter(|q| q.name == p.name).count() > 1 {
                return Err(format!("key `{at}.name`: plugin `{}` is defined twice", p.name));
            }
            if p.limits.memory_mib == 0 || p.limits.memory_mib > 1024 || p.limits.deadline_ms == 0 {
                return Err(format!("key `{at}.limits`: memory_mib must be 1..=1024 and deadline_ms positive"));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            let at = format!("models[{i}]");
            if m.scheduler.as_deref().is_some_and(|s| s != "fcfs" && s != "vtc") {
                return Err(format!(
                    "key `{at}.scheduler`: `{}` is not fcfs or vtc",
                    m.scheduler.as_deref().unwrap_or("")
                ));
            }
            if m.quantize.parse::<weft_engine::Quantize>().is_err() {
                return Err(format!("key `{at}.quantize`: `{}` is not none or q8_0", m.quantize));
            }
            for (j, e) in m.engines.iter().enumerate() {
                if let Some(q) = &e.quantize
                    && q.parse::<weft_engine::Quantize>().is_err()
                {
                    return Err(format!("key `{at}.engines[{j}].quantize`: `{q}` is not none or q8_0"));
                }
            }
            if let Err(e) = m.kv_dtype.parse::<weft_engine::KvDtype>() {
                return Err(format!("key `{at}.kv_dtype`: {e}"));
            }
            if m.replicas == 0 || m.replicas > 16 || m.engines.len() > 16 {
                return Err(format!("key `{at}.replicas`: a model has 1 to 16 engines"));
            }
            if m.source != "default" && !Path::new(&m.source).exists() {
                return Err(format!("key `{at}.source`: {} does not exist", m.source));
            }
            let p = &m.pipeline;
            let expect = |key: &str, name: &str, kind: &str| match self.plugin_kind(name) {
                Some(k) if k == kind => Ok(()),
                Some(k) => Err(format!("key `{at}.pipeline.{key}`: `{name}` is a {k} plugin, not a {kind}")),
                None => Err(format!("key `{at}.pipeline.{key}`: no plugin named `{name}`")),
            };
            for (j, t) in p.transforms.iter().enumerate() {
                expect(&format!("transforms[{j}]"), t, "transform")?;
            }
            expect("tokenizer", &p.tokenizer, "tokenizer")?;
            if p.sampler != "native" {
                expect("sampler", &p.sampler, "sampler")?;
            }
            if p.structured_sampler != "none" {
                expect("structured_sampler", &p.structured_sampler, "sampler")?;
            }
            expect("router", &p.router, "router")?;
            if p.failure.tokenizer == FailurePolicy::Open {
                return Err(format!(
                    "key `{at}.pipeline.failure.tokenizer`: a tokenizer cannot be skipped; use closed or fallback"
                ));
            }
        }
        Ok(())
    }
}

impl PluginSection {
    pub fn limits(&self) -> weft_runtime::Limits {
        weft_runtime::Limits {
            memory_bytes: self.limits.memory_mib << 20,
            deadline: std::time::Duration::from_millis(self.limits.deadline_ms),
            fuel: self.limits.fuel,
            breaker: weft_runtime::BreakerPolicy {
                threshold: self.limits.breaker_failures.max(1),
                cooldown: std::time::Duration::from_secs_f64(self.limits.breaker_cooldown_secs.clamp(0.0, 3600.0)),
            },
            ..Default::default()
        }
    }

    /// Config values as strings (tables and arrays as JSON).
    pub fn config_pairs(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .map(|(k, v)| {
                let s = match v {
                    toml::Value::String(s) => s.clone(),
                    other => serde_json::to_string(other).unwrap_or_default(),
                };
                (k.clone(), s)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("weft-cfg-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key_and_file() {
        let p = write("[server]\nprot = 1\n[[models]]\nname = \"m\"\n");
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("server") && e.contains("prot") && e.contains(&p.display().to_string()), "{e}");
        let p = write("[[models]]\nname = \"m\"\nkv_cache_mib = \"lots\"\n");
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("models[0].kv_cache_mib"), "{e}");
        let p = write("[[models]]\nname = \"m\"\n[models.pipeline]\nsampler = \"tokenizer-bpe\"\n");
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("pipeline.sampler") && e.contains("not a sampler"), "{e}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/weft.toml");
        let c = Config::load(&p).unwrap();
        assert_eq!(c.models.len(), 1);
        assert_eq!(c.models[0].pipeline.failure.sampler, FailurePolicy::Fallback);
    }
}
