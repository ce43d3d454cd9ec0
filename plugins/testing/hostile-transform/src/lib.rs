//! A transform that misbehaves by request parameter `mode` (or its `request`
//! config value): `"huge"` answers
//! with a 100 MB prompt, `"loop"` never returns, `"reject"` rejects with 403,
//! `"sleep"` sleeps 10 s through WASI, `"print"` writes 1 MB to stderr and
//! stdout; anything else passes the request through.
//!
//! Its response filter follows the plugin's `filter` config value: `panic`
//! panics on the third chunk, `huge` answers the third chunk with 200 MB,
//! `sleep` sleeps 10 s on every chunk, `spin` never returns from the third
//! chunk; anything else upper-cases.

use weft_sdk::transform::{Rejection, Request, ResponseFilter, Transform};
use weft_sdk::{Config, Metadata, Plugin, config_value};

/// The configured misbehaviours: `request` for on-request, `filter` for the response filter.
struct Hostile {
    request: Option<String>,
    filter: String,
}

impl Plugin for Hostile {
    fn metadata() -> Metadata {
        Metadata {
            name: "hostile-transform".into(),
            version: "0.1.0".into(),
            description: "misbehaves on purpose".into(),
        }
    }

    fn init(config: &Config) -> Result<Self, String> {
        Ok(Hostile {
            request: config_value(config, "request").map(str::to_string),
            filter: config_value(config, "filter").unwrap_or_default().to_string(),
        })
    }
}

struct Upper {
    mode: String,
    chunks: u32,
}

impl ResponseFilter for Upper {
    fn on_chunk(&mut self, text: &str) -> String {
        self.chunks += 1;
        match self.mode.as_str() {
            "panic" if self.chunks == 3 => panic!("hostile filter panics on purpose at chunk {}", self.chunks),
            "huge" if self.chunks == 3 => "y".repeat(40 << 20),
            "spin" if self.chunks == 3 => loop {
                std::hint::black_box(&self.chunks);
            },
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(10));
                text.to_uppercase()
            }
            _ => text.to_uppercase(),
        }
    }
}

impl Transform for Hostile {
    type Filter = Upper;

    fn on_request(&mut self, mut request: Request) -> Result<Request, Rejection> {
        // The request's `mode` parameter, else the plugin's `request` config value.
        let configured = self.request.as_ref().map(|m| format!("\"{m}\""));
        let mode = request.param("mode").map(str::to_string).or(configured);
        match mode.as_deref() {
            Some("\"huge\"") => {
                request.prompt = Some("x".repeat(100 << 20));
                Ok(request)
            }
            Some("\"loop\"") => loop {
                std::hint::black_box(&request);
            },
            Some("\"reject\"") => Err(Rejection { status: 403, message: "rejected on purpose".into() }),
            Some("\"sleep\"") => {
                std::thread::sleep(std::time::Duration::from_secs(10));
                Ok(request)
            }
            Some("\"print\"") => {
                let line = "z".repeat(1023);
                for _ in 0..1024 {
                    eprintln!("{line}");
                    println!("{line}");
                }
                Ok(request)
            }
            _ => Ok(request),
        }
    }

    fn response_filter(&mut self, _request: &Request) -> Upper {
        Upper { mode: self.filter.clone(), chunks: 0 }
    }
}

weft_sdk::export_transform!(Hostile);
