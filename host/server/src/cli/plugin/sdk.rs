//! The SDKs and the contract, carried inside the `weft` binary so a plugin
//! author needs nothing but `weft`: on first use they are written under the
//! cache (`~/.cache/weft/sdk/<contract>-<hash>/`), where builds point at them.
//!
//! Invariant: a directory's name carries the hash of its contents, so a
//! newer `weft` never builds against an older SDK left in the cache, and a
//! directory is renamed into place only once complete.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../../../", $path)))),*]
    };
}

/// Every file of the SDKs, by its path in the repository.
const FILES: &[(&str, &str)] = embed!(
    "wit/plugin.wit",
    "sdk/python/weft_plugin/__init__.py",
    "sdk/python/weft_plugin/transform.py",
    "sdk/python/weft_plugin/router.py",
    "sdk/python/weft_plugin/sampler.py",
    "sdk/python/weft_plugin/tokenizer.py",
    "sdk/python/weft_plugin/_shims/transform-plugin/app.py",
    "sdk/python/weft_plugin/_shims/transform-plugin/transform.py",
    "sdk/python/weft_plugin/_shims/router-plugin/app.py",
    "sdk/python/weft_plugin/_shims/sampler-plugin/app.py",
    "sdk/python/weft_plugin/_shims/sampler-plugin/sampler.py",
    "sdk/python/weft_plugin/_shims/tokenizer-plugin/app.py",
    "sdk/python/weft_plugin/_shims/tokenizer-plugin/tokenizer.py",
    "sdk/js/weft-plugin.js",
    "sdk/js/weft-plugin.d.ts",
    "sdk/src/lib.rs",
    "sdk/src/host.rs",
    "sdk/src/router.rs",
    "sdk/src/sampler.rs",
    "sdk/src/tokenizer.rs",
    "sdk/src/transform.rs",
);

/// The Rust SDK's manifest outside this workspace (the repository's inherits from it).
const RUST_MANIFEST: &str = r#"[package]
name = "weft-sdk"
description = "Write weft plugins: WIT bindings, one idiomatic trait per plugin role, export macros"
version = "0.3.0"
edition = "2024"
license = "Apache-2.0"

[features]
default = []
tokenizer = []
sampler = []
router = []
transform = []

[dependencies]
wit-bindgen = { version = "0.46", default-features = false, features = ["macros", "realloc"] }
"#;

/// Where an SDK file lands inside the SDK directory.
fn dest(repo_path: &str) -> String {
    match repo_path.strip_prefix("sdk/src/") {
        Some(rest) => format!("rust/src/{rest}"),
        None => repo_path.strip_prefix("sdk/").unwrap_or(repo_path).to_string(),
    }
}

/// The SDK directory: `wit/`, `python/`, `js/` and `rust/`, written on first use.
pub fn dir() -> anyhow::Result<PathBuf> {
    let mut h = Sha256::new();
    for (p, c) in FILES {
        h.update(p.as_bytes());
        h.update(c.as_bytes());
    }
    h.update(RUST_MANIFEST.as_bytes());
    let hash: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    let root = super::toolchain::cache_root().join("sdk");
    let dir = root.join(format!("{}-{hash}", weft_runtime::CONTRACT_VERSION));
    if dir.is_dir() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&root)?;
    let tmp = root.join(format!(".tmp-{}-{hash}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    for (p, c) in FILES {
        write(&tmp.join(dest(p)), c)?;
    }
    write(&tmp.join("rust/Cargo.toml"), RUST_MANIFEST)?;
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process finished first: theirs is identical.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(anyhow::anyhow!("cannot write the SDK to {}: {e}", dir.display())),
    }
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, contents)?;
    Ok(())
}

/// The JavaScript SDK's two files, for copying into a project.
pub fn js_files() -> [(&'static str, &'static str); 2] {
    let get = |p: &str| FILES.iter().find(|(f, _)| *f == p).map(|(_, c)| *c).expect("embedded");
    [("weft-plugin.js", get("sdk/js/weft-plugin.js")), ("weft-plugin.d.ts", get("sdk/js/weft-plugin.d.ts"))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_file_in_the_repository_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut on_disk = Vec::new();
        for sub in ["sdk/python", "sdk/js", "sdk/src"] {
            let mut stack = vec![root.join(sub)];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let p = e.unwrap().path();
                    if p.is_dir() {
                        if p.file_name().is_some_and(|n| n != "__pycache__") {
                            stack.push(p);
                        }
                    } else if p.extension().is_some_and(|x| x == "py" || x == "js" || x == "ts" || x == "rs") {
                        on_disk.push(p.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
                    }
                }
            }
        }
        for f in &on_disk {
            assert!(FILES.iter().any(|(p, _)| p == f), "{f} is in the SDK but not embedded in weft");
        }
        assert_eq!(dest("sdk/src/lib.rs"), "rust/src/lib.rs");
        assert_eq!(dest("sdk/python/weft_plugin/__init__.py"), "python/weft_plugin/__init__.py");
        assert_eq!(dest("wit/plugin.wit"), "wit/plugin.wit");
    }
}
