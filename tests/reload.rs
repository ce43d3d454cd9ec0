//! Hot reload end to end: swaps of a response transform under streaming load
//! never fail or mix a request; refused updates leave the serving version in
//! place and say why; rollback, file changes and config reloads work; and a
//! thousand reloads leave instance counts and memory flat.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::*;

const KEY: &str = "test-admin-key-0123456789";

fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(weft_runtime::builtin::build_dir().join(format!("{name}.wasm"))).unwrap()
}

struct Setup {
    server: Server,
    admin: String,
    dir: PathBuf,
    config: PathBuf,
}

fn config_text(dir: &Path, admin_port: u16, extra_model: &str) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nkey = \"{KEY}\"\n\n[[plugins]]\nname = \"tagger\"\nfile = \"{}\"\nkind = \"transform\"\n\n\
         [[models]]\nname = \"SmolLM2-135M-Instruct\"\n{extra_model}[models.pipeline]\ntransforms = [\"tagger\", \"transform-chat-template\"]\n",
        dir.join("tagger.wasm").display()
    )
}

fn setup(tag: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("weft-reload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tagger.wasm"), wasm("tagger_a")).unwrap();
    let admin_port = free_port();
    let config = dir.join("weft.toml");
    std::fs::write(&config, config_text(&dir, admin_port, "")).unwrap();
    let (server, _) = start(&["--config", config.to_str().unwrap()]);
    Setup { server, admin: format!("http://127.0.0.1:{admin_port}"), dir, config }
}

fn admin(s: &Setup, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
    let c = client();
    let url = format!("{}{path}", s.admin);
    let req = match method {
        "GET" => c.get(url),
        "PUT" => c.put(url).body(body),
        _ => c.post(url).body(body),
    };
    let r = req.bearer_auth(KEY).send().unwrap();
    let st = r.status().as_u16();
    (st, r.json().unwrap_or(Value::Null))
}

/// The single tag of a whole response, or a description of what is wrong with it.
fn tag_of(pieces: &[String]) -> Result<String, String> {
    let mut tag = None;
    for p in pieces.iter().filter(|p| !p.is_empty()) {
        let n = p.matches("[tagger-").count();
        let t = p.strip_prefix("[tagger-").and_then(|r| r.split_once(']')).map(|(t, _)| t.to_string());
        match (n, t, &tag) {
            (1, Some(t), None) => tag = Some(t),
            (1, Some(t), Some(prev)) if t == *prev => {}
            _ => return Err(format!("mixed or untagged response: {pieces:?}")),
        }
    }
    tag.ok_or_else(|| format!("empty response: {pieces:?}"))
}

fn ask(s: &Server) -> Result<String, String> {
    let (st, r) = post(s, "/v1/chat/completions", &chat("Say hello.", json!({"max_tokens": 6})));
    if st != 200 {
        return Err(format!("status {st}: {r}"));
    }
    let text = r["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
    // Non-streamed: the tagged chunks are concatenated; cut them apart at each tag.
    let mut parts = text.split("[tagger-");
    if parts.next() != Some("") {
        return Err(format!("untagged text in {text:?}"));
    }
    let pieces: Vec<String> = parts.map(|p| format!("[tagger-{p}")).collect();
    tag_of(&pieces)
}

#[test]
fn fifty_swaps_under_streaming_load_never_fail_or_mix_a_request() {
    let s = setup("swaps");
    let (a, b) = (wasm("tagger_a"), wasm("tagger_b"));
    let stop = AtomicBool::new(false);
    let served = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let mut latencies = Vec::new();
    std::thread::scope(|sc| {
        for c in 0..8 {
            let (s, stop, served, failures) = (&s, &stop, &served, &failures);
            sc.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let body =
                        chat(&format!("client {c}: tell me something"), json!({"max_tokens": 12, "stream": true}));
                    let r = client().post(format!("{}/v1/chat/completions", s.server.base)).json(&body).send();
                    let text = match r {
                        Ok(r) if r.status() == 200 => r.text().unwrap_or_default(),
                        Ok(r) => {
                            failures.lock().unwrap().push(format!("status {}", r.status()));
                            continue;
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!("{e}"));
                            continue;
                        }
                    };
                    let pieces: Vec<String> = text
                        .lines()
                        .filter_map(|l| l.strip_prefix("data: "))
                        .filter(|d| *d != "[DONE]")
                        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
                        .collect();
                    if !text.contains("data: [DONE]") {
                        failures.lock().unwrap().push("stream did not finish".into());
                    } else if let Err(e) = tag_of(&pieces) {
                        failures.lock().unwrap().push(e);
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for i in 0..50 {
            let (bytes, want) = if i % 2 == 0 { (&b, "b") } else { (&a, "a") };
            let t0 = Instant::now();
            let (st, r) = admin(&s, "PUT", "/admin/plugins/tagger", bytes.clone());
            assert_eq!(st, 200, "{r}");
            latencies.push(t0.elapsed());
            // A request admitted after the swap returned uses the new version.
            assert_eq!(ask(&s.server).unwrap(), want, "swap {i}");
            std::thread::sleep(Duration::from_millis(60));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let failures = failures.into_inner().unwrap();
    latencies.sort();
    eprintln!(
        "50 swaps under 8 streaming clients: {} streamed responses, {} failures; upload-to-live p50 {:?}, max {:?}",
        served.load(Ordering::Relaxed),
        failures.len(),
        latencies[25],
        latencies[49]
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(served.load(Ordering::Relaxed) >= 50);
}

#[test]
fn refused_updates_keep_the_serving_version_and_say_why() {
    let s = setup("refusals");
    assert_eq!(ask(&s.server).unwrap(), "a");
    let r = client().get(format!("{}/admin/plugins", s.admin)).send().unwrap();
    assert_eq!(r.status(), 401, "no key, no admin");

    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("corrupt", b"\0asm\x0d\0\x01\0 definitely not a component".to_vec(), "not a valid component"),
        ("future contract", wasm("future_contract"), "9.0.0"),
        ("init fails", wasm("tagger_broken"), "refuses to start"),
    ];
    for (what, bytes, why) in cases {
        let (st, e) = admin(&s, "PUT", "/admin/plugins/tagger", bytes);
        assert_eq!(st, 422, "{what}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(why), "{what}: {e}");
        let (_, list) = admin(&s, "GET", "/admin/plugins", vec![]);
        let tagger = list["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "tagger").unwrap().clone();
        assert!(tagger["last_error"]["message"].as_str().unwrap().contains(why), "{what}: {tagger}");
        assert_eq!(ask(&s.server).unwrap(), "a", "{what}: the previous version keeps serving");
    }
    let m = client().get(format!("{}/metrics", s.server.base)).send().unwrap().text().unwrap();
    assert!(m.contains("weft_plugin_reloads_total{trigger=\"upload\",result=\"failure\"} 3"), "{m}");

    // A good update, then rollback.
    let (st, r) = admin(&s, "PUT", "/admin/plugins/tagger", wasm("tagger_b"));
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["changed"], json!(["tagger"]));
    assert_eq!(ask(&s.server).unwrap(), "b");
    let (_, list) = admin(&s, "GET", "/admin/plugins", vec![]);
    let tagger = list["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "tagger").unwrap().clone();
    assert_eq!(tagger["version"], "0.1.0");
    assert_eq!(tagger["kind"], "transform");
    assert!(tagger["last_error"].is_null() && tagger["rollback_versions"] == 1, "{tagger}");
    let (st, r) = admin(&s, "POST", "/admin/plugins/tagger/rollback", vec![]);
    assert_eq!(st, 200, "{r}");
    assert_eq!(ask(&s.server).unwrap(), "a");
    let (st, _) = admin(&s, "POST", "/admin/plugins/tagger/rollback", vec![]);
    assert_eq!(st, 422, "nothing left to roll back to");

    // The file watcher: a new file goes live without any API call.
    let t0 = Instant::now();
    let tmp = s.dir.join("tagger.wasm.tmp");
    std::fs::write(&tmp, wasm("tagger_b")).unwrap();
    std::fs::rename(&tmp, s.dir.join("tagger.wasm")).unwrap();
    while ask(&s.server).unwrap() != "b" {
        assert!(t0.elapsed() < Duration::from_secs(10), "the file change was not picked up");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("file write to first request on the new version: {:?}", t0.elapsed());

    // A config with a bad key is refused whole; the running config stays.
    let admin_port: u16 = s.admin.rsplit(':').next().unwrap().parse().unwrap();
    let good = config_text(&s.dir, admin_port, "");
    std::fs::write(&s.config, good.replace("kind = \"transform\"", "kind = \"transform\"\nlimitz = 3")).unwrap();
    let (st, e) = admin(&s, "POST", "/admin/reload", vec![]);
    assert_eq!(st, 422, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("limitz"), "names the key: {e}");
    assert_eq!(ask(&s.server).unwrap(), "b");
    // A model setting needs a restart: reported, and the rest applies.
    std::fs::write(&s.config, config_text(&s.dir, admin_port, "kv_cache_mib = 300\n")).unwrap();
    let (st, r) = admin(&s, "POST", "/admin/reload", vec![]);
    assert_eq!(st, 200, "{r}");
    assert!(r["restart_needed"].as_array().unwrap().iter().any(|k| k == "models[0].kv_cache_mib"), "{r}");
    assert_eq!(ask(&s.server).unwrap(), "b");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_thousand_reloads_leave_instances_and_memory_flat() {
    let s = setup("leak");
    let (a, b) = (wasm("tagger_a"), wasm("tagger_b"));
    let mut marks = Vec::new();
    let t0 = Instant::now();
    for i in 0..1000 {
        let (st, r) = admin(&s, "PUT", "/admin/plugins/tagger", if i % 2 == 0 { b.clone() } else { a.clone() });
        assert_eq!(st, 200, "{r}");
        if i % 100 == 99 {
            assert!(ask(&s.server).is_ok());
            marks.push((i + 1, metric(&s.server, "weft_plugin_instances"), rss_kib(s.server.child.id())));
        }
    }
    let per = t0.elapsed() / 1000;
    eprintln!("1000 reloads, {per:?} each; (reloads, live instances, RSS KiB): {marks:?}");
    let (_, inst_100, rss_100) = marks[0];
    let (_, inst_1000, rss_1000) = marks[9];
    assert_eq!(inst_100, inst_1000, "instances leak across reloads");
    assert!(rss_1000 < rss_100 + 40 * 1024, "RSS grew from {rss_100} to {rss_1000} KiB over 900 reloads");
}
