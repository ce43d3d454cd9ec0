//! The language toolchains a plugin build needs, fetched on first use from the
//! ordinary registries at pinned versions (like the default model), so
//! `weft plugin build` works on a machine with nothing but Python, Node.js or
//! rustup installed:
//!
//! - Python: `componentize-py` in a virtual environment (pip);
//! - JavaScript and TypeScript: `@bytecodealliance/componentize-js` and
//!   `esbuild` (npm);
//! - Rust: the `wasm32-wasip2` target (rustup).
//!
//! Invariant: a toolchain directory is used only once its `ready` stamp
//! exists, and is installed under an exclusive file lock, so concurrent
//! builds (a test suite, two terminals) install it once.

use std::path::{Path, PathBuf};
use std::process::Command;

/// componentize-py release the Python build uses.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js release the JavaScript build uses.
pub const COMPONENTIZE_JS: &str = "0.23.0";
/// esbuild release that strips TypeScript's types before componentize-js.
pub const ESBUILD: &str = "0.28.2";

/// `~/.cache/weft` (or `$XDG_CACHE_HOME/weft`): beside the precompiled plugins.
pub fn cache_root() -> PathBuf {
    let wasm = weft_runtime::RuntimeConfig::default().cache_dir.unwrap_or_else(std::env::temp_dir);
    wasm.parent().map(PathBuf::from).unwrap_or(wasm)
}

fn tools_dir() -> PathBuf {
    cache_root().join("toolchains")
}

/// Runs `install` into `dir` unless it is already complete; one process at a time.
fn ensure(dir: &Path, what: &str, install: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let stamp = dir.join("ready");
    if stamp.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(tools_dir())?;
    let lock = std::fs::File::create(
        tools_dir()
            .join(format!("{}.lock", dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())),
    )?;
    lock.lock()?;
    if stamp.exists() {
        return Ok(());
    }
    eprintln!("weft: installing {what} into {} (once)", dir.display());
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    install(dir)?;
    std::fs::write(&stamp, what)?;
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The Python interpreter of a virtual environment holding componentize-py.
pub fn python() -> anyhow::Result<PathBuf> {
    let dir = tools_dir().join(format!("componentize-py-{COMPONENTIZE_PY}"));
    ensure(&dir, &format!("componentize-py {COMPONENTIZE_PY}"), |d| {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(d.join("venv")),
            "python3 -m venv (Python 3.10+ with venv)",
        )?;
        run(
            Command::new(d.join("venv/bin/python")).args([
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                &format!("componentize-py=={COMPONENTIZE_PY}"),
            ]),
            "pip install componentize-py",
        )
    })?;
    Ok(dir.join("venv/bin/python"))
}

/// The `componentize-py` command of [`python`]'s environment.
pub fn componentize_py() -> anyhow::Result<PathBuf> {
    let py = python()?;
    Ok(py.with_file_name("componentize-py"))
}

/// The npm tools' `node_modules/.bin`.
fn js_bin() -> anyhow::Result<PathBuf> {
    let dir = tools_dir().join(format!("js-componentize-js-{COMPONENTIZE_JS}-esbuild-{ESBUILD}"));
    ensure(&dir, &format!("@bytecodealliance/componentize-js {COMPONENTIZE_JS} and esbuild {ESBUILD}"), |d| {
        run(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                .arg(d)
                .arg(format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"))
                .arg(format!("esbuild@{ESBUILD}")),
            "npm install @bytecodealliance/componentize-js esbuild (Node.js 18+ with npm)",
        )
    })?;
    Ok(dir.join("node_modules/.bin"))
}

/// The `componentize-js` command.
pub fn componentize_js() -> anyhow::Result<PathBuf> {
    Ok(js_bin()?.join("componentize-js"))
}

/// The `esbuild` command.
pub fn esbuild() -> anyhow::Result<PathBuf> {
    Ok(js_bin()?.join("esbuild"))
}

/// Makes sure `cargo build --target wasm32-wasip2` can work.
pub fn rust_target() -> anyhow::Result<()> {
    let out = Command::new("rustc").args(["--print", "target-libdir", "--target", "wasm32-wasip2"]).output();
    if let Ok(o) = &out
        && o.status.success()
        && Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir()
    {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]), "rustup target add wasm32-wasip2")
}
