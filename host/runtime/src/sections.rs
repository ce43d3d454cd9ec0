//! What a component declares about itself beyond its WIT world, read from the
//! custom sections weft's SDKs write.
//!
//! Why: the contract has no way for a transform to say it filters no
//! responses, and opening a response stream for one costs a guest call per
//! streamed chunk (a hop to the plugin executor and back for every token of
//! every stream). The Rust SDK writes `weft:response-filter` when a
//! transform's filter is `Passthrough`; the host then opens no stream.
//!
//! Invariant: a declaration only ever removes work the plugin said it does
//! not want. A component without the section, or with one this host does not
//! understand, gets the full contract (every chunk through its filter).

use wasmparser::{Parser, Payload};

/// The section a transform's response-filter declaration lives in (see the
/// SDK's `transform::RESPONSE_FILTER_SECTION`).
pub const RESPONSE_FILTER: &str = "weft:response-filter";

/// True when the component (or a core module inside it) carries
/// [`RESPONSE_FILTER`] saying its responses pass through unchanged: exactly
/// one byte, 1. Malformed bytes declare nothing (loading reports them).
pub fn passes_responses_through(bytes: &[u8]) -> bool {
    let mut said = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return false };
        if let Payload::CustomSection(s) = payload
            && s.name() == RESPONSE_FILTER
        {
            // Two declarations (two linked SDK copies) must agree.
            let this = s.data() == [1];
            if said.is_some_and(|d| d != this) {
                return false;
            }
            said = Some(this);
        }
    }
    said.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module holding only custom sections `(name, data)`.
    fn module(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        for (name, data) in sections {
            let mut body = vec![name.len() as u8];
            body.extend_from_slice(name.as_bytes());
            body.extend_from_slice(data);
            m.push(0);
            m.push(body.len() as u8);
            m.extend(body);
        }
        m
    }

    #[test]
    fn only_an_explicit_passthrough_declaration_skips_the_filter() {
        assert!(passes_responses_through(&module(&[("producers", b"x"), (RESPONSE_FILTER, &[1])])));
        assert!(!passes_responses_through(&module(&[(RESPONSE_FILTER, &[0])])));
        assert!(!passes_responses_through(&module(&[("producers", b"x")])));
        assert!(!passes_responses_through(&module(&[(RESPONSE_FILTER, &[1, 1])])));
        assert!(!passes_responses_through(&module(&[(RESPONSE_FILTER, &[1]), (RESPONSE_FILTER, &[0])])));
        assert!(!passes_responses_through(b"not wasm"));
    }

    #[test]
    fn the_sdk_writes_it_through_componentization() {
        assert!(passes_responses_through(crate::builtin::TRANSFORM_CHAT_TEMPLATE));
        assert!(!passes_responses_through(crate::builtin::TRANSFORM_REDACT));
    }
}
