//! `weft template`: render chat messages with a chat template through the plugin.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use weft_runtime::{ChatMessage, TransformRequest, WasmTransform};

#[derive(Args)]
pub struct TemplateArgs {
    /// Take the template (and BOS/EOS text) from this model (default: the default model).
    #[arg(long, conflicts_with = "template")]
    model: Option<PathBuf>,
    /// A Jinja template file.
    #[arg(long)]
    template: Option<PathBuf>,
    /// JSON file: an array of {"role", "content"} or {"messages": [...]}.
    #[arg(long)]
    messages: PathBuf,
    /// Do not open the assistant's turn at the end.
    #[arg(long)]
    no_generation_prompt: bool,
}

pub fn run(a: TemplateArgs) -> anyhow::Result<()> {
    let (template, bos, eos) = match &a.template {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            String::new(),
            String::new(),
        ),
        None => {
            let model = crate::model_source::resolve(a.model.as_deref())?;
            let (spec, template) = weft_engine::model::read_tokenizer(&model)?;
            let template = template.with_context(|| format!("{} carries no chat template", model.display()))?;
            let (bos, eos) = match &spec {
                Some(weft_engine::TokenizerSpec::Gguf(g)) => {
                    let t = |id: Option<u32>| id.and_then(|i| g.tokens.get(i as usize).cloned()).unwrap_or_default();
                    (t(g.bos_token_id), t(g.eos_token_id))
                }
                _ => (String::new(), String::new()),
            };
            (template, bos, eos)
        }
    };
    let raw: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&a.messages)?)
        .with_context(|| format!("{} is not JSON", a.messages.display()))?;
    let list = raw.get("messages").unwrap_or(&raw).as_array().context("expected an array of messages")?;
    let messages = list
        .iter()
        .map(|m| {
            Ok(ChatMessage {
                role: m["role"].as_str().context("a message lacks `role`")?.to_string(),
                content: m["content"].as_str().unwrap_or_default().to_string(),
                name: m["name"].as_str().map(str::to_string),
                ..Default::default()
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let rt = super::runtime()?;
    let config = vec![("chat_template".to_string(), template), ("bos_token".into(), bos), ("eos_token".into(), eos)];
    let t = WasmTransform::new(super::builtin(&rt, "transform-chat-template", config)?)?;
    let mut req = TransformRequest { model: String::new(), messages: Some(messages), ..Default::default() };
    if a.no_generation_prompt {
        req.params.push(("add_generation_prompt".into(), "false".into()));
    }
    match t.on_request(&req)? {
        Ok(r) => {
            print!("{}", r.prompt.unwrap_or_default());
            Ok(())
        }
        Err(rej) => anyhow::bail!("template refused the conversation ({}): {}", rej.status, rej.message),
    }
}
