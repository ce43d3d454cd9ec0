//! `weft dev`: the author's loop. Builds the project, uploads the component
//! to a running `weft serve` through the admin API (`PUT /admin/plugins/NAME`),
//! then watches the sources and does it again on every save, printing each
//! result. A build or an upload that fails leaves the serving version in
//! place (the server refuses a bad component with 422) and the loop goes on.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use notify_debouncer_mini::new_debouncer;
use notify_debouncer_mini::notify::RecursiveMode;

use super::project::Project;

#[derive(clap::Args)]
pub struct DevArgs {
    /// The plugin project (a directory with weft-plugin.toml).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The server's admin API.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    pub admin: String,
    /// The admin key (or WEFT_ADMIN_KEY).
    #[arg(long, env = "WEFT_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: String,
    /// The plugin's name in the server's config (default: the project's name).
    #[arg(long)]
    pub plugin: Option<String>,
}

/// Quiet time after the last change before rebuilding (an editor's save is several events).
const DEBOUNCE: Duration = Duration::from_millis(200);

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    let project = Project::open(&args.dir)?;
    let name = args.plugin.clone().unwrap_or_else(|| project.name.clone());
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let once = || {
        let r = super::build::build(&project).and_then(|wasm| upload(&client, &args, &name, &wasm));
        match r {
            Ok(msg) => println!("weft dev: {msg}"),
            Err(e) => println!("weft dev: not reloaded: {e:#}"),
        }
    };
    once();
    let (tx, rx) = mpsc::channel();
    let mut debouncer = new_debouncer(DEBOUNCE, tx)?;
    debouncer.watcher().watch(&project.dir, RecursiveMode::Recursive)?;
    println!("weft dev: watching {} (Ctrl-C to stop)", project.dir.display());
    for events in rx {
        let Ok(events) = events else { continue };
        if let Some(e) = events.iter().find(|e| project.is_source(&e.path)) {
            println!("weft dev: {} changed; rebuilding", e.path.display());
            once();
        }
    }
    Ok(())
}

fn upload(
    client: &reqwest::blocking::Client,
    args: &DevArgs,
    name: &str,
    wasm: &std::path::Path,
) -> anyhow::Result<String> {
    let url = format!("{}/admin/plugins/{name}", args.admin.trim_end_matches('/'));
    let r = client.put(&url).bearer_auth(&args.admin_key).body(std::fs::read(wasm)?).send()?;
    let status = r.status();
    let body: serde_json::Value = r.json().unwrap_or_default();
    match status.as_u16() {
        200 => {
            let version = body["version"].as_u64().map(|v| format!(", pipeline version {v}")).unwrap_or_default();
            let secs = body["seconds"].as_f64().map(|s| format!(", swapped in {:.0} ms", s * 1e3)).unwrap_or_default();
            Ok(format!("reloaded `{name}` ({:.1} MB{version}{secs})", std::fs::metadata(wasm)?.len() as f64 / 1e6))
        }
        _ => anyhow::bail!(
            "the server refused `{name}` ({status}): {}",
            body["error"]["message"].as_str().unwrap_or("no reason given")
        ),
    }
}
