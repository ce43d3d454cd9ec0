//! `weft bench reload`: how fast a new plugin version serves its first
//! request, from an admin upload and from a file write, with the precompiled
//! cache warm (the version was compiled before) and cold (never seen: each
//! upload carries a unique custom section, so its hash is new); and the
//! served throughput of 8 streaming clients with and without a burst of
//! reloads, in the same run.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Spawned, free_port, pct};

const KEY: &str = "bench-admin-key-0123456789";

/// The component with a custom section appended: same code, new hash.
fn unique(bytes: &[u8], n: u64) -> Vec<u8> {
    let name = b"weft-bench";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(&n.to_le_bytes());
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    let mut len = payload.len();
    loop {
        let b = (len & 0x7f) as u8;
        len >>= 7;
        out.push(if len == 0 { b } else { b | 0x80 });
        if len == 0 {
            break;
        }
    }
    out.extend(payload);
    out
}

fn tag(c: &reqwest::blocking::Client, url: &str) -> anyhow::Result<String> {
    let body = json!({"model": weft_engine::DefaultModel::NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2});
    let v: Value = c.post(format!("{url}/v1/chat/completions")).json(&body).send()?.json()?;
    let text = v["choices"][0]["message"]["content"].as_str().unwrap_or_default();
    Ok(text.strip_prefix("[tagger-").and_then(|r| r.split_once(']')).map(|(t, _)| t.to_string()).unwrap_or_default())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Streams with 8 clients for `secs`, counting content chunks (tokens); `during` runs meanwhile.
fn load(url: &str, secs: f64, during: impl FnOnce(&AtomicBool)) -> anyhow::Result<f64> {
    let stop = AtomicBool::new(false);
    let tokens = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        for i in 0..8 {
            let (stop, tokens) = (&stop, &tokens);
            sc.spawn(move || {
                let c = reqwest::blocking::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"model": weft_engine::DefaultModel::NAME, "messages": [{"role": "user", "content": format!("story {i}")}],
                        "max_tokens": 32, "ignore_eos": true, "stream": true});
                    if let Ok(r) = c.post(format!("{url}/v1/chat/completions")).json(&body).send() {
                        let text = r.text().unwrap_or_default();
                        tokens.fetch_add(text.lines().filter(|l| l.contains("\"content\"")).count(), Ordering::Relaxed);
                    }
                }
            });
        }
        let deadline = t0 + Duration::from_secs_f64(secs);
        during(&stop);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    });
    Ok(tokens.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64())
}

pub fn run(as_json: bool, quick: bool) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("weft-bench-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let plugins = weft_runtime::builtin::build_dir();
    let a = std::fs::read(plugins.join("tagger_a.wasm"))?;
    let b = std::fs::read(plugins.join("tagger_b.wasm"))?;
    let file = dir.join("tagger.wasm");
    std::fs::write(&file, &a)?;
    let admin_port = free_port()?;
    let config = dir.join("weft.toml");
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nkey = \"{KEY}\"\n[[plugins]]\nname = \"tagger\"\nfile = \"{}\"\nkind = \"transform\"\n\
             [[models]]\nname = \"{}\"\n[models.pipeline]\ntransforms = [\"tagger\", \"transform-chat-template\"]\n",
            file.display(),
            weft_engine::DefaultModel::NAME
        ),
    )?;
    let (_server, url) = Spawned::serve(Some(&config))?;
    let admin = format!("http://127.0.0.1:{admin_port}");
    let c = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let n = if quick { 10 } else { 40 };
    // A nonce per run: a rerun must not find last run's "cold" versions in the disk cache.
    let mut seq = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let mut next = |cold: bool, i: usize| -> (Vec<u8>, &'static str) {
        seq += 1;
        let (base, t) = if i.is_multiple_of(2) { (&b, "b") } else { (&a, "a") };
        (if cold { unique(base, seq) } else { base.clone() }, t)
    };
    let mut r = serde_json::Map::new();
    for cold in [false, true] {
        let mut upload = Vec::new();
        let mut file_write = Vec::new();
        for i in 0..n {
            let (bytes, want) = next(cold, i);
            let t = Instant::now();
            let resp = c.put(format!("{admin}/admin/plugins/tagger")).bearer_auth(KEY).body(bytes).send()?;
            anyhow::ensure!(resp.status() == 200, "upload refused: {}", resp.text()?);
            anyhow::ensure!(tag(&c, &url)? == want, "new version not serving after the upload");
            upload.push(t.elapsed().as_secs_f64());
        }
        for i in 0..n {
            let (bytes, want) = next(cold, i + 1);
            let t = Instant::now();
            write_atomically(&file, &bytes)?;
            while tag(&c, &url)? != want {
                anyhow::ensure!(t.elapsed() < Duration::from_secs(30), "file change not picked up");
            }
            file_write.push(t.elapsed().as_secs_f64());
        }
        let name = if cold { "cold" } else { "warm" };
        for (what, v) in [("upload", upload), ("file", file_write)] {
            let mut ms: Vec<f64> = v.iter().map(|s| s * 1e3).collect();
            let (p50, p99) = (pct(&mut ms, 0.5), pct(&mut ms, 0.99));
            r.insert(format!("{what}_{name}_p50_ms"), json!(p50));
            r.insert(format!("{what}_{name}_p99_ms"), json!(p99));
        }
    }
    // Throughput of 8 streaming clients, quiet and during a burst of cold reloads.
    let secs = if quick { 4.0 } else { 10.0 };
    let quiet = load(&url, secs, |_| {})?;
    let reloads = AtomicUsize::new(0);
    let busy = load(&url, secs, |_| {
        let t = Instant::now();
        let mut i = 0u64;
        while t.elapsed().as_secs_f64() < secs {
            i += 1;
            let bytes = unique(if i.is_multiple_of(2) { &b } else { &a }, seq.wrapping_add(1_000_000 + i));
            if c.put(format!("{admin}/admin/plugins/tagger"))
                .bearer_auth(KEY)
                .body(bytes)
                .send()
                .map(|r| r.status() == 200)
                .unwrap_or(false)
            {
                reloads.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })?;
    r.insert("load_quiet_tok_s".into(), json!(quiet));
    r.insert("load_reloading_tok_s".into(), json!(busy));
    r.insert("reloads_during_load".into(), json!(reloads.load(Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);

    if as_json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    println!(
        "weft bench reload (tagger transform, {n} swaps per row; time to the first request served by the new version)"
    );
    for cache in ["warm", "cold"] {
        for what in ["upload", "file"] {
            println!(
                "  {:<12} {cache} cache:  p50 {:7.1} ms   p99 {:7.1} ms",
                if what == "upload" { "admin upload" } else { "file write" },
                f(&format!("{what}_{cache}_p50_ms")),
                f(&format!("{what}_{cache}_p99_ms"))
            );
        }
    }
    println!(
        "  8 streaming clients: {:.1} tok/s quiet, {:.1} tok/s during {} cold reloads ({:.2} of quiet)",
        f("load_quiet_tok_s"),
        f("load_reloading_tok_s"),
        r["reloads_during_load"],
        f("load_reloading_tok_s") / f("load_quiet_tok_s")
    );
    Ok(())
}
