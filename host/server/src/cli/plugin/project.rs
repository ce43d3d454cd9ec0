//! A plugin project: a directory with `weft-plugin.toml` naming the plugin,
//! its role and its language. Every `weft plugin` command that builds reads it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const MANIFEST: &str = "weft-plugin.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Transform,
    Router,
    Sampler,
    Tokenizer,
}

impl Kind {
    /// The contract's world for this role.
    pub fn world(self) -> &'static str {
        match self {
            Kind::Transform => "transform-plugin",
            Kind::Router => "router-plugin",
            Kind::Sampler => "sampler-plugin",
            Kind::Tokenizer => "tokenizer-plugin",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Transform => "transform",
            Kind::Router => "router",
            Kind::Sampler => "sampler",
            Kind::Tokenizer => "tokenizer",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Rust,
    Python,
    Js,
    /// TypeScript: types stripped by esbuild, then built as JavaScript.
    Ts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    kind: Kind,
    lang: Lang,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub kind: Kind,
    pub lang: Lang,
}

impl Project {
    /// Reads `dir/weft-plugin.toml`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!("{}: {e} (a plugin project has one; `weft plugin new` makes it)", path.display())
        })?;
        let m: Manifest = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        anyhow::ensure!(
            !m.name.is_empty() && m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{}: `name` must be letters, digits, `-` or `_`",
            path.display()
        );
        Ok(Self { dir: std::path::absolute(dir)?, name: m.name, kind: m.kind, lang: m.lang })
    }

    /// Where builds put their own files (bindings, the JS entry, the component).
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join(".weft")
    }

    /// The built component.
    pub fn output(&self) -> PathBuf {
        self.work_dir().join(format!("{}.wasm", self.name))
    }

    /// The files whose change means a rebuild (`weft dev`): sources and manifests, not outputs.
    pub fn is_source(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.dir) else { return false };
        let first = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
        if [".weft", "target", "node_modules", "__pycache__", ".git"].contains(&first.as_str()) {
            return false;
        }
        let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == "weft-plugin.js" || name == "weft-plugin.d.ts" {
            return false;
        }
        let ext = rel.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        matches!(ext.as_str(), "rs" | "py" | "js" | "mjs" | "ts" | "toml" | "json") && name != "Cargo.lock"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_manifest_and_refuses_bad_ones() {
        let d = std::env::temp_dir().join(format!("weft-project-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(MANIFEST), "name = \"g\"\nkind = \"transform\"\nlang = \"python\"\n").unwrap();
        let p = Project::open(&d).unwrap();
        assert_eq!((p.kind, p.lang, p.kind.world()), (Kind::Transform, Lang::Python, "transform-plugin"));
        assert!(p.is_source(&p.dir.join("plugin.py")));
        assert!(!p.is_source(&p.dir.join(".weft/g.wasm")));
        assert!(!p.is_source(&p.dir.join("weft-plugin.js")));
        std::fs::write(d.join(MANIFEST), "name = \"g\"\nkind = \"filter\"\nlang = \"python\"\n").unwrap();
        assert!(Project::open(&d).unwrap_err().to_string().contains("filter"));
        std::fs::write(d.join(MANIFEST), "name = \"a b\"\nkind = \"router\"\nlang = \"js\"\n").unwrap();
        assert!(Project::open(&d).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
