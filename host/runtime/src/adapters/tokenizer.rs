//! The tokenizer plugin as the server uses it: encode, decode, and streaming
//! decoders. The tokenizer is built once per instance (`load` from the model's
//! description). Instances are pooled: each call has one to itself, so a slow
//! or failing encode never blocks or fails another request. Streaming decode
//! runs in the host from the token-bytes table read once at start.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceAny;
use weft_engine::TokenizerSpec;

use super::expect_world;
use crate::bindings::tokenizer::TokenizerPlugin;
use crate::bindings::tokenizer::exports::weft::plugin::tokenizer as wit;
use crate::error::{ErrorKind, PluginError, Result};
use crate::runtime::LoadedPlugin;
use crate::state::HostState;

struct Inst {
    store: Store<HostState>,
    b: TokenizerPlugin,
    tok: ResourceAny,
}

impl super::idle::Idle for Inst {
    fn memory_bytes(&self) -> usize {
        self.store.data().limiter.bytes
    }
}

/// Idle tokenizer instances kept: enough that the plugin executor's threads
/// never wait for each other; more concurrent calls build more, then drop them.
fn pool_max() -> usize {
    std::thread::available_parallelism().map(|n| n.get() * 2).unwrap_or(4)
}

/// A special token as the tokenizer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialToken {
    pub id: u32,
    pub text: String,
    /// `bos`, `eos`, `eot`, `unk`, `pad`, `control` or `user-defined`.
    pub kind: &'static str,
}

/// A loaded tokenizer plugin bound to one model's tokenizer.
pub struct WasmTokenizer {
    plugin: Arc<LoadedPlugin>,
    source: wit::TokenizerSource,
    /// Idle instances. A call takes one for itself, so a slow encode holds
    /// only its own instance and a failure replaces only that one.
    idle: Arc<super::idle::IdleList<Inst>>,
    vocab_size: u32,
    specials: Vec<SpecialToken>,
    /// Every token's output bytes (control tokens: empty), read once when the
    /// tokenizer is built: streaming decode and log-probability text need no
    /// plugin call.
    token_bytes: Arc<Vec<Vec<u8>>>,
    /// Longest text one token can stand for, special tokens included: a prompt
    /// of more than `max_context` times this many bytes cannot fit the context.
    max_token_len: usize,
}

fn source_of(spec: &TokenizerSpec) -> wit::TokenizerSource {
    match spec {
        TokenizerSpec::HuggingFaceJson(j) => wit::TokenizerSource::HfJson(j.clone()),
        TokenizerSpec::Gguf(g) => wit::TokenizerSource::Gguf(wit::GgufTokenizer {
            model: g.model.clone(),
            pre: g.pre.clone(),
            tokens: g.tokens.clone(),
            merges: g.merges.clone(),
            scores: g.scores.clone(),
            token_types: g.token_types.clone(),
            bos: g.bos_token_id,
            eos: g.eos_token_id,
            eot: g.eot_token_id,
            unk: g.unknown_token_id,
            pad: g.padding_token_id,
            add_bos: g.add_bos_token,
            add_eos: g.add_eos_token,
            add_space_prefix: g.add_space_prefix,
            precompiled_charsmap: g.precompiled_charsmap.clone(),
            remove_extra_whitespaces: g.remove_extra_whitespaces,
        }),
    }
}

impl WasmTokenizer {
    pub fn new(plugin: Arc<LoadedPlugin>, spec: &TokenizerSpec) -> Result<Arc<Self>> {
        expect_world(&plugin, crate::World::Tokenizer)?;
        let idle = super::idle::IdleList::new(&plugin.idle, pool_max());
        let mut t = Self {
            plugin,
            source: source_of(spec),
            idle,
            vocab_size: 0,
            specials: Vec::new(),
            token_bytes: Arc::default(),
            max_token_len: 1,
        };
        let (vocab, specials) = t.with(|p, i| {
            let v = p.call(&mut i.store, "tokenizer.vocab-size", |s| {
                i.b.weft_plugin_tokenizer().tokenizer().call_vocab_size(s, i.tok)
            })?;
            let sp = p.call(&mut i.store, "tokenizer.special-tokens", |s| {
                i.b.weft_plugin_tokenizer().tokenizer().call_special_tokens(s, i.tok)
            })?;
            Ok((v, sp))
        })?;
        if vocab == 0 {
            return Err(t.plugin.invalid("reports an empty vocabulary".into()));
        }
        t.vocab_size = vocab;
        t.specials = specials
            .into_iter()
            .filter(|s| s.id < vocab)
            .map(|s| SpecialToken {
                id: s.id,
                text: s.text,
                kind: match s.kind {
                    wit::SpecialKind::Bos => "bos",
                    wit::SpecialKind::Eos => "eos",
                    wit::SpecialKind::Eot => "eot",
                    wit::SpecialKind::Unk => "unk",
                    wit::SpecialKind::Pad => "pad",
                    wit::SpecialKind::Control => "control",
                    wit::SpecialKind::UserDefined => "user-defined",
                },
            })
            .collect();
        let ids: Vec<u32> = (0..vocab).collect();
        let mut bytes = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(8192) {
            let part = t.with(|p, i| {
                let out = p.call(&mut i.store, "tokenizer.token-bytes", |s| {
                    i.b.weft_plugin_tokenizer().tokenizer().call_token_bytes(s, i.tok, chunk)
                })?;
                if out.len() != chunk.len() {
                    return Err(p.invalid(format!(
                        "token-bytes returned {} entries for {} ids",
                        out.len(),
                        chunk.len()
                    )));
                }
                Ok(out)
            })?;
            bytes.extend(part);
        }
        for s in &t.specials {
            bytes[s.id as usize].clear();
        }
        t.max_token_len =
            bytes.iter().map(Vec::len).chain(t.specials.iter().map(|s| s.text.len())).max().unwrap_or(1).max(1);
        t.token_bytes = Arc::new(bytes);
        Ok(Arc::new(t))
    }

    /// Longest text (in bytes) one token stands for.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    pub fn plugin(&self) -> &Arc<LoadedPlugin> {
        &self.plugin
    }

    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    pub fn special_tokens(&self) -> &[SpecialToken] {
        &self.specials
    }

    /// Runs `f` on an instance of its own (an idle one, or a new one),
    /// which goes back to the pool unless the call failed in a way that may
    /// have left it broken (a trap, timeout or memory fault).
    fn with<T>(&self, f: impl FnOnce(&LoadedPlugin, &mut Inst) -> Result<T>) -> Result<T> {
        let mut inst = match self.idle.take() {
            Some(i) => i,
            None => {
                let (mut store, b) = self.plugin.instance::<TokenizerPlugin>()?;
                let src = &self.source;
                let tok = self
                    .plugin
                    .call(&mut store, "tokenizer.load", |s| b.weft_plugin_tokenizer().tokenizer().call_load(s, src))?
                    .map_err(|m| {
                        PluginError::new(
                            &*self.plugin.name,
                            ErrorKind::Init,
                            format!("cannot build the tokenizer: {m}"),
                        )
                    })?;
                Inst { store, b, tok }
            }
        };
        let r = f(&self.plugin, &mut inst);
        let healthy = !matches!(&r, Err(e) if e.kind != ErrorKind::Plugin && e.kind != ErrorKind::InvalidOutput);
        if healthy {
            self.idle.give(inst);
        }
        r
    }

    /// Token ids of `text`; special-token text becomes its id; `add_special` adds BOS/EOS.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let vocab = self.vocab_size;
        self.with(|p, i| {
            let ids = p
                .call(&mut i.store, "tokenizer.encode", |s| {
                    i.b.weft_plugin_tokenizer().tokenizer().call_encode(s, i.tok, text, add_special)
                })?
                .map_err(|m| p.plugin_error(format!("encode failed: {m}")))?;
            if let Some(&bad) = ids.iter().find(|&&t| t >= vocab) {
                return Err(p.invalid(format!("encode produced token {bad}, outside the vocabulary of {vocab}")));
            }
            Ok(ids)
        })
    }

    /// Text of `ids`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.with(|p, i| {
            let text = p
                .call(&mut i.store, "tokenizer.decode", |s| {
                    i.b.weft_plugin_tokenizer().tokenizer().call_decode(s, i.tok, ids, skip_special)
                })?
                .map_err(|m| p.plugin_error(format!("decode failed: {m}")))?;
            p.check_size("decoded text", text.len())?;
            Ok(text)
        })
    }

    /// The bytes each token stands for (empty for control tokens and ids outside the vocabulary).
    pub fn token_bytes(&self, ids: &[u32]) -> Result<Vec<Vec<u8>>> {
        Ok(ids.iter().map(|&id| self.token_bytes.get(id as usize).cloned().unwrap_or_default()).collect())
    }

    /// The model's vocabulary for sampler plugins: every token's output bytes
    /// (control and other special tokens: none) and the end-of-sequence tokens.
    pub fn vocabulary(&self, vocab_size: usize, eos: Vec<u32>) -> Result<crate::state::Vocabulary> {
        let mut tokens = self.token_bytes.as_ref().clone();
        tokens.resize(vocab_size, Vec::new());
        Ok(crate::state::Vocabulary { tokens, eos })
    }

    /// A streaming decoder: the concatenated output bytes of the tokens
    /// pushed, released as soon as they form complete UTF-8. With
    /// `skip_special` false, special tokens decode to their text. Runs in the
    /// host: it holds no plugin instance and calls no plugin code.
    pub fn decoder(&self, skip_special: bool) -> TokenDecoder {
        let specials = if skip_special {
            Vec::new()
        } else {
            self.specials.iter().map(|s| (s.id, s.text.clone().into_bytes())).collect()
        };
        TokenDecoder { bytes: self.token_bytes.clone(), specials, pending: Vec::new() }
    }
}

/// Incremental decoding that never emits broken UTF-8 (see [`WasmTokenizer::decoder`]).
pub struct TokenDecoder {
    bytes: Arc<Vec<Vec<u8>>>,
    specials: Vec<(u32, Vec<u8>)>,
    pending: Vec<u8>,
}

impl TokenDecoder {
    /// Feeds one token; returns the text that became complete.
    pub fn push(&mut self, id: u32) -> String {
        match self.specials.iter().find(|(s, _)| *s == id) {
            Some((_, text)) => self.pending.extend_from_slice(text),
            None => self.pending.extend_from_slice(self.bytes.get(id as usize).map_or(&[][..], |b| b)),
        }
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..good]).expect("validated prefix"));
                    match e.error_len() {
                        // An incomplete sequence at the end: hold it back.
                        None => {
                            self.pending.drain(..good);
                            return out;
                        }
                        // Bytes that can never become valid: replace and go on.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..good + bad);
                        }
                    }
                }
            }
        }
    }

    /// Returns what is still held back, invalid bytes replaced.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_holds_back_split_characters() {
        let euro = "€".as_bytes().to_vec();
        let bytes = Arc::new(vec![euro[..2].to_vec(), euro[2..].to_vec(), b"a".to_vec(), vec![0xff], Vec::new()]);
        let mut d = TokenDecoder { bytes, specials: vec![(4, b"<s>".to_vec())], pending: Vec::new() };
        assert_eq!(d.push(0), "");
        assert_eq!(d.push(1), "€");
        assert_eq!(d.push(3), "\u{FFFD}");
        assert_eq!(d.push(4), "<s>");
        assert_eq!(d.push(0), "");
        assert_eq!(d.finish(), "\u{FFFD}");
        assert_eq!(d.push(99), "", "an id outside the table adds nothing");
    }
}
