//! Hot reload: plugins and pipeline settings replaced while traffic flows.
//!
//! Every trigger (a watched file changing, `POST /admin/reload`, an uploaded
//! component, a rollback) goes through [`Reloader::apply`], one at a time: it
//! builds a complete new version of the pipeline off the request path (compile
//! or fetch from the precompiled cache, check world and contract, run `init`
//! with the config) and only then publishes it with one atomic swap. Any
//! failure leaves the serving version untouched and is recorded where
//! operators look: the admin API, `/metrics` and the log.
//!
//! Pinning needs no bookkeeping: a request takes an `Arc` of the version
//! serving when it is admitted and keeps it to its end (its transforms,
//! sampler session and response filters all come from it), so it never sees
//! a mix; the old version, its plugins and their instances are freed when the
//! last request holding it finishes.

pub mod admin;
pub mod build;
pub mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use weft_runtime::PluginRuntime;

use crate::config::{Config, TenantSection};
use crate::metrics::ServerMetrics;
use crate::pipeline::TenantCtx;
use crate::quota::Quotas;
use crate::tenancy::{Registry, Services, Tenant};
use build::{BuildError, Builder, Loaded, ModelBase, Origin, Source};
use weft_engine::TenantShare;

/// Previous good versions kept per plugin for rollback.
const HISTORY: usize = 8;

/// Reads the configuration again: the file with the command line's overrides applied.
pub type ConfigSource = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// Serves reloads of every model's pipelines (one per model, per tenant).
pub struct Reloader {
    registry: Arc<Registry>,
    metrics: Arc<ServerMetrics>,
    rt: PluginRuntime,
    /// What each model is, in `[[models]]` order (the models themselves change only with a restart).
    bases: Vec<ModelBase>,
    config_path: Option<PathBuf>,
    read_config: ConfigSource,
    /// Whether the runtime meters fuel (chosen at startup for every plugin).
    fuel_metering: bool,
    inner: Mutex<Inner>,
}

struct Inner {
    config: Config,
    /// The code of every plugin the serving version uses.
    serving: HashMap<String, Source>,
    loaded: Loaded,
    file_hashes: HashMap<PathBuf, String>,
    history: HashMap<String, Vec<Source>>,
    /// The last failed attempt per plugin (or `config`): when and why.
    errors: HashMap<String, (u64, String)>,
    version: u64,
}

/// What a successful reload did.
#[derive(Debug)]
pub struct Report {
    pub version: u64,
    /// Plugins now running different code, configuration or limits.
    pub changed: Vec<String>,
    /// Settings that changed in the file but take effect only after a restart.
    pub restart_needed: Vec<String>,
    pub seconds: f64,
}

impl Report {
    pub fn json(&self) -> Value {
        json!({"version": self.version, "changed": self.changed, "restart_needed": self.restart_needed, "seconds": self.seconds})
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Reloader {
    /// Builds and publishes the first version.
    pub fn start(
        registry: Arc<Registry>,
        metrics: Arc<ServerMetrics>,
        rt: PluginRuntime,
        bases: Vec<ModelBase>,
        config: Config,
        config_path: Option<PathBuf>,
        read_config: ConfigSource,
    ) -> anyhow::Result<Arc<Self>> {
        let r = Arc::new(Self {
            registry,
            metrics,
            rt,
            bases,
            config_path,
            read_config,
            fuel_metering: config.wants_fuel(),
            inner: Mutex::new(Inner {
                config: config.clone(),
                serving: HashMap::new(),
                loaded: Loaded::new(),
                file_hashes: HashMap::new(),
                history: HashMap::new(),
                errors: HashMap::new(),
                version: 0,
            }),
        });
        r.apply("startup", Some(config), None).map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(r)
    }

    /// Size and modification time of every watched file, to tell a real change
    /// from the events our own reads cause.
    pub fn stamps(&self) -> Vec<(PathBuf, Option<(u64, SystemTime)>)> {
        self.watched_files()
            .into_iter()
            .map(|f| {
                let m = std::fs::metadata(&f).ok().and_then(|m| Some((m.len(), m.modified().ok()?)));
                (f, m)
            })
            .collect()
    }

    /// Plugin files of the serving configuration (what the watcher follows).
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let tenant_plugins = inner.config.tenants.iter().flat_map(|t| t.plugins.iter());
        let mut v: Vec<PathBuf> =
            inner.config.plugins.iter().chain(tenant_plugins).filter_map(|p| p.file.clone()).collect();
        v.extend(self.config_path.clone());
        v
    }

    /// Re-reads the config file (if the server has one) and every plugin file.
    pub fn reload(&self, trigger: &str) -> Result<Report, BuildError> {
        let cfg = match &self.config_path {
            Some(_) => match (self.read_config)() {
                Ok(c) => Some(c),
                Err(e) => {
                    let err = BuildError { plugin: "config".into(), error: e };
                    self.failed(trigger, &err, 0.0);
                    return Err(err);
                }
            },
            None => None,
        };
        self.apply(trigger, cfg, None)
    }

    /// Installs uploaded code for one plugin of the pipeline.
    pub fn upload(&self, name: &str, bytes: Vec<u8>) -> Result<Report, BuildError> {
        self.apply("upload", None, Some((name.to_string(), Source::new(bytes, Origin::Upload))))
    }

    /// Puts back the plugin's previous good code.
    pub fn rollback(&self, name: &str) -> Result<Report, BuildError> {
        let prev = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.history.get_mut(name).and_then(|h| h.pop())
        };
        let Some(mut prev) = prev else {
            return Err(BuildError {
                plugin: name.into(),
                error: anyhow::anyhow!("no previous version of `{name}` to roll back to"),
            });
        };
        // Pinned as an upload, so that an unchanged file does not undo the rollback.
        prev.origin = Origin::Upload;
        self.apply("rollback", None, Some((name.to_string(), prev)))
    }

    fn failed(&self, trigger: &str, e: &BuildError, secs: f64) {
        tracing::warn!(trigger, plugin = %e.plugin, error = %format!("{:#}", e.error), "reload refused; the serving version stays");
        self.metrics.count_reload(trigger, "failure", secs);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.errors.insert(e.plugin.clone(), (now(), format!("{:#}", e.error)));
    }

    /// Builds a new version from `cfg` (or the serving config) with `replace`
    /// installed, and publishes it if every part of it loads.
    fn apply(
        &self,
        trigger: &str,
        cfg: Option<Config>,
        replace: Option<(String, Source)>,
    ) -> Result<Report, BuildError> {
        let t0 = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let restart_needed =
            cfg.as_ref().map(|c| restart_keys(&inner.config, c, self.fuel_metering)).unwrap_or_default();
        if let Some(c) = &cfg
            && let Some(why) = weakens_access(&inner.config, c)
        {
            drop(inner);
            let e = BuildError { plugin: "config".into(), error: anyhow::anyhow!(why) };
            self.failed(trigger, &e, t0.elapsed().as_secs_f64());
            return Err(e);
        }
        let mut cfg = cfg.unwrap_or_else(|| inner.config.clone());
        // Settings that need a restart keep their running values.
        if !restart_needed.is_empty() {
            tracing::warn!(keys = ?restart_needed, "these settings changed but take effect only after a restart; the rest is applied");
            cfg.server = inner.config.server.clone();
            // The serving models stay, each with the pipeline the new file gives it.
            let mut models = inner.config.models.clone();
            let single = models.len() == 1 && cfg.models.len() == 1;
            for m in &mut models {
                if let Some(n) = cfg.models.iter().find(|n| single || n.name == m.name) {
                    m.pipeline = n.pipeline.clone();
                }
            }
            cfg.models = models;
        }
        // One pipeline per tenant (plugin names prefixed `<tenant>/`), or one
        // for everyone; within it one per model (suffixed `@<model>` when there are several).
        let tenant_views: Vec<(Option<TenantSection>, Config)> = if cfg.tenants.is_empty() {
            vec![(None, cfg.clone())]
        } else {
            cfg.tenants.iter().map(|t| (Some(t.clone()), cfg.for_tenant(t))).collect()
        };
        let owners: Vec<(Option<TenantSection>, &ModelBase, Config)> = tenant_views
            .iter()
            .flat_map(|(t, c)| (0..c.models.len()).map(move |i| (t.clone(), &self.bases[i], c.for_model(i))))
            .collect();
        let mut names: Vec<String> =
            owners.iter().flat_map(|(_, b, c)| build::pipeline_names(c, b.backends.len())).collect();
        names.sort();
        names.dedup();
        if let Some((name, _)) = &replace
            && !names.contains(name)
        {
            drop(inner);
            let e = BuildError {
                plugin: name.clone(),
                error: anyhow::anyhow!("no plugin named `{name}` in the serving pipelines"),
            };
            return Err(e);
        }
        let mut file_hashes = inner.file_hashes.clone();
        let prev = self.registry.services.load_full();
        let built = (|| {
            let mut sources = HashMap::new();
            for (_, base, c) in &owners {
                sources.extend(build::resolve_sources(
                    c,
                    &build::pipeline_names(c, base.backends.len()),
                    &inner.serving,
                    &mut file_hashes,
                )?);
            }
            if let Some((name, src)) = replace.clone() {
                sources.insert(name, src);
            }
            let mut loaded = Loaded::new();
            let mut services = Vec::new();
            for (tenant, base, c) in &owners {
                let prev_svc = prev.as_deref().and_then(|p| match (p, tenant) {
                    (Services::Open(m), None) => m.get(&base.name).cloned(),
                    (Services::Tenants { by_id, .. }, Some(t)) => {
                        by_id.get(&t.id).and_then(|x| x.services.get(&base.name).cloned())
                    }
                    _ => None,
                });
                let ctx = tenant.as_ref().map(|t| TenantCtx {
                    id: t.id.clone(),
                    cache_salt: t.cache_salt().into(),
                    quotas: Quotas {
                        max_concurrent: t.quotas.max_concurrent,
                        requests_per_minute: t.quotas.requests_per_minute,
                        tokens_per_minute: t.quotas.tokens_per_minute,
                        max_tokens: t.quotas.max_tokens,
                        max_instances: t.quotas.max_instances,
                    },
                    meter: self.registry.meters.get(&t.id),
                });
                let b = Builder {
                    rt: &self.rt,
                    base,
                    cfg: c,
                    sources: &sources,
                    current: &inner.loaded,
                    prev: prev_svc.as_deref(),
                    version: inner.version + 1,
                    tenant: ctx,
                    faults: self.metrics.stage_faults.clone(),
                };
                let (svc, l) = b.build()?;
                loaded.extend(l);
                services.push((tenant.clone(), Arc::new(svc)));
            }
            Ok::<_, BuildError>((services, loaded, sources))
        })();
        let (services, loaded, sources) = match built {
            Ok(b) => b,
            Err(e) => {
                drop(inner);
                self.failed(trigger, &e, t0.elapsed().as_secs_f64());
                return Err(e);
            }
        };
        let published = if cfg.tenants.is_empty() {
            Services::Open(services.into_iter().map(|(_, svc)| (svc.name.clone(), svc)).collect())
        } else {
            let mut by_id: HashMap<String, Tenant> = HashMap::new();
            let mut keys = HashMap::new();
            for (t, svc) in services {
                let t = t.expect("tenant pipelines");
                for k in &t.api_keys {
                    keys.insert(k.to_ascii_lowercase(), t.id.clone());
                }
                by_id
                    .entry(t.id.clone())
                    .or_insert_with(|| Tenant {
                        id: t.id.clone(),
                        services: Default::default(),
                        models: t.models.clone(),
                    })
                    .services
                    .insert(svc.name.clone(), svc);
            }
            Services::Tenants { by_id: by_id.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(), keys }
        };
        if let Ok(mut shares) = self.registry.shares.write() {
            shares.clear();
            for t in &cfg.tenants {
                shares.insert(
                    t.id.clone(),
                    TenantShare { weight: t.weight, max_kv_fraction: t.quotas.kv_share.unwrap_or(1.0) },
                );
            }
        }
        let mut changed: Vec<String> = loaded
            .iter()
            .filter(|(n, (k, _))| inner.loaded.get(*n).is_none_or(|(old, _)| old != k))
            .map(|(n, _)| n.clone())
            .collect();
        changed.sort();
        let st: &mut Inner = &mut inner;
        for (name, src) in &sources {
            if let Some(old) = st.serving.get(name)
                && old.hash != src.hash
                && trigger != "rollback"
            {
                let h = st.history.entry(name.clone()).or_default();
                h.push(old.clone());
                if h.len() > HISTORY {
                    h.remove(0);
                }
            }
            if changed.contains(name) {
                st.errors.remove(name);
            }
        }
        inner.errors.remove("config");
        inner.version += 1;
        inner.serving = sources;
        inner.loaded = loaded;
        inner.file_hashes = file_hashes;
        inner.config = cfg;
        let version = inner.version;
        drop(inner);
        self.registry.services.store(Some(Arc::new(published)));
        let secs = t0.elapsed().as_secs_f64();
        self.metrics.count_reload(trigger, "success", secs);
        if trigger != "startup" {
            tracing::warn!(trigger, version, changed = ?changed, ms = (secs * 1e3) as u64, "pipeline reloaded");
        }
        Ok(Report { version, changed, restart_needed, seconds: secs })
    }

    /// The admin API's view of every plugin of the serving version.
    pub fn describe(&self) -> Value {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = inner.loaded.keys().collect();
        names.sort();
        let plugins: Vec<Value> = names
            .into_iter()
            .map(|name| {
                let p = &inner.loaded[name].1;
                let src = inner.serving.get(name);
                let err = inner.errors.get(name);
                let loaded_at = p.loaded_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                json!({
                    "name": name,
                    "kind": p.world.as_str(),
                    "contract": p.contract.to_string(),
                    "version": p.info.version,
                    "hash": p.hash,
                    "origin": src.map(|s| s.origin.as_str()),
                    "loaded_at": loaded_at,
                    "status": if err.is_some() { "serving; last update refused" } else { "serving" },
                    "last_error": err.map(|(t, m)| json!({"at": t, "message": m})),
                    "calls": p.metrics.calls.load(std::sync::atomic::Ordering::Relaxed),
                    "errors": p.metrics.error_counts().iter().map(|(_, n)| n).sum::<u64>(),
                    "rollback_versions": inner.history.get(name).map(Vec::len).unwrap_or(0),
                })
            })
            .collect();
        json!({
            "version": inner.version,
            "plugins": plugins,
            "config_error": inner.errors.get("config").map(|(t, m)| json!({"at": t, "message": m})),
        })
    }
}

/// Why a reload from `old` to `new` would open the server to callers it now
/// refuses, if it would. A server with tenants needs a key for every request;
/// a file that lost its `[[tenants]]` (edited by mistake, or caught half
/// written) would otherwise switch authentication off. Going the other way,
/// from open to tenants, only closes the server and is allowed.
fn weakens_access(old: &Config, new: &Config) -> Option<String> {
    if old.tenants.is_empty() || !new.tenants.is_empty() {
        return None;
    }
    Some(format!(
        "the new configuration has no [[tenants]] while the server serves {} tenant(s) with API keys: \
         reloading it would serve every request without a key. Refused; to run without tenants, restart with that configuration",
        old.tenants.len()
    ))
}

/// Keys whose change needs a restart: the listener, the model and its engines,
/// and turning fuel metering on (it is an engine-wide compile setting).
fn restart_keys(old: &Config, new: &Config, fuel_on: bool) -> Vec<String> {
    let mut keys = Vec::new();
    let (o, n) = (&old.server, &new.server);
    for (k, differs) in [
        ("server.host", o.host != n.host),
        ("server.port", o.port != n.port),
        ("server.max_queued_requests", o.max_queued_requests != n.max_queued_requests),
        ("server.max_request_body_bytes", o.max_request_body_bytes != n.max_request_body_bytes),
        ("server.request_timeout_secs", o.request_timeout_secs != n.request_timeout_secs),
        ("server.grace_secs", o.grace_secs != n.grace_secs),
        ("server.header_read_timeout_secs", o.header_read_timeout_secs != n.header_read_timeout_secs),
        ("server.body_read_timeout_secs", o.body_read_timeout_secs != n.body_read_timeout_secs),
        ("server.plugin_idle_memory_mib", o.plugin_idle_memory_mib != n.plugin_idle_memory_mib),
        ("server.plugin_idle_secs", o.plugin_idle_secs != n.plugin_idle_secs),
        ("server.drain_secs", o.drain_secs != n.drain_secs),
        ("server.trusted_gateway", o.trusted_gateway != n.trusted_gateway),
        ("server.objective_priorities", o.objective_priorities != n.objective_priorities),
        ("server.memory_budget_mib", o.memory_budget_mib != n.memory_budget_mib),
        ("admin", format!("{:?}", old.admin) != format!("{:?}", new.admin)),
    ] {
        if differs {
            keys.push(k.to_string());
        }
    }
    let names = |c: &Config| c.models.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    if old.models.len() != new.models.len() || (old.models.len() > 1 && names(old) != names(new)) {
        keys.push("models (adding, removing or renaming a model)".into());
    }
    for (i, (o, n)) in old.models.iter().zip(&new.models).enumerate() {
        for (k, differs) in [
            ("name", o.name != n.name),
            ("source", o.source != n.source),
            ("quantize", o.quantize != n.quantize),
            ("kv_cache_mib", o.kv_cache_mib != n.kv_cache_mib),
            ("kv_dtype", o.kv_dtype != n.kv_dtype),
            ("max_tokens_per_step", o.max_tokens_per_step != n.max_tokens_per_step),
            ("max_sequences", o.max_sequences != n.max_sequences),
            ("replicas", o.replicas != n.replicas),
            ("engines", format!("{:?}", o.engines) != format!("{:?}", n.engines)),
            ("scheduler", o.scheduler != n.scheduler),
        ] {
            if differs {
                keys.push(format!("models[{i}].{k}"));
            }
        }
    }
    let scheduler_set = old.models.iter().all(|m| m.scheduler.is_some());
    if !scheduler_set && old.tenants.is_empty() != new.tenants.is_empty() {
        keys.push("tenants (the engines' scheduler, fair or FCFS, is chosen at startup)".into());
    }
    if !fuel_on && new.wants_fuel() {
        keys.push("plugins[].limits.fuel (fuel metering is chosen at startup)".into());
    }
    keys
}
