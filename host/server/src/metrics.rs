//! Server metrics in the Prometheus text format: request and token counters,
//! latency histograms, the engine's gauges, and per-plugin call statistics.
//!
//! Besides weft's own names, every model's series are also exported under the
//! names and types the Gateway API Inference Extension's Endpoint Picker
//! (and llm-d, KEDA or an HPA set up for vLLM) reads from vLLM, all labelled
//! `model_name`: `vllm:num_requests_waiting` / `running`,
//! `vllm:kv_cache_usage_perc` (0-1), `vllm:cache_config_info`,
//! `vllm:lora_requests_info` and the latency histograms. The picker scrapes
//! every 50 ms, so rendering reads only counters and snapshots: no locks held
//! across engines, no allocation per series beyond the output text.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use weft_runtime::LoadedPlugin;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A fixed-bucket histogram of seconds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Mutex<(Vec<u64>, f64, u64)>,
}

const LATENCY: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: Mutex::new((vec![0; bounds.len()], 0.0, 0)) }
    }

    pub fn observe(&self, v: f64) {
        if let Ok(mut c) = self.counts.lock() {
            for (i, b) in self.bounds.iter().enumerate() {
                if v <= *b {
                    c.0[i] += 1;
                }
            }
            c.1 += v;
            c.2 += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        self.series(out, name, "");
    }

    /// The samples of one labelled series (`labels` like `a="b",`, trailing comma included).
    fn series(&self, out: &mut String, name: &str, labels: &str) {
        let (counts, sum, n) = self.counts.lock().map(|c| c.clone()).unwrap_or_default();
        for (b, c) in self.bounds.iter().zip(&counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {c}");
        }
        let l = labels.trim_end_matches(',');
        let _ =
            writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {n}\n{name}_sum{{{l}}} {sum}\n{name}_count{{{l}}} {n}");
    }
}

/// One model's request-level series (the engine-level ones come from its engines' snapshots).
pub struct ModelSeries {
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub prompt_tokens: Counter,
    pub generation_tokens: Counter,
    /// Finished requests by finish reason.
    pub finished: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Default for ModelSeries {
    fn default() -> Self {
        Self {
            ttft: Histogram::new(LATENCY),
            itl: Histogram::new(LATENCY),
            e2e: Histogram::new(LATENCY),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            finished: Mutex::new(Default::default()),
        }
    }
}

/// Which latency a sample is.
#[derive(Clone, Copy)]
pub enum Latency {
    FirstToken,
    InterToken,
}

/// Plugin faults the pipeline's guards handled, by (stage, error kind, action).
#[derive(Default)]
pub struct StageFaults(Mutex<std::collections::BTreeMap<(&'static str, &'static str, &'static str), u64>>);

impl StageFaults {
    pub fn add(&self, stage: &'static str, kind: &'static str, action: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((stage, kind, action)).or_default() += 1;
        }
    }

    #[cfg(test)]
    pub fn get(&self, stage: &'static str, kind: &'static str, action: &'static str) -> u64 {
        self.0.lock().map(|m| m.get(&(stage, kind, action)).copied().unwrap_or(0)).unwrap_or(0)
    }

    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        let name = "weft_pipeline_stage_faults";
        let _ = writeln!(
            out,
            "# HELP {name}_total Plugin faults handled by a stage's failure policy (action: failed, fallback, skipped).\n# TYPE {name}_total counter"
        );
        for ((stage, kind, action), n) in self.0.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = writeln!(out, "{name}_total{{stage=\"{stage}\",kind=\"{kind}\",action=\"{action}\"}} {n}");
        }
    }
}

pub struct ServerMetrics {
    /// By (endpoint, tenant, status).
    pub requests: Mutex<std::collections::BTreeMap<(String, String, u16), u64>>,
    /// By (tenant, "prompt" | "completion").
    pub tenant_tokens: Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
    pub prompt_tokens: Counter,
    pub generation_tokens: Counter,
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
    pub reloads: Mutex<std::collections::BTreeMap<(String, String), u64>>,
    pub reload_seconds: Histogram,
    pub stage_faults: std::sync::Arc<StageFaults>,
    /// By model name.
    pub models: Mutex<std::collections::BTreeMap<String, std::sync::Arc<ModelSeries>>>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        Self {
            requests: Mutex::new(Default::default()),
            tenant_tokens: Mutex::new(Default::default()),
            prompt_tokens: Counter::default(),
            generation_tokens: Counter::default(),
            ttft: Histogram::new(LATENCY),
            itl: Histogram::new(LATENCY),
            e2e: Histogram::new(LATENCY),
            reloads: Mutex::new(Default::default()),
            reload_seconds: Histogram::new(LATENCY),
            stage_faults: Default::default(),
            models: Mutex::new(Default::default()),
        }
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name}_total {help}\n# TYPE {name}_total counter\n{name}_total {v}");
}

/// A tenant's plugins are named `<tenant>/<plugin>`.
fn tenant_of(plugin: &str) -> &str {
    plugin.split_once('/').map(|(t, _)| t).unwrap_or("")
}

/// One engine's state at scrape time.
pub struct EngineSnapshot {
    /// The model it serves.
    pub model: String,
    pub id: String,
    pub block_size: usize,
    /// KV blocks the engine's cache holds in all.
    pub num_blocks: usize,
    pub metrics: weft_engine::EngineMetrics,
    pub in_flight: usize,
}

impl ServerMetrics {
    pub fn count_request(&self, endpoint: &str, tenant: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((endpoint.to_string(), tenant.to_string(), status)).or_default() += 1;
        }
    }

    /// The series of one model (made on first use).
    pub fn model(&self, name: &str) -> std::sync::Arc<ModelSeries> {
        let mut m = self.models.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string()).or_default().clone()
    }

    /// A token's latency, into the server-wide and the model's histograms.
    pub fn latency(&self, model: &ModelSeries, which: Latency, secs: f64) {
        let (global, own) = match which {
            Latency::FirstToken => (&self.ttft, &model.ttft),
            Latency::InterToken => (&self.itl, &model.itl),
        };
        global.observe(secs);
        own.observe(secs);
    }

    /// Counts a finished sequence: its tokens (global, the tenant's and the
    /// model's), its end-to-end latency and its finish reason.
    pub fn finished(
        &self,
        model: &ModelSeries,
        tenant: &str,
        reason: &'static str,
        prompt: usize,
        completion: usize,
        secs: f64,
    ) {
        self.e2e.observe(secs);
        model.e2e.observe(secs);
        model.prompt_tokens.add(prompt as u64);
        model.generation_tokens.add(completion as u64);
        if let Ok(mut f) = model.finished.lock() {
            *f.entry(reason).or_default() += 1;
        }
        self.count_tokens(tenant, prompt, completion);
    }

    /// Adds a finished sequence's tokens to the global and the tenant's counters.
    fn count_tokens(&self, tenant: &str, prompt: usize, completion: usize) {
        self.prompt_tokens.add(prompt as u64);
        self.generation_tokens.add(completion as u64);
        if let Ok(mut m) = self.tenant_tokens.lock() {
            *m.entry((tenant.to_string(), "prompt")).or_default() += prompt as u64;
            *m.entry((tenant.to_string(), "completion")).or_default() += completion as u64;
        }
    }

    /// Counts one reload attempt by what triggered it and how it ended.
    pub fn count_reload(&self, trigger: &str, result: &str, secs: f64) {
        if let Ok(mut m) = self.reloads.lock() {
            *m.entry((trigger.to_string(), result.to_string())).or_default() += 1;
        }
        self.reload_seconds.observe(secs);
    }

    pub fn render(&self, engines: &[EngineSnapshot], plugins: &[&LoadedPlugin], version: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP weft_plugin_reloads_total Pipeline reloads by trigger and result.\n# TYPE weft_plugin_reloads_total counter"
        );
        for ((trigger, result), n) in self.reloads.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = writeln!(out, "weft_plugin_reloads_total{{trigger=\"{trigger}\",result=\"{result}\"}} {n}");
        }
        self.stage_faults.render(&mut out);
        self.reload_seconds.render(
            &mut out,
            "weft_plugin_reload_duration_seconds",
            "Time to build and publish a new pipeline version (or to refuse it).",
        );
        let _ = writeln!(
            out,
            "# HELP weft_pipeline_version Published pipeline versions (1 at startup).\n# TYPE weft_pipeline_version gauge\nweft_pipeline_version {version}"
        );
        let _ = writeln!(
            out,
            "# HELP weft_plugin_instances Live plugin instances (stores), all versions.\n# TYPE weft_plugin_instances gauge\nweft_plugin_instances {}",
            weft_runtime::live_instances()
        );
        let _ = writeln!(
            out,
            "# HELP weft_requests_total Requests by endpoint and status.\n# TYPE weft_requests_total counter"
        );
        for ((ep, tenant, st), n) in self.requests.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = writeln!(out, "weft_requests_total{{endpoint=\"{ep}\",tenant=\"{tenant}\",status=\"{st}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP weft_tenant_tokens_total Prompt and completion tokens of finished sequences, by tenant.\n# TYPE weft_tenant_tokens_total counter"
        );
        for ((tenant, kind), n) in self.tenant_tokens.lock().map(|m| m.clone()).unwrap_or_default() {
            let _ = writeln!(out, "weft_tenant_tokens_total{{tenant=\"{tenant}\",kind=\"{kind}\"}} {n}");
        }
        counter(&mut out, "weft_prompt_tokens", "Prompt tokens of finished requests.", self.prompt_tokens.get() as f64);
        counter(
            &mut out,
            "weft_generation_tokens",
            "Generated tokens of finished requests.",
            self.generation_tokens.get() as f64,
        );
        self.ttft.render(&mut out, "weft_time_to_first_token_seconds", "Time from admission to the first token.");
        self.itl.render(&mut out, "weft_inter_token_latency_seconds", "Time between consecutive tokens of a sequence.");
        self.e2e.render(&mut out, "weft_e2e_request_latency_seconds", "Time from admission to the last token.");
        // One series per engine of the model, labelled with its id.
        type Get = fn(&weft_engine::EngineMetrics, usize) -> f64;
        let families: [(&str, &str, &str, Get); 19] = [
            (
                "weft_engine_sequences_finished_total",
                "counter",
                "Sequences that ran to completion on the engine.",
                |m, _| m.finished as f64,
            ),
            (
                "weft_requests_in_flight",
                "gauge",
                "Sequences submitted to the engine and not finished (what routers balance).",
                |_, f| f as f64,
            ),
            ("weft_requests_running", "gauge", "Sequences in the running batch.", |m, _| m.running as f64),
            ("weft_requests_waiting", "gauge", "Sequences waiting for admission.", |m, _| m.waiting as f64),
            ("weft_kv_cache_usage_ratio", "gauge", "Fraction of KV blocks in use.", |m, _| m.kv.usage()),
            ("weft_kv_blocks_used", "gauge", "KV blocks referenced by live sequences.", |m, _| m.kv.used_blocks as f64),
            ("weft_kv_blocks_free", "gauge", "KV blocks free.", |m, _| m.kv.free_blocks as f64),
            ("weft_kv_blocks_cached", "gauge", "KV blocks holding reusable prefixes.", |m, _| {
                m.kv.cached_blocks as f64
            }),
            ("weft_prefix_cache_hit_rate", "gauge", "Prefix-cache block hits over lookups.", |m, _| m.kv.hit_rate()),
            ("weft_prefix_cache_queries_total", "counter", "Prompt blocks looked up in the prefix cache.", |m, _| {
                m.kv.prefix_queries as f64
            }),
            ("weft_prefix_cache_hits_total", "counter", "Prompt blocks found in the prefix cache.", |m, _| {
                m.kv.prefix_hits as f64
            }),
            (
                "weft_preemptions_total",
                "counter",
                "Sequences preempted (recomputed later), for KV blocks or fairness.",
                |m, _| m.preemptions as f64,
            ),
            (
                "weft_fair_preemptions_total",
                "counter",
                "Preemptions that let an under-served tenant in while better-served ones held every slot or block.",
                |m, _| m.fair_preemptions as f64,
            ),
            ("weft_engine_steps_total", "counter", "Engine steps run.", |m, _| m.steps as f64),
            ("weft_engine_step_seconds_total", "counter", "Time spent in engine steps.", |m, _| m.total_step_secs),
            (
                "weft_engine_forward_seconds_total",
                "counter",
                "Of the step time, time in the model's forward pass (the rest: scheduling, sampling, events).",
                |m, _| m.forward_secs,
            ),
            ("weft_engine_generation_tokens_total", "counter", "Tokens sampled by the engine.", |m, _| {
                m.generation_tokens as f64
            }),
            (
                "weft_engine_deferred_samples_total",
                "counter",
                "Plugin samples that missed their step's budget and were taken by a later step.",
                |m, _| m.deferred_samples as f64,
            ),
            (
                "weft_engine_sampling_late",
                "gauge",
                "Sequences whose plugin sampler is running past its step now.",
                |m, _| m.sampling_late as f64,
            ),
        ];
        if !engines.is_empty() {
            for (name, kind, help, get) in families {
                // Text format 0.0.4: a counter's TYPE line names it with its `_total`.
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for e in engines {
                    let _ = writeln!(
                        out,
                        "{name}{{model_name=\"{}\",engine=\"{}\"}} {}",
                        e.model,
                        e.id,
                        get(&e.metrics, e.in_flight)
                    );
                }
            }
        }
        if !engines.is_empty() {
            let _ = writeln!(
                out,
                "# HELP weft_tenant_preemptions_total Sequences preempted, by engine and by the tenant they belong to.\n# TYPE weft_tenant_preemptions_total counter"
            );
            for e in engines {
                for (tenant, n) in &e.metrics.preemptions_by_tenant {
                    let _ = writeln!(
                        out,
                        "weft_tenant_preemptions_total{{model_name=\"{}\",engine=\"{}\",tenant=\"{tenant}\"}} {n}",
                        e.model, e.id
                    );
                }
            }
        }
        self.render_vllm(&mut out, engines);
        let _ = writeln!(
            out,
            "# HELP weft_plugin_call_duration_seconds Duration of calls into a plugin.\n# TYPE weft_plugin_call_duration_seconds histogram"
        );
        for p in plugins {
            let m = &p.metrics;
            let mut cum = 0;
            for (i, b) in weft_runtime::metrics::CALL_BUCKETS.iter().enumerate() {
                cum += m.call_buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "weft_plugin_call_duration_seconds_bucket{{plugin=\"{}\",tenant=\"{}\",le=\"{b}\"}} {cum}",
                    p.name,
                    tenant_of(&p.name)
                );
            }
            let n = m.calls.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "weft_plugin_call_duration_seconds_bucket{{plugin=\"{}\",tenant=\"{}\",le=\"+Inf\"}} {n}",
                p.name,
                tenant_of(&p.name)
            );
            let _ = writeln!(
                out,
                "weft_plugin_call_duration_seconds_sum{{plugin=\"{}\",tenant=\"{}\"}} {}",
                p.name,
                tenant_of(&p.name),
                m.call_nanos.load(Ordering::Relaxed) as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "weft_plugin_call_duration_seconds_count{{plugin=\"{}\",tenant=\"{}\"}} {n}",
                p.name,
                tenant_of(&p.name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP weft_plugin_breaker_trips_total Times a plugin's circuit breaker opened.\n# TYPE weft_plugin_breaker_trips_total counter"
        );
        for p in plugins {
            let _ = writeln!(
                out,
                "weft_plugin_breaker_trips_total{{plugin=\"{}\",tenant=\"{}\"}} {}",
                p.name,
                tenant_of(&p.name),
                p.breaker.trips()
            );
        }
        let _ = writeln!(
            out,
            "# HELP weft_plugin_errors_total Plugin failures by kind.\n# TYPE weft_plugin_errors_total counter"
        );
        for p in plugins {
            for (kind, n) in p.metrics.error_counts() {
                let _ = writeln!(
                    out,
                    "weft_plugin_errors_total{{plugin=\"{}\",tenant=\"{}\",kind=\"{kind}\"}} {n}",
                    p.name,
                    tenant_of(&p.name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP weft_plugin_custom Series a plugin reports through host.counter-add / host.histogram-record.\n# TYPE weft_plugin_custom gauge"
        );
        for p in plugins {
            let custom = p.metrics.custom.lock().map(|m| m.clone()).unwrap_or_default();
            let mut names: Vec<_> = custom.into_iter().collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, v) in names {
                let name: String =
                    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
                let _ = writeln!(out, "weft_plugin_custom{{plugin=\"{}\",name=\"{name}\"}} {v}", p.name);
            }
        }
        out
    }

    /// The vLLM-named families (see the module doc), one series per model;
    /// engine gauges are summed over the model's engines.
    fn render_vllm(&self, out: &mut String, engines: &[EngineSnapshot]) {
        let mut per_model: std::collections::BTreeMap<&str, Vec<&EngineSnapshot>> = Default::default();
        for e in engines {
            per_model.entry(e.model.as_str()).or_default().push(e);
        }
        type Sum = fn(&[&EngineSnapshot]) -> f64;
        let gauges: [(&str, &str, Sum); 3] = [
            ("vllm:num_requests_running", "Requests in the running batch.", |es| {
                es.iter().map(|e| e.metrics.running as f64).sum()
            }),
            ("vllm:num_requests_waiting", "Requests waiting for admission.", |es| {
                es.iter().map(|e| e.metrics.waiting as f64).sum()
            }),
            ("vllm:kv_cache_usage_perc", "KV-cache usage, 0 to 1 (blocks referenced by live requests).", |es| {
                let used: usize = es.iter().map(|e| e.metrics.kv.used_blocks).sum();
                let total: usize = es.iter().map(|e| e.num_blocks).sum();
                if total == 0 { 0.0 } else { used as f64 / total as f64 }
            }),
        ];
        for (name, help, sum) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (m, es) in &per_model {
                let _ = writeln!(out, "{name}{{model_name=\"{m}\"}} {}", sum(es));
            }
        }
        let _ = writeln!(
            out,
            "# HELP vllm:cache_config_info KV-cache configuration (value 1).\n# TYPE vllm:cache_config_info gauge"
        );
        for (m, es) in &per_model {
            let blocks: usize = es.iter().map(|e| e.num_blocks).sum();
            let bs = es.first().map_or(0, |e| e.block_size);
            let _ = writeln!(
                out,
                "vllm:cache_config_info{{model_name=\"{m}\",block_size=\"{bs}\",num_gpu_blocks=\"{blocks}\",cache_dtype=\"f32\",enable_prefix_caching=\"True\"}} 1"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vllm:lora_requests_info LoRA adapters (none: weft serves no adapters); value: scrape time.\n# TYPE vllm:lora_requests_info gauge"
        );
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        for m in per_model.keys() {
            let _ = writeln!(
                out,
                "vllm:lora_requests_info{{model_name=\"{m}\",max_lora=\"0\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"}} {now}"
            );
        }
        let models: Vec<(String, std::sync::Arc<ModelSeries>)> =
            self.models.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default();
        type Hist = fn(&ModelSeries) -> &Histogram;
        let hists: [(&str, &str, Hist); 3] = [
            ("vllm:time_to_first_token_seconds", "Time from admission to the first token.", |s| &s.ttft),
            ("vllm:inter_token_latency_seconds", "Time between consecutive tokens of a request.", |s| &s.itl),
            ("vllm:e2e_request_latency_seconds", "Time from admission to the last token.", |s| &s.e2e),
        ];
        for (name, help, get) in hists {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (m, s) in &models {
                get(s).series(out, name, &format!("model_name=\"{m}\","));
            }
        }
        type Count = fn(&ModelSeries) -> u64;
        let counters: [(&str, &str, Count); 2] = [
            ("vllm:prompt_tokens", "Prompt tokens of finished requests.", |s| s.prompt_tokens.get()),
            ("vllm:generation_tokens", "Generated tokens of finished requests.", |s| s.generation_tokens.get()),
        ];
        for (name, help, get) in counters {
            let _ = writeln!(out, "# HELP {name}_total {help}\n# TYPE {name}_total counter");
            for (m, s) in &models {
                let _ = writeln!(out, "{name}_total{{model_name=\"{m}\"}} {}", get(s));
            }
        }
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Finished requests by finish reason.\n# TYPE vllm:request_success_total counter"
        );
        for (m, s) in &models {
            for (reason, n) in s.finished.lock().map(|f| f.clone()).unwrap_or_default() {
                let _ =
                    writeln!(out, "vllm:request_success_total{{model_name=\"{m}\",finished_reason=\"{reason}\"}} {n}");
            }
        }
    }
}
