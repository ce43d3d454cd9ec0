//! The plugin export. Configuration: `rules` (JSON list), `redact_requests`
//! and `redact_responses` (`true` by default).

use std::cell::RefCell;

use weft_sdk::transform::{Rejection, Request, ResponseFilter, Transform};
use weft_sdk::{Config, Metadata, Plugin, config_value};

use crate::{Redactor, StreamRedactor};

thread_local! {
    static STATE: RefCell<Option<(Redactor, bool, bool)>> = const { RefCell::new(None) };
}

fn state() -> (Redactor, bool, bool) {
    STATE
        .with(|s| s.borrow().clone())
        .unwrap_or_else(|| (Redactor::from_config(None).expect("default rules compile"), true, true))
}

struct Redact;

impl Plugin for Redact {
    fn metadata() -> Metadata {
        Metadata {
            name: "transform-redact".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: env!("CARGO_PKG_DESCRIPTION").into(),
        }
    }

    fn init(config: &Config) -> Result<(), String> {
        let r = Redactor::from_config(config_value(config, "rules"))?;
        let flag = |k: &str| config_value(config, k).map(|v| v != "false").unwrap_or(true);
        STATE.with(|s| *s.borrow_mut() = Some((r, flag("redact_requests"), flag("redact_responses"))));
        Ok(())
    }
}

struct Filter {
    inner: Option<StreamRedactor>,
}

impl ResponseFilter for Filter {
    fn new() -> Self {
        let (r, _, responses) = state();
        Filter { inner: responses.then(|| StreamRedactor::new(r)) }
    }

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

    fn on_request(mut request: Request) -> Result<Request, Rejection> {
        let (r, requests, _) = state();
        if requests {
            if let Some(p) = &mut request.prompt {
                *p = r.redact(p);
            }
            for m in request.messages.iter_mut().flatten() {
                m.content = r.redact(&m.content);
            }
        }
        Ok(request)
    }
}

weft_sdk::export_transform!(Redact);
