//! `weft tokenize`: token ids of a text through the tokenizer plugin.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct TokenizeArgs {
    /// A GGUF file or Hugging Face directory (default: the default model).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Do not add BOS/EOS even if the model asks for them.
    #[arg(long)]
    no_special: bool,
    /// Print only the ids, as a list.
    #[arg(long)]
    ids: bool,
    /// The text (default: standard input).
    text: Option<String>,
}

pub fn run(a: TokenizeArgs) -> anyhow::Result<()> {
    let model = crate::model_source::resolve(a.model.as_deref())?;
    let (spec, _) = weft_engine::model::read_tokenizer(&model)?;
    let spec = spec.with_context(|| format!("{} carries no tokenizer description", model.display()))?;
    let text = match a.text {
        Some(t) => t,
        None => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s
        }
    };
    let rt = super::runtime()?;
    let tok = weft_runtime::WasmTokenizer::new(super::builtin(&rt, "tokenizer-bpe", vec![])?, &spec)?;
    let ids = tok.encode(&text, !a.no_special)?;
    if a.ids {
        println!("{ids:?}");
        return Ok(());
    }
    let pieces = tok.token_bytes(&ids)?;
    for (id, bytes) in ids.iter().zip(pieces) {
        let piece =
            if bytes.is_empty() { tok.decode(&[*id], false)? } else { String::from_utf8_lossy(&bytes).into_owned() };
        println!("{id:6} -> '{}'", piece.escape_debug());
    }
    Ok(())
}
