//! Which model a command works on: `--model PATH`, or the default model
//! (fetched and verified on first use).

use std::path::{Path, PathBuf};

pub fn resolve(model: Option<&Path>) -> anyhow::Result<PathBuf> {
    match model {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(weft_engine::ensure_default_model(&mut |line| eprintln!("{line}"))?),
    }
}
