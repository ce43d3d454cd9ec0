//! `weft plugin check FILE.wasm`: what a component is, or why it would be refused.

use std::path::PathBuf;

use clap::Subcommand;
use weft_runtime::Limits;

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Print the world, contract version and metadata of a component, or the reason it is refused.
    Check {
        file: PathBuf,
        /// Configuration passed to `init`, as KEY=VALUE (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        config: Vec<(String, String)>,
    },
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

pub fn run(cmd: PluginCmd) -> anyhow::Result<()> {
    match cmd {
        PluginCmd::Check { file, config } => {
            let rt = super::runtime()?;
            let name = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
            match rt.load_file(&name, &file, Limits::default(), config) {
                Ok(p) => {
                    println!("file:        {}", file.display());
                    println!("world:       weft:plugin/{}", p.world.world_name());
                    println!(
                        "contract:    weft:plugin@{} (host serves {})",
                        p.contract,
                        weft_runtime::CONTRACT_VERSION
                    );
                    println!("name:        {}", p.info.name);
                    println!("version:     {}", p.info.version);
                    println!("description: {}", p.info.description);
                    println!("sha256:      {}", p.hash);
                    println!("status:      ok");
                    Ok(())
                }
                Err(e) => {
                    println!("file:        {}", file.display());
                    println!("status:      refused ({})", e.kind());
                    println!("reason:      {}", e.message);
                    anyhow::bail!("{} would be refused: {}", file.display(), e)
                }
            }
        }
    }
}
