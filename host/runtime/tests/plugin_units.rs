//! The first-party plugins' own unit tests (format parsers, schema → regex,
//! tokenizer pre-tokenizers, chat templates...), compiled natively. They live
//! in the separate `plugins/` workspace (so the host build never compiles
//! them for the host target by accident); this test runs them as part of
//! the one suite, so `cargo test --release --workspace` covers them too.

use std::path::Path;
use std::process::Command;

#[test]
fn plugin_workspace_unit_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--release", "--workspace", "--manifest-path"])
        .arg(root.join("plugins/Cargo.toml"))
        // Its own target directory: the outer cargo holds the main one's lock.
        .arg("--target-dir")
        .arg(root.join("target/plugin-tests"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert!(out.status.success(), "the plugins' unit tests failed:\n{stdout}\n{stderr}");
    eprintln!("plugins workspace: {passed} unit tests passed");
    assert!(passed >= 35, "only {passed} plugin unit tests ran:\n{stdout}");
}
