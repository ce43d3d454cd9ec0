//! The plugin export. Configuration: `rules` (JSON list), `redact_requests`
//! and `redact_responses` (`true` by default).

use weft_sdk::transform::{Rejection, Request, ResponseFilter, Transform};
use weft_sdk::{Config, Metadata, Plugin, config_value};

use crate::{Redactor, StreamRedactor};

struct Redact {
    redactor: Redactor,
    requests: bool,
    responses: bool,
}

impl Plugin for Redact {
    fn metadata() -> Metadata {
        Metadata {
            name: "transform-redact".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let redactor = Redactor::from_config(config_value(config, "rules"))?;
        let flag = |k: &str| config_value(config, k).map(|v| v != "false").unwrap_or(true);
        Ok(Redact { redactor, requests: flag("redact_requests"), responses: flag("redact_responses") })
    }
}

struct Filter {
    inner: Option<StreamRedactor>,
}

impl ResponseFilter for Filter {
    fn on_chunk(&mut self, text: &str) -> String {
        match &mut self.inner {
            Some(s) => s.push(text),
            None => text.to_string(),
        }
    }

    fn on_end(&mut self) -> String {
        self.inner.as_mut().map(|s| s.finish()).unwrap_or_default()
    }
}

impl Transform for Redact {
    type Filter = Filter;

    fn on_request(&mut self, mut request: Request) -> Result<Request, Rejection> {
        let r = &self.redactor;
        if self.requests {
            if let Some(p) = &mut request.prompt {
                *p = r.redact(p);
            }
            for m in request.messages.iter_mut().flatten() {
                m.content = r.redact(&m.content);
            }
        }
        Ok(request)
    }

    fn response_filter(&mut self, _request: &Request) -> Filter {
        Filter { inner: self.responses.then(|| StreamRedactor::new(self.redactor.clone())) }
    }
}

weft_sdk::export_transform!(Redact);
