//! Test plugin for hot reload, built three times from this one file (this crate,
//! tagger-a, tagger-b, tagger-broken): its response filter prefixes every
//! chunk with `[<crate name>]`, so a client can tell which version produced
//! each piece of a response. tagger-broken's `init` always fails.

use weft_sdk::transform::{Rejection, Request, ResponseFilter, Transform};
use weft_sdk::{Config, Metadata, Plugin};

const TAG: &str = env!("CARGO_PKG_NAME");

struct Tagger;

impl Plugin for Tagger {
    fn metadata() -> Metadata {
        Metadata {
            name: TAG.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "tags every response chunk".into(),
        }
    }

    fn init(_config: &Config) -> Result<Self, String> {
        if TAG == "tagger-broken" {
            return Err("this build refuses to start".into());
        }
        Ok(Tagger)
    }
}

struct Tag;

impl ResponseFilter for Tag {
    fn on_chunk(&mut self, text: &str) -> String {
        format!("[{TAG}]{text}")
    }
}

impl Transform for Tagger {
    type Filter = Tag;

    fn on_request(&mut self, request: Request) -> Result<Request, Rejection> {
        Ok(request)
    }

    fn response_filter(&mut self, _request: &Request) -> Tag {
        Tag
    }
}

weft_sdk::export_transform!(Tagger);
