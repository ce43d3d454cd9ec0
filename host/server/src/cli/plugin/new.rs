//! `weft plugin new NAME --kind K --lang L`: a project that builds, passes
//! `weft plugin check` and serves as it is, with a unit test, for every role
//! in every language. The templates are small working plugins, not blanks:
//! an author starts from code that runs.

use std::path::{Path, PathBuf};

use super::project::{Kind, Lang, MANIFEST};

macro_rules! t {
    ($p:literal) => {
        include_str!(concat!("templates/", $p))
    };
}

/// `(path in the project, contents)` of a language and role's sources.
fn sources(kind: Kind, lang: Lang) -> Vec<(&'static str, &'static str)> {
    use Kind::*;
    match lang {
        Lang::Python => {
            let (code, test) = match kind {
                Transform => (t!("python/transform.py"), t!("python/transform_test.py")),
                Router => (t!("python/router.py"), t!("python/router_test.py")),
                Sampler => (t!("python/sampler.py"), t!("python/sampler_test.py")),
                Tokenizer => (t!("python/tokenizer.py"), t!("python/tokenizer_test.py")),
            };
            vec![("plugin.py", code), ("test_plugin.py", test)]
        }
        Lang::Js => {
            let (code, test) = match kind {
                Transform => (t!("js/transform.js"), t!("js/transform.test.js")),
                Router => (t!("js/router.js"), t!("js/router.test.js")),
                Sampler => (t!("js/sampler.js"), t!("js/sampler.test.js")),
                Tokenizer => (t!("js/tokenizer.js"), t!("js/tokenizer.test.js")),
            };
            vec![("plugin.js", code), ("plugin.test.js", test)]
        }
        Lang::Ts => {
            let (code, test) = match kind {
                Transform => (t!("ts/transform.ts"), t!("ts/transform.test.ts")),
                Router => (t!("ts/router.ts"), t!("ts/router.test.ts")),
                Sampler => (t!("ts/sampler.ts"), t!("ts/sampler.test.ts")),
                Tokenizer => (t!("ts/tokenizer.ts"), t!("ts/tokenizer.test.ts")),
            };
            vec![("plugin.ts", code), ("plugin.test.ts", test), ("tsconfig.json", t!("ts/tsconfig.json"))]
        }
        Lang::Rust => {
            let code = match kind {
                Transform => t!("rust/transform.rs"),
                Router => t!("rust/router.rs"),
                Sampler => t!("rust/sampler.rs"),
                Tokenizer => t!("rust/tokenizer.rs"),
            };
            vec![("src/lib.rs", code)]
        }
    }
}

fn cargo_toml(name: &str, kind: Kind, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A stand-alone crate, even when made inside another workspace.
[workspace]

[lib]
crate-type = ["cdylib"]

[dependencies]
# The SDK as this `weft` carries it (`weft plugin build` keeps it there).
weft-sdk = {{ path = "{}", features = ["{}"] }}

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = "debuginfo"
"#,
        sdk.join("rust").display(),
        kind.name()
    )
}

fn pipeline_line(kind: Kind, name: &str) -> String {
    let model = "[[models]]\nname = \"SmolLM2-135M-Instruct\"\n";
    match kind {
        Kind::Transform => format!("{model}[models.pipeline]\ntransforms = [\"{name}\", \"transform-chat-template\"]"),
        Kind::Router => format!("{model}replicas = 2\n[models.pipeline]\nrouter = \"{name}\""),
        Kind::Sampler => format!("{model}[models.pipeline]\nsampler = \"{name}\""),
        Kind::Tokenizer => format!("{model}[models.pipeline]\ntokenizer = \"{name}\""),
    }
}

/// Writes the project into `dir` (which must not exist or be empty).
pub fn scaffold(dir: &Path, name: &str, kind: Kind, lang: Lang) -> anyhow::Result<PathBuf> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "a plugin name is lower-case letters, digits and `-` (it names the crate, the component and the config entry)"
    );
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!("{} exists and is not empty", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let dir = std::path::absolute(dir)?;
    let write = |rel: &str, text: &str| -> anyhow::Result<()> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text.replace("{{name}}", name))?;
        Ok(())
    };
    let lang_key = match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
        Lang::Ts => "ts",
    };
    write(
        MANIFEST,
        &format!(
            "# Read by `weft plugin build|test|check` and `weft dev`.\nname = \"{name}\"\nkind = \"{}\"\nlang = \"{lang_key}\"\n",
            kind.name()
        ),
    )?;
    for (rel, text) in sources(kind, lang) {
        write(rel, text)?;
    }
    let mut ignore = vec![".weft/"];
    match lang {
        Lang::Rust => {
            write("Cargo.toml", &cargo_toml(name, kind, &super::sdk::dir()?))?;
            ignore.push("target/");
        }
        Lang::Js | Lang::Ts => {
            for (file, text) in super::sdk::js_files() {
                std::fs::write(dir.join(file), text)?;
            }
            ignore.extend(["weft-plugin.js", "weft-plugin.d.ts", "node_modules/"]);
        }
        Lang::Python => ignore.push("__pycache__/"),
    }
    write(".gitignore", &(ignore.join("\n") + "\n"))?;
    let readme = include_str!("templates/README.md")
        .replace("{{kind}}", kind.name())
        .replace("{{lang}}", super::build::lang_name(lang))
        .replace("{{dir}}", &dir.display().to_string())
        .replace("{{pipeline}}", &pipeline_line(kind, name));
    write("README.md", &readme)?;
    Ok(dir)
}
