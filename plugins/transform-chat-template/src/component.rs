//! The plugin export: renders `messages` into `prompt` in `on-request`.
//!
//! Configuration (from weft.toml, or filled in by the host from the model):
//! `chat_template` (required), `bos_token`, `eos_token`, `today` (YYYY-MM-DD).

use weft_sdk::transform::{Passthrough, Rejection, Request, Transform};
use weft_sdk::{Config, Metadata, Plugin, config_value};

use crate::{ChatTemplate, Message, ToolCall};

struct ChatTemplatePlugin {
    template: ChatTemplate,
}

impl Plugin for ChatTemplatePlugin {
    fn metadata() -> weft_sdk::Metadata {
        Metadata {
            name: "transform-chat-template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let src = config_value(config, "chat_template").ok_or("`chat_template` is not configured")?;
        let template = ChatTemplate::new(
            src,
            config_value(config, "bos_token").unwrap_or(""),
            config_value(config, "eos_token").unwrap_or(""),
            config_value(config, "today"),
        )?;
        Ok(ChatTemplatePlugin { template })
    }
}

impl Transform for ChatTemplatePlugin {
    type Filter = Passthrough;

    fn on_request(&mut self, mut request: Request) -> Result<Request, Rejection> {
        let Some(messages) = request.messages.take() else { return Ok(request) };
        let add_generation_prompt = request.param("add_generation_prompt").map(|v| v != "false").unwrap_or(true);
        let msgs: Vec<Message> = messages.into_iter().map(from_wit).collect();
        let tools = crate::tools_param(request.param("tools")).map_err(|e| Rejection { status: 400, message: e })?;
        let prompt = self
            .template
            .render_with_tools(&msgs, tools.as_ref(), add_generation_prompt)
            .map_err(|e| Rejection { status: 400, message: e })?;
        request.prompt = Some(prompt);
        Ok(request)
    }

    fn response_filter(&mut self, _request: &Request) -> Passthrough {
        Passthrough
    }
}

fn from_wit(m: weft_sdk::transform::Message) -> Message {
    Message {
        role: m.role,
        content: m.content,
        name: m.name,
        tool_calls: m.tool_calls.iter().map(|c| ToolCall::new(&c.id, &c.name, &c.arguments)).collect(),
        tool_call_id: m.tool_call_id,
    }
}

weft_sdk::export_transform!(ChatTemplatePlugin);
