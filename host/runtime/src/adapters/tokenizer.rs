//! The tokenizer plugin as the server uses it: encode, decode, and streaming
//! decoders. The tokenizer is built once per instance (`load` from the model's
//! description); an instance that fails is replaced on the next call.

use std::sync::{Arc, Mutex};

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
    /// Bumped every time the instance is replaced; decoders of an older one stop working.
    generation: u64,
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
    inst: Mutex<Option<Inst>>,
    generations: std::sync::atomic::AtomicU64,
    vocab_size: u32,
    specials: Vec<SpecialToken>,
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
        }),
    }
}

impl WasmTokenizer {
    pub fn new(plugin: Arc<LoadedPlugin>, spec: &TokenizerSpec) -> Result<Arc<Self>> {
        expect_world(&plugin, crate::World::Tokenizer)?;
        let mut t = Self {
            plugin,
            source: source_of(spec),
            inst: Mutex::new(None),
            generations: Default::default(),
            vocab_size: 0,
            specials: Vec::new(),
        };
        let (vocab, specials) = t.with(|p, i| {
            let v = p.call(&mut i.store, "tokenizer.vocab-size", |s| i.b.weft_plugin_tokenizer().tokenizer().call_vocab_size(s, i.tok))?;
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
        Ok(Arc::new(t))
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

    /// Runs `f` on the live instance, creating it first if needed; drops the
    /// instance if the call fails so the next call starts fresh.
    fn with<T>(&self, f: impl FnOnce(&LoadedPlugin, &mut Inst) -> Result<T>) -> Result<T> {
        let mut guard = self.inst.lock().map_err(|_| PluginError::new(&*self.plugin.name, ErrorKind::Trap, "tokenizer lock poisoned"))?;
        if guard.is_none() {
            let (mut store, b) = self.plugin.instance::<TokenizerPlugin>()?;
            let src = &self.source;
            let tok = self
                .plugin
                .call(&mut store, "tokenizer.load", |s| b.weft_plugin_tokenizer().tokenizer().call_load(s, src))?
                .map_err(|m| PluginError::new(&*self.plugin.name, ErrorKind::Init, format!("cannot build the tokenizer: {m}")))?;
            let generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            *guard = Some(Inst { store, b, tok, generation });
        }
        let r = f(&self.plugin, guard.as_mut().expect("instance just ensured"));
        if matches!(&r, Err(e) if e.kind != ErrorKind::Plugin && e.kind != ErrorKind::InvalidOutput) {
            *guard = None;
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

    /// The bytes each token stands for (empty for control tokens).
    pub fn token_bytes(&self, ids: &[u32]) -> Result<Vec<Vec<u8>>> {
        self.with(|p, i| {
            let out = p.call(&mut i.store, "tokenizer.token-bytes", |s| {
                i.b.weft_plugin_tokenizer().tokenizer().call_token_bytes(s, i.tok, ids)
            })?;
            if out.len() != ids.len() {
                return Err(p.invalid(format!("token-bytes returned {} entries for {} ids", out.len(), ids.len())));
            }
            Ok(out)
        })
    }

    /// A streaming decoder bound to the current instance.
    /// The model's vocabulary for sampler plugins: every token's output bytes
    /// (control and other special tokens: none) and the end-of-sequence tokens.
    pub fn vocabulary(&self, vocab_size: usize, eos: Vec<u32>) -> Result<crate::state::Vocabulary> {
        let ids: Vec<u32> = (0..vocab_size as u32).collect();
        let mut tokens = self.token_bytes(&ids)?;
        tokens.resize(vocab_size, Vec::new());
        for s in self.special_tokens() {
            if let Some(t) = tokens.get_mut(s.id as usize) {
                t.clear();
            }
        }
        Ok(crate::state::Vocabulary { tokens, eos })
    }

    pub fn decoder(self: &Arc<Self>, skip_special: bool) -> Result<WasmDecoder> {
        let (handle, generation) = self.with(|p, i| {
            let d = p.call(&mut i.store, "tokenizer.decoder", |s| {
                i.b.weft_plugin_tokenizer().tokenizer().call_decoder(s, i.tok, skip_special)
            })?;
            Ok((d, i.generation))
        })?;
        Ok(WasmDecoder { tok: self.clone(), handle, generation })
    }
}

/// Incremental decoding that never emits broken UTF-8.
pub struct WasmDecoder {
    tok: Arc<WasmTokenizer>,
    handle: ResourceAny,
    generation: u64,
}

impl WasmDecoder {
    fn run(&self, what: &str, f: impl FnOnce(&TokenizerPlugin, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<String>) -> Result<String> {
        let (gen_, handle) = (self.generation, self.handle);
        self.tok.with(|p, i| {
            if i.generation != gen_ {
                return Err(PluginError::new(&*p.name, ErrorKind::Trap, "the tokenizer instance was replaced after a failure"));
            }
            let b = &i.b;
            let s = p.call(&mut i.store, what, |st| f(b, st, handle))?;
            p.check_size("decoded text", s.len())?;
            Ok(s)
        })
    }

    /// Feeds one token; returns the text that became complete.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.run("decoder.push", |b, s, h| b.weft_plugin_tokenizer().decoder().call_push(s, h, id))
    }

    /// Returns what is still held back.
    pub fn finish(&mut self) -> Result<String> {
        self.run("decoder.finish", |b, s, h| b.weft_plugin_tokenizer().decoder().call_finish(s, h))
    }
}

impl Drop for WasmDecoder {
    fn drop(&mut self) {
        let (gen_, handle) = (self.generation, self.handle);
        let _ = self.tok.with(|_, i| {
            if i.generation == gen_ {
                let _ = handle.resource_drop(&mut i.store);
            }
            Ok(())
        });
    }
}
