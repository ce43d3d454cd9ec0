//! The first-party plugins, built by this crate's build script and embedded
//! in the binary so `weft serve` needs no plugin files on disk.

/// Byte-level / SentencePiece BPE tokenizer.
pub const TOKENIZER_BPE: &[u8] = include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/tokenizer_bpe.wasm"));
/// The OpenAI sampling parameters as a plugin.
pub const SAMPLER_STANDARD: &[u8] = include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/sampler_standard.wasm"));
/// Jinja chat templates.
pub const TRANSFORM_CHAT_TEMPLATE: &[u8] =
    include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/transform_chat_template.wasm"));

/// Least-loaded routing.
pub const ROUTER_LEAST_LOADED: &[u8] = include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/router_least_loaded.wasm"));

/// Redaction of e-mail addresses, phone and card numbers, in requests and streamed responses.
pub const TRANSFORM_REDACT: &[u8] = include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/transform_redact.wasm"));

/// Prefix-affinity routing with a load fallback.
pub const ROUTER_PREFIX_AFFINITY: &[u8] =
    include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/router_prefix_affinity.wasm"));

/// Constrained decoding: JSON Schema, any JSON object, or a regex.
pub const SAMPLER_JSON: &[u8] = include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/sampler_json.wasm"));

/// Tool calling: renders tools, forces or lazily constrains calls, parses them from the stream.
pub const TRANSFORM_TOOLS: &[u8] = include_bytes!(concat!(env!("WEFT_PLUGIN_DIR"), "/transform_tools.wasm"));

/// Built-in plugins by name.
pub fn get(name: &str) -> Option<&'static [u8]> {
    match name {
        "tokenizer-bpe" => Some(TOKENIZER_BPE),
        "sampler-standard" => Some(SAMPLER_STANDARD),
        "transform-chat-template" => Some(TRANSFORM_CHAT_TEMPLATE),
        "router-least-loaded" => Some(ROUTER_LEAST_LOADED),
        "transform-redact" => Some(TRANSFORM_REDACT),
        "router-prefix-affinity" => Some(ROUTER_PREFIX_AFFINITY),
        "sampler-json" => Some(SAMPLER_JSON),
        "transform-tools" => Some(TRANSFORM_TOOLS),
        _ => None,
    }
}

/// Directory holding every plugin the build produced (test plugins included).
pub fn build_dir() -> &'static std::path::Path {
    std::path::Path::new(env!("WEFT_PLUGIN_DIR"))
}
