//! `weft bench ...`: benchmarks that print figures (and JSON with `--json`).
//! They never assert; the figures go in closing notes and the README.

mod plugins;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Plugin costs: call overhead, Wasm vs native sampler and tokenizer, and
    /// the Wasm sampler's share of an engine step on the default model.
    Plugins {
        #[arg(long)]
        json: bool,
        /// Fewer iterations.
        #[arg(long)]
        quick: bool,
    },
}

pub fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Plugins { json, quick } => plugins::run(json, quick),
    }
}
