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
