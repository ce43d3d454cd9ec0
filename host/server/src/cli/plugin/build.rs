//! `weft plugin build` and `weft plugin test`: one build per language, each
//! ending in the same place (`.weft/<name>.wasm`) so everything after it
//! (check, serve, reload) is language-blind.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use super::project::{Kind, Lang, Project};
use super::{sdk, toolchain};

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let st = cmd.status().map_err(|e| anyhow::anyhow!("cannot run {what}: {e}"))?;
    anyhow::ensure!(st.success(), "{what} failed ({st})");
    Ok(())
}

/// Builds the project's component; returns its path.
pub fn build(p: &Project) -> anyhow::Result<PathBuf> {
    let t0 = Instant::now();
    std::fs::create_dir_all(p.work_dir())?;
    let out = p.output();
    match p.lang {
        Lang::Rust => build_rust(p, &out)?,
        Lang::Python => build_python(p, &out)?,
        Lang::Js | Lang::Ts => build_js(p, &out)?,
    }
    let size = std::fs::metadata(&out)?.len();
    eprintln!(
        "weft: built {} ({} {}, {:.1} MB) in {:.1}s",
        out.display(),
        lang_name(p.lang),
        p.kind.name(),
        size as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    Ok(out)
}

pub fn lang_name(l: Lang) -> &'static str {
    match l {
        Lang::Rust => "Rust",
        Lang::Python => "Python",
        Lang::Js => "JavaScript",
        Lang::Ts => "TypeScript",
    }
}

/// Points a scaffolded crate's `weft-sdk` dependency at this `weft`'s SDK
/// (an upgrade writes the SDK to a new directory; the old one is left for
/// older binaries). A crate whose dependency points elsewhere is left alone.
fn refresh_rust_sdk(p: &Project) -> anyhow::Result<()> {
    let manifest = p.dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let root = toolchain::cache_root().join("sdk").display().to_string();
    let current = sdk::dir()?.join("rust").display().to_string();
    let Some(start) = text.find(&format!("\"{root}/")) else { return Ok(()) };
    let Some(len) = text[start + 1..].find('"') else { return Ok(()) };
    let old = &text[start + 1..start + 1 + len];
    if old != current {
        std::fs::write(&manifest, text.replace(old, &current))?;
    }
    Ok(())
}

fn build_rust(p: &Project, out: &std::path::Path) -> anyhow::Result<()> {
    toolchain::rust_target()?;
    refresh_rust_sdk(p)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| p.dir.join("target"));
    run(
        Command::new("cargo")
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(p.dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir),
        "cargo build --target wasm32-wasip2",
    )?;
    let built = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", p.name.replace('-', "_")));
    std::fs::copy(&built, out)
        .map_err(|e| anyhow::anyhow!("{}: {e} (is the crate named `{}`?)", built.display(), p.name))?;
    Ok(())
}

/// The Python bindings for the project's world, for its unit tests and editors.
fn python_bindings(p: &Project) -> anyhow::Result<PathBuf> {
    let sdk = sdk::dir()?;
    let dir = p.work_dir().join("bindings");
    let stamp = dir.join(".sdk");
    let want = sdk.display().to_string();
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        let _ = std::fs::remove_dir_all(&dir);
        run(
            Command::new(toolchain::componentize_py()?)
                .arg("-d")
                .arg(sdk.join("wit"))
                .args(["-w", p.kind.world(), "bindings"])
                .arg(&dir)
                .stdout(std::process::Stdio::null()),
            "componentize-py bindings",
        )?;
        std::fs::write(&stamp, want)?;
    }
    Ok(dir)
}

fn build_python(p: &Project, out: &std::path::Path) -> anyhow::Result<()> {
    anyhow::ensure!(p.dir.join("plugin.py").is_file(), "{}: a Python plugin's module is plugin.py", p.dir.display());
    let sdk = sdk::dir()?;
    python_bindings(p)?;
    run(
        Command::new(toolchain::componentize_py()?)
            .arg("-d")
            .arg(sdk.join("wit"))
            .args(["-w", p.kind.world(), "componentize", "app", "-p"])
            .arg(sdk.join("python/weft_plugin/_shims").join(p.kind.world()))
            .arg("-p")
            .arg(sdk.join("python"))
            .arg("-p")
            .arg(&p.dir)
            .arg("-o")
            .arg(out)
            .stdout(std::process::Stdio::null()),
        "componentize-py componentize",
    )
}

/// Writes the JavaScript SDK beside the project's code (it imports `./weft-plugin.js`).
pub fn refresh_js_sdk(p: &Project) -> anyhow::Result<()> {
    for (name, text) in sdk::js_files() {
        let path = p.dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
            std::fs::write(&path, text)?;
        }
    }
    Ok(())
}

/// Strips the types of the project's TypeScript files (`plugin.ts`, and its
/// tests with `tests`) into `.weft/ts/`, beside a copy of the SDK, so their
/// `./weft-plugin.js` imports resolve there. Returns that directory.
fn strip_types(p: &Project, tests: bool) -> anyhow::Result<PathBuf> {
    let out = p.work_dir().join("ts");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let mut files = Vec::new();
    for e in std::fs::read_dir(&p.dir)? {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".ts") && !name.ends_with(".d.ts") && (tests || !name.contains(".test.")) {
            files.push(path);
        }
    }
    run(
        Command::new(toolchain::esbuild()?)
            .args(&files)
            .args(["--format=esm", "--platform=neutral", "--target=es2022", "--log-level=warning"])
            .arg(format!("--outdir={}", out.display())),
        "esbuild (TypeScript to JavaScript)",
    )?;
    std::fs::write(out.join("weft-plugin.js"), sdk::js_files()[0].1)?;
    Ok(out)
}

fn build_js(p: &Project, out: &std::path::Path) -> anyhow::Result<()> {
    let module = if p.lang == Lang::Ts { "plugin.ts" } else { "plugin.js" };
    anyhow::ensure!(
        p.dir.join(module).is_file(),
        "{}: a {} plugin's module is {module}",
        p.dir.display(),
        lang_name(p.lang)
    );
    refresh_js_sdk(p)?;
    // Where the entry (in `.weft/`) finds the plugin and the SDK.
    let from = if p.lang == Lang::Ts {
        strip_types(p, false)?;
        "./ts"
    } else {
        ".."
    };
    let work = p.work_dir();
    // componentize-js reads the WIT through a sandboxed wasm-tools that sees
    // only the working directory: the contract is copied into the project.
    let wit = work.join("wit");
    std::fs::create_dir_all(&wit)?;
    std::fs::write(wit.join("plugin.wit"), std::fs::read_to_string(sdk::dir()?.join("wit/plugin.wit"))?)?;
    let (wrap, export) = match p.kind {
        Kind::Transform => ("exportTransform", "transform"),
        Kind::Router => ("exportRouter", "router"),
        Kind::Sampler => ("exportSampler", "sampler"),
        Kind::Tokenizer => ("exportTokenizer", "tokenizer"),
    };
    let entry = format!(
        "// Generated by `weft plugin build`: the component's exports around plugin.js's default class.\n\
         import * as host from \"weft:plugin/host@{v}\";\n\
         import Plugin from \"{from}/plugin.js\";\n\
         import {{ {wrap}, installHost }} from \"{from}/weft-plugin.js\";\n\
         installHost(host);\n\
         export const {{ metadata, init, {export} }} = {wrap}(Plugin);\n",
        v = weft_runtime::CONTRACT_VERSION
    );
    std::fs::write(work.join("entry.js"), entry)?;
    run(
        Command::new(toolchain::componentize_js()?)
            .current_dir(&p.dir)
            .args([".weft/entry.js", "--wit", ".weft/wit", "--world-name", p.kind.world()])
            // Plugins get no network: leave out StarlingMonkey's HTTP imports.
            .args(["-d", "http", "fetch-event", "-o"])
            .arg(out)
            .stdout(std::process::Stdio::null()),
        "componentize-js",
    )
}

/// Runs the project's own unit tests on the build machine.
pub fn test(p: &Project) -> anyhow::Result<()> {
    match p.lang {
        Lang::Rust => {
            refresh_rust_sdk(p)?;
            run(
                Command::new("cargo").args(["test", "--quiet", "--manifest-path"]).arg(p.dir.join("Cargo.toml")),
                "cargo test",
            )
        }
        Lang::Python => {
            let bindings = python_bindings(p)?;
            let path = std::env::join_paths([bindings, sdk::dir()?.join("python"), p.dir.clone()])?;
            run(
                Command::new("python3")
                    .args(["-m", "unittest", "discover", "-t", ".", "-p", "test*.py"])
                    .current_dir(&p.dir)
                    .env("PYTHONPATH", path)
                    .env("PYTHONDONTWRITEBYTECODE", "1"),
                "python3 -m unittest",
            )
        }
        Lang::Js => {
            refresh_js_sdk(p)?;
            run(Command::new("node").arg("--test").current_dir(&p.dir), "node --test")
        }
        Lang::Ts => {
            refresh_js_sdk(p)?;
            let dir = strip_types(p, true)?;
            let mut tests: Vec<PathBuf> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.to_string_lossy().ends_with(".test.js"))
                .collect();
            tests.sort();
            anyhow::ensure!(!tests.is_empty(), "{}: no *.test.ts files", p.dir.display());
            run(Command::new("node").arg("--test").args(&tests).current_dir(&p.dir), "node --test")
        }
    }
}
