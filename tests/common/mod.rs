//! The harness every end-to-end test shares: the real `weft` binary on a free
//! localhost port, and small HTTP helpers.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap()
}

/// Starts the server; returns it and the status of `/ready` at the first moment `/health` answered.
pub fn start(extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["serve", "--port", &port.to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut s = Server { child, base: format!("http://127.0.0.1:{port}") };
    let c = client();
    let t0 = Instant::now();
    let mut first_ready_status = 0;
    loop {
        assert!(t0.elapsed() < Duration::from_secs(300), "server did not become ready");
        if let Some(status) = s.child.try_wait().unwrap() {
            panic!("the server exited before it was ready ({status}); its stderr is above");
        }
        if let Ok(r) = c.get(format!("{}/health", s.base)).send() {
            assert_eq!(r.status(), 200);
            let ready = c.get(format!("{}/ready", s.base)).send().unwrap().status().as_u16();
            if first_ready_status == 0 {
                first_ready_status = ready;
            }
            if ready == 200 {
                return (s, first_ready_status);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn post(s: &Server, path: &str, body: &Value) -> (u16, Value) {
    let r = client().post(format!("{}{path}", s.base)).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Reads an SSE response to the end: the JSON chunks before `[DONE]`.
pub fn sse(base: &str, path: &str, body: &Value) -> Vec<Value> {
    let r = client().post(format!("{base}{path}")).json(body).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = r.text().unwrap();
    let mut out = Vec::new();
    let mut done = false;
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data == "[DONE]" {
            done = true;
            break;
        }
        out.push(serde_json::from_str(data).unwrap());
    }
    assert!(done, "stream ends with [DONE]");
    out
}

pub fn chat(content: &str, extra: Value) -> Value {
    let mut b = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": content}], "max_tokens": 24, "seed": 7, "temperature": 0.7});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

pub fn metric(s: &Server, name: &str) -> f64 {
    let text = client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("metrics parse as Prometheus text");
    scrape
        .samples
        .iter()
        .find(|x| x.metric == name)
        .map(|x| match x.value {
            prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

/// Writes a config file for a test and returns its path.
pub fn write_config(tag: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("weft-test-{tag}-{}.toml", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

/// The SHA-256 of an API key as `tenants[].api_keys` stores it, from the binary's own `weft tenant hash-key`.
pub fn hash_key(key: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weft")).args(["tenant", "hash-key", key]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The Python interpreter of a virtualenv under `target/` holding the pinned
/// tools of `tests/tools/requirements.txt` (made on first use, through pip).
pub fn python() -> std::path::PathBuf {
    static VENV: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let reqs = root.join("tests/tools/requirements.txt");
        let want = std::fs::read_to_string(&reqs).unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-venv");
        let py = dir.join("bin/python");
        let stamp = dir.join("requirements.txt");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
            let _ = std::fs::remove_dir_all(&dir);
            let st =
                Command::new("python3").args(["-m", "venv"]).arg(&dir).status().expect("python3 for the test tools");
            assert!(st.success(), "python3 -m venv failed");
            let st = Command::new(&py)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check", "-r"])
                .arg(&reqs)
                .status()
                .unwrap();
            assert!(st.success(), "pip install -r {} failed", reqs.display());
            std::fs::write(&stamp, want).unwrap();
        }
        py
    })
    .clone()
}

/// `/metrics` parsed by the Prometheus client library's own parser:
/// family name → (type, samples of (sample name, labels, value)).
pub type Families = std::collections::HashMap<String, (String, Vec<PromSample>)>;

/// One sample: its name, labels and value.
pub type PromSample = (String, std::collections::HashMap<String, String>, f64);

pub fn parse_prometheus(text: &str) -> Families {
    use std::io::Write;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools/prom_parse.py");
    let mut child = Command::new(python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "not Prometheus text: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|f| {
            let samples = f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let labels = s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    (s["name"].as_str().unwrap().to_string(), labels, s["value"].as_f64().unwrap_or(f64::NAN))
                })
                .collect();
            (f["name"].as_str().unwrap().to_string(), (f["type"].as_str().unwrap().to_string(), samples))
        })
        .collect()
}

/// `n` clients sending long completions (`Story {i}:`, `max_tokens`, EOS
/// ignored) back to back until stopped; `decorate` adds their key or headers.
pub struct Flood {
    /// Requests that finished with 200.
    pub done: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

pub type Decorate = fn(reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder;

pub fn flood(s: &Server, n: usize, max_tokens: usize, decorate: Decorate) -> Flood {
    use std::sync::atomic::Ordering;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles = (0..n)
        .map(|i| {
            let (base, done, stop) = (s.base.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"model": "SmolLM2-135M-Instruct", "prompt": format!("Story {i}:"), "max_tokens": max_tokens, "ignore_eos": true});
                    let r = decorate(client().post(format!("{base}/v1/completions"))).json(&body).send();
                    if r.is_ok_and(|r| r.status() == 200) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    Flood { done, stop, handles }
}

impl Flood {
    /// Stops the clients; call after the server is gone (that ends their requests) or let them finish.
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn join(self) {
        self.stop();
        for h in self.handles {
            let _ = h.join();
        }
    }
}
