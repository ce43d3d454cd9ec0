//! The tokenizer role: text to token ids and back, built from the model's own
//! tokenizer description (a `tokenizer.json`, or the GGUF `tokenizer.ggml.*` fields).
//!
//! Streaming decode is provided here once for every tokenizer: [`StreamDecoder`]
//! holds back bytes until they form complete UTF-8, so a character split across
//! tokens (byte-fallback, multi-byte emoji) is never emitted broken.

use std::rc::Rc;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "tokenizer-plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_tokenizer_world",
        default_bindings_module: "weft_sdk::tokenizer::bindings",
        with: {
            "weft:plugin/host@0.3.0": crate::common::weft::plugin::host,
            "weft:plugin/types@0.3.0": crate::common::weft::plugin::types,
        },
    });
}

use bindings::exports::weft::plugin::tokenizer as wit;

/// Where the tokenizer comes from.
///
/// ```
/// let s = weft_sdk::tokenizer::TokenizerSource::HfJson("{}".into());
/// assert!(matches!(s, weft_sdk::tokenizer::TokenizerSource::HfJson(_)));
/// ```
pub use wit::TokenizerSource;

/// The GGUF tokenizer fields.
///
/// ```
/// fn model_kind(t: &weft_sdk::tokenizer::GgufTokenizer) -> &str { &t.model }
/// ```
pub use wit::GgufTokenizer;

/// A special token and its role.
///
/// ```
/// use weft_sdk::tokenizer::{SpecialKind, SpecialToken};
/// let t = SpecialToken { id: 0, text: "<|endoftext|>".into(), kind: SpecialKind::Eos };
/// assert_eq!(t.id, 0);
/// ```
pub use wit::{SpecialKind, SpecialToken};

/// One loaded vocabulary, made by [`Tokenizer::load`].
///
/// ```
/// use weft_sdk::tokenizer::{Loaded, SpecialToken};
/// /// One token per byte.
/// struct Bytes;
/// impl Loaded for Bytes {
///     fn encode(&self, text: &str, _: bool) -> Result<Vec<u32>, String> { Ok(text.bytes().map(u32::from).collect()) }
///     fn vocab_size(&self) -> u32 { 256 }
///     fn special_tokens(&self) -> Vec<SpecialToken> { Vec::new() }
///     fn token_bytes(&self, id: u32) -> Vec<u8> { vec![id as u8] }
///     fn is_special(&self, _: u32) -> bool { false }
/// }
/// let t = Bytes;
/// assert_eq!(t.decode(&t.encode("hé", false).unwrap(), true).unwrap(), "hé");
/// ```
pub trait Loaded: 'static {
    /// Token ids of `text`. With `add_special`, BOS/EOS are added as the model asks.
    fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, String>;

    /// Text of `ids`. The default concatenates [`Loaded::token_bytes`] and
    /// replaces invalid UTF-8.
    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, String> {
        let mut bytes = Vec::new();
        for &id in ids {
            if skip_special && self.is_special(id) {
                continue;
            }
            bytes.extend(self.token_bytes(id));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn vocab_size(&self) -> u32;

    fn special_tokens(&self) -> Vec<SpecialToken>;

    /// The bytes token `id` decodes to (special tokens: their literal text).
    fn token_bytes(&self, id: u32) -> Vec<u8>;

    /// True for control tokens, which `skip_special` drops.
    fn is_special(&self, id: u32) -> bool;
}

/// A tokenizer plugin: loads a [`Loaded`] vocabulary from a model's description.
///
/// ```
/// use weft_sdk::tokenizer::{Loaded, SpecialToken, Tokenizer, TokenizerSource};
/// use weft_sdk::{Config, Metadata, Plugin};
/// struct Bytes;
/// impl Loaded for Bytes {
///     fn encode(&self, text: &str, _: bool) -> Result<Vec<u32>, String> { Ok(text.bytes().map(u32::from).collect()) }
///     fn vocab_size(&self) -> u32 { 256 }
///     fn special_tokens(&self) -> Vec<SpecialToken> { Vec::new() }
///     fn token_bytes(&self, id: u32) -> Vec<u8> { vec![id as u8] }
///     fn is_special(&self, _: u32) -> bool { false }
/// }
/// struct ByteTokenizer;
/// impl Plugin for ByteTokenizer {
///     fn metadata() -> Metadata { Metadata { name: "bytes".into(), version: "0.1.0".into(), description: "".into() } }
///     fn init(_: &Config) -> Result<Self, String> { Ok(ByteTokenizer) }
/// }
/// impl Tokenizer for ByteTokenizer {
///     type Loaded = Bytes;
///     fn load(&mut self, _: TokenizerSource) -> Result<Bytes, String> { Ok(Bytes) }
/// }
/// let v = ByteTokenizer.load(TokenizerSource::HfJson("{}".into())).unwrap();
/// assert_eq!(v.vocab_size(), 256);
/// ```
pub trait Tokenizer: crate::Plugin {
    /// One loaded vocabulary.
    type Loaded: Loaded;

    /// Builds the tokenizer from the model's description.
    fn load(&mut self, source: TokenizerSource) -> Result<Self::Loaded, String>;
}

/// Incremental UTF-8-safe decoding over any byte source.
///
/// ```
/// use weft_sdk::tokenizer::StreamDecoder;
/// let mut d = StreamDecoder::default();
/// let euro = "€".as_bytes(); // three bytes, split across two "tokens"
/// assert_eq!(d.push(&euro[..2]), "");
/// assert_eq!(d.push(&euro[2..]), "€");
/// assert_eq!(d.finish(), "");
/// ```
#[derive(Debug, Default, Clone)]
pub struct StreamDecoder {
    pending: Vec<u8>,
}

impl StreamDecoder {
    /// Appends bytes and returns the text that is complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
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

    /// Returns whatever is held back, invalid bytes replaced.
    pub fn finish(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        s
    }
}

#[doc(hidden)]
pub struct TokenizerResource<T: Tokenizer>(Rc<T::Loaded>);

#[doc(hidden)]
pub struct DecoderResource<T: Tokenizer> {
    tokenizer: Rc<T::Loaded>,
    skip_special: bool,
    inner: std::cell::RefCell<StreamDecoder>,
}

impl<T: Tokenizer> wit::GuestTokenizer for TokenizerResource<T> {
    fn load(source: TokenizerSource) -> Result<wit::Tokenizer, String> {
        crate::instance::with(|p: &mut T| p.load(source))
            .map(|t| wit::Tokenizer::new(TokenizerResource::<T>(Rc::new(t))))
    }

    fn encode(&self, text: String, add_special: bool) -> Result<Vec<u32>, String> {
        self.0.encode(&text, add_special)
    }

    fn decode(&self, ids: Vec<u32>, skip_special: bool) -> Result<String, String> {
        self.0.decode(&ids, skip_special)
    }

    fn vocab_size(&self) -> u32 {
        self.0.vocab_size()
    }

    fn special_tokens(&self) -> Vec<SpecialToken> {
        self.0.special_tokens()
    }

    fn token_bytes(&self, ids: Vec<u32>) -> Vec<Vec<u8>> {
        ids.iter().map(|&id| if self.0.is_special(id) { Vec::new() } else { self.0.token_bytes(id) }).collect()
    }

    fn decoder(&self, skip_special: bool) -> wit::Decoder {
        wit::Decoder::new(DecoderResource::<T> { tokenizer: self.0.clone(), skip_special, inner: Default::default() })
    }
}

impl<T: Tokenizer> wit::GuestDecoder for DecoderResource<T> {
    fn push(&self, id: u32) -> String {
        if self.skip_special && self.tokenizer.is_special(id) {
            return String::new();
        }
        self.inner.borrow_mut().push(&self.tokenizer.token_bytes(id))
    }

    fn finish(&self) -> String {
        self.inner.borrow_mut().finish()
    }
}

/// Exports a [`Tokenizer`] as this component's `weft:plugin/tokenizer` implementation.
///
/// ```ignore
/// weft_sdk::export_tokenizer!(MyTokenizer);
/// ```
#[macro_export]
macro_rules! export_tokenizer {
    ($t:ty) => {
        #[doc(hidden)]
        struct __WeftTokenizerExport;

        impl $crate::tokenizer::bindings::Guest for __WeftTokenizerExport {
            fn metadata() -> $crate::Metadata {
                <$t as $crate::Plugin>::metadata()
            }
            fn init(config: $crate::Config) -> ::core::result::Result<(), ::std::string::String> {
                $crate::instance::init::<$t>(&config)
            }
        }

        impl $crate::tokenizer::bindings::exports::weft::plugin::tokenizer::Guest for __WeftTokenizerExport {
            type Tokenizer = $crate::tokenizer::TokenizerResource<$t>;
            type Decoder = $crate::tokenizer::DecoderResource<$t>;
        }

        $crate::tokenizer::bindings::__export_tokenizer_world!(__WeftTokenizerExport with_types_in $crate::tokenizer::bindings);
    };
}
