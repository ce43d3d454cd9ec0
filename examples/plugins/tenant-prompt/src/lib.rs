//! A request transform for one tenant's policy: put the tenant's system
//! prompt in front of every chat, and refuse requests that contain a blocked
//! phrase with a 400 the client can read.
//!
//! Configuration: `system_prompt = "..."` (required) and `blocked_phrases =
//! "phrase one|phrase two"` (optional, case-insensitive). An existing system
//! message is kept after the tenant's own, so the tenant's rules come first.
//! Runs before the chat template (list it first in `pipeline.transforms`).

use weft_sdk::transform::{Message, Passthrough, Rejection, Request, Transform};
use weft_sdk::{Config, Metadata, Plugin, config_value};

struct TenantPrompt {
    prompt: String,
    /// Lower-case phrases that refuse a request.
    blocked: Vec<String>,
}

impl Plugin for TenantPrompt {
    fn metadata() -> Metadata {
        Metadata {
            name: "tenant-prompt".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let prompt = config_value(config, "system_prompt").ok_or("set `system_prompt`")?.trim().to_string();
        if prompt.is_empty() {
            return Err("`system_prompt` is empty".into());
        }
        let blocked = config_value(config, "blocked_phrases")
            .unwrap_or("")
            .split('|')
            .map(|p| p.trim().to_lowercase())
            .filter(|p| !p.is_empty())
            .collect();
        Ok(TenantPrompt { prompt, blocked })
    }
}

impl Transform for TenantPrompt {
    type Filter = Passthrough;

    fn on_request(&mut self, mut req: Request) -> Result<Request, Rejection> {
        let texts = req.messages.iter().flatten().map(|m| m.content.as_str()).chain(req.prompt.as_deref());
        for text in texts {
            let lower = text.to_lowercase();
            if let Some(b) = self.blocked.iter().find(|b| lower.contains(b.as_str())) {
                weft_sdk::host::counter_add("rejected", 1);
                return Err(Rejection {
                    status: 400,
                    message: format!("this request was refused by policy: it mentions \"{b}\""),
                });
            }
        }
        if let Some(messages) = &mut req.messages {
            messages.insert(0, Message::text("system", &self.prompt));
        }
        Ok(req)
    }

    fn response_filter(&mut self, _request: &Request) -> Passthrough {
        Passthrough
    }
}

weft_sdk::export_transform!(TenantPrompt);
