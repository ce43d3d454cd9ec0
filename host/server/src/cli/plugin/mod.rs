//! `weft plugin ...`: the plugin author's commands, in any of the SDK's
//! languages: scaffold a project, build it into a component, run its unit
//! tests, check a component against this host. `weft dev` (in [`dev`]) closes
//! the loop with a running server.

pub mod build;
mod check;
pub mod dev;
mod new;
pub mod project;
pub mod sdk;
pub mod toolchain;

use std::path::PathBuf;

use clap::Subcommand;
use project::{Kind, Lang, Project};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Make a new plugin project: a working plugin of the role, with a unit test.
    New {
        /// Its name (and directory, unless --dir).
        name: String,
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long, value_enum)]
        lang: Lang,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the project in DIR into a component (.weft/NAME.wasm), whatever its language.
    Build {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the project's unit tests on this machine.
    Test {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print a component's world, contract, metadata and imports, or why it would be refused.
    Check {
        /// A component file, or a project directory (checks its build).
        file: PathBuf,
        /// Configuration passed to `init`, as KEY=VALUE (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        config: Vec<(String, String)>,
    },
}

/// Scaffolds a project (for benchmarks and tests that need one).
pub fn new_project(dir: &std::path::Path, name: &str, kind: Kind, lang: Lang) -> anyhow::Result<PathBuf> {
    new::scaffold(dir, name, kind, lang)
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

pub fn run(cmd: PluginCmd) -> anyhow::Result<()> {
    match cmd {
        PluginCmd::New { name, kind, lang, dir } => {
            let dir = new::scaffold(&dir.unwrap_or_else(|| PathBuf::from(&name)), &name, kind, lang)?;
            println!(
                "made {} ({} {}): `weft plugin build {}`",
                dir.display(),
                build::lang_name(lang),
                kind.name(),
                dir.display()
            );
            Ok(())
        }
        PluginCmd::Build { dir } => {
            let out = build::build(&Project::open(&dir)?)?;
            println!("{}", out.display());
            Ok(())
        }
        PluginCmd::Test { dir } => build::test(&Project::open(&dir)?),
        PluginCmd::Check { file, config } => {
            let file = if file.is_dir() { Project::open(&file)?.output() } else { file };
            check::check(&file, config)
        }
    }
}
