//! A transform that misbehaves by request parameter `mode`: `"huge"` answers
//! with a 100 MB prompt, `"loop"` never returns, `"reject"` rejects with 403;
//! anything else passes the request through. Its response filter upper-cases.

use weft_sdk::transform::{Rejection, Request, ResponseFilter, Transform};
use weft_sdk::{Metadata, Plugin};

struct Hostile;

impl Plugin for Hostile {
    fn metadata() -> Metadata {
        Metadata { name: "hostile-transform".into(), version: "0.1.0".into(), description: "misbehaves on purpose".into() }
    }
}

struct Upper;

impl ResponseFilter for Upper {
    fn new() -> Self {
        Upper
    }
    fn on_chunk(&mut self, text: &str) -> String {
        text.to_uppercase()
    }
}

impl Transform for Hostile {
    type Filter = Upper;

    fn on_request(mut request: Request) -> Result<Request, Rejection> {
        match request.param("mode") {
            Some("\"huge\"") => {
                request.prompt = Some("x".repeat(100 << 20));
                Ok(request)
            }
            Some("\"loop\"") => loop {
                std::hint::black_box(&request);
            },
            Some("\"reject\"") => Err(Rejection { status: 403, message: "rejected on purpose".into() }),
            _ => Ok(request),
        }
    }
}

weft_sdk::export_transform!(Hostile);
