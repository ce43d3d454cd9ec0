//! `weft`: the command-line entry point.
//!
//! Subcommands are thin: each parses its arguments and calls into the engine,
//! the plugin runtime or (later) the server. Logs go to stderr, filtered by RUST_LOG.

mod api;
mod bench;
mod cli;
mod config;
mod http;
mod metrics;
mod model_source;
mod pipeline;
mod quota;
mod reload;
mod serve;
mod tenancy;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "weft", version, about = "weft: an LLM serving platform whose policies are WebAssembly plugins")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the OpenAI API (default: the default model on 127.0.0.1:8080).
    Serve(serve::ServeArgs),
    /// Write plugins: new, build, test, check.
    #[command(subcommand)]
    Plugin(cli::plugin::PluginCmd),
    /// Rebuild a plugin project on every save and hot-reload it into a running server.
    Dev(cli::plugin::dev::DevArgs),
    /// Print the token ids of a text through the tokenizer plugin (like llama-tokenize).
    Tokenize(cli::tokenize::TokenizeArgs),
    /// Render chat messages with a model's chat template through the chat-template plugin.
    Template(cli::template::TemplateArgs),
    /// Validate a configuration file without serving.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Fetch (if needed) and verify the default model; print its path.
    Fetch,
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Tenant helpers.
    #[command(subcommand)]
    Tenant(TenantCmd),
}

#[derive(Subcommand)]
enum TenantCmd {
    /// Print the SHA-256 of an API key, the form `tenants[].api_keys` stores
    /// (the key is read from stdin when not given, to keep it out of shell history).
    HashKey { key: Option<String> },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Check FILE: every key known, every value valid, every plugin reference resolvable.
    Check { file: std::path::PathBuf },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Plugin(c) => cli::plugin::run(c),
        Command::Dev(a) => cli::plugin::dev::run(a),
        Command::Tokenize(a) => cli::tokenize::run(a),
        Command::Template(a) => cli::template::run(a),
        Command::Config(ConfigCmd::Check { file }) => config::Config::load(&file).map(|c| {
            println!(
                "{}: ok ({} model, {} plugins, {} tenants)",
                file.display(),
                c.models.len(),
                c.plugins.len(),
                c.tenants.len()
            )
        }),
        Command::Fetch => model_source::resolve(None).map(|p| println!("{}", p.display())),
        Command::Bench(b) => bench::run(b),
        Command::Tenant(TenantCmd::HashKey { key }) => (|| {
            let key = match key {
                Some(k) => k,
                None => std::io::read_to_string(std::io::stdin())?,
            };
            anyhow::ensure!(!key.trim().is_empty(), "empty key");
            println!("{}", config::hash_key(&key));
            Ok(())
        })(),
    };
    if let Err(e) = r {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
