//! Builds the first-party and test plugins (the `plugins/` workspace) to
//! `wasm32-wasip2` as part of the normal cargo build, so the host can embed
//! them with no manual step. Installs the wasm target through rustup when it
//! is missing, or fails with the exact command to run.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..").canonicalize().expect("repository root");
    for p in ["plugins", "sdk", "wit", "examples/plugins"] {
        println!("cargo:rerun-if-changed={}", root.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=WEFT_SKIP_PLUGIN_BUILD");

    let target_dir = root.join("target").join("plugins");
    let out = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=WEFT_PLUGIN_DIR={}", out.display());
    if std::env::var_os("WEFT_SKIP_PLUGIN_BUILD").is_some() && out.join("tokenizer_bpe.wasm").exists() {
        return;
    }

    ensure_target();
    build(&root.join("plugins").join("Cargo.toml"), &target_dir, true);
    // The example plugins are stand-alone crates, as outside authors write them.
    let examples = root.join("examples").join("plugins");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("Cargo.toml").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    for d in dirs {
        build(&d.join("Cargo.toml"), &target_dir, false);
    }
    for name in [
        "tokenizer_bpe",
        "sampler_standard",
        "transform_chat_template",
        "router_least_loaded",
        "transform_redact",
        "router_prefix_affinity",
        "sampler_json",
        "transform_tools",
    ] {
        let f = out.join(format!("{name}.wasm"));
        assert!(f.exists(), "plugin build produced no {}", f.display());
    }
}

fn build(manifest: &Path, target_dir: &Path, workspace: bool) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir);
    if workspace {
        cmd.arg("--workspace");
    }
    // The outer build's flags are for the host (target-cpu=native etc.), not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!("building {} for {TARGET} failed (see the cargo output above)", manifest.display());
    }
}

fn installed(rustup: &Path) -> bool {
    Command::new(rustup)
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == TARGET))
        .unwrap_or(false)
}

fn ensure_target() {
    let rustup = PathBuf::from(std::env::var("RUSTUP").unwrap_or_else(|_| "rustup".into()));
    if installed(&rustup) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed to build weft's plugins)");
    let ok = Command::new(&rustup).args(["target", "add", TARGET]).status().map(|s| s.success()).unwrap_or(false);
    if !ok || !installed(&rustup) {
        panic!(
            "the {TARGET} target is not installed and `rustup target add {TARGET}` failed; \
             run `rustup target add {TARGET}` yourself, then build again"
        );
    }
}
