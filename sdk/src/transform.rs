//! The transform role: rewrites or rejects a request before the model sees
//! it, and filters the response text as it streams out.
//!
//! A response stream may hold text back (for example a possible e-mail address
//! split across two chunks) and release it in a later chunk or at the end. It
//! may also turn text into structured outputs: a tool-format plugin parses the
//! model's tool-call syntax into [`ToolCall`]s.

use std::cell::RefCell;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "transform-plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_transform_world",
        default_bindings_module: "weft_sdk::transform::bindings",
        with: {
            "weft:plugin/host@0.3.0": crate::common::weft::plugin::host,
            "weft:plugin/types@0.3.0": crate::common::weft::plugin::types,
        },
    });
}

use bindings::exports::weft::plugin::transform as wit;

/// The request as transforms see it, a chat message, a rejection, a tool
/// call and a response stream's output.
///
/// ```
/// use weft_sdk::transform::{Message, Output, Rejection, ToolCall};
/// let m = Message { role: "user".into(), content: "hi".into(), name: None, tool_calls: vec![], tool_call_id: None };
/// let r = Rejection { status: 400, message: "no".into() };
/// let call = ToolCall { id: "call_0".into(), name: "f".into(), arguments: "{}".into() };
/// assert!(matches!(Output::ToolCall(call), Output::ToolCall(_)));
/// assert_eq!((m.role.as_str(), r.status), ("user", 400));
/// ```
pub use wit::{Message, Output, Rejection, Request, ToolCall};

impl Message {
    /// A plain text message.
    ///
    /// ```
    /// let m = weft_sdk::transform::Message::text("system", "be brief");
    /// assert!(m.tool_calls.is_empty() && m.tool_call_id.is_none());
    /// ```
    pub fn text(role: &str, content: &str) -> Self {
        Message { role: role.into(), content: content.into(), name: None, tool_calls: Vec::new(), tool_call_id: None }
    }
}

impl Request {
    /// The JSON text of parameter `name`, if present.
    ///
    /// ```
    /// let r = weft_sdk::transform::Request { model: "m".into(), messages: None, prompt: Some("p".into()),
    ///     params: vec![("temperature".into(), "0.5".into())], headers: vec![], constraint: None };
    /// assert_eq!(r.param("temperature"), Some("0.5"));
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Sets (or replaces) parameter `name` to the JSON text `value`.
    ///
    /// ```
    /// let mut r = weft_sdk::transform::Request { model: "m".into(), messages: None, prompt: None, params: vec![],
    ///     headers: vec![], constraint: None };
    /// r.set_param("max_tokens", "5");
    /// assert_eq!(r.param("max_tokens"), Some("5"));
    /// ```
    pub fn set_param(&mut self, name: &str, value: &str) {
        match self.params.iter_mut().find(|(k, _)| k == name) {
            Some(p) => p.1 = value.to_string(),
            None => self.params.push((name.to_string(), value.to_string())),
        }
    }

    /// The value of header `name` (lower-case), if exposed.
    ///
    /// ```
    /// let r = weft_sdk::transform::Request { model: "m".into(), messages: None, prompt: None, params: vec![],
    ///     headers: vec![("x-tenant".into(), "acme".into())], constraint: None };
    /// assert_eq!(r.header("x-tenant"), Some("acme"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Filters one response's text. The default passes text through unchanged.
///
/// Plain filters implement [`on_chunk`](Self::on_chunk) and
/// [`on_end`](Self::on_end); a filter that emits structured outputs (a tool
/// call) overrides [`on_chunk_outputs`](Self::on_chunk_outputs) and
/// [`on_end_outputs`](Self::on_end_outputs) instead.
///
/// ```
/// use weft_sdk::transform::ResponseFilter;
/// struct Upper;
/// impl ResponseFilter for Upper {
///     fn on_chunk(&mut self, t: &str) -> String { t.to_uppercase() }
/// }
/// assert_eq!(Upper.on_chunk("ab"), "AB");
/// ```
pub trait ResponseFilter: 'static {
    /// Text to send now for this chunk; may hold some back.
    fn on_chunk(&mut self, text: &str) -> String {
        text.to_string()
    }

    /// Text held back, released at the end of the response.
    fn on_end(&mut self) -> String {
        String::new()
    }

    /// What to send now for this chunk: by default [`on_chunk`](Self::on_chunk)'s text.
    ///
    /// ```
    /// use weft_sdk::transform::{Output, ResponseFilter, ToolCall};
    /// struct AllCalls;
    /// impl ResponseFilter for AllCalls {
    ///     fn on_chunk_outputs(&mut self, t: &str) -> Vec<Output> {
    ///         vec![Output::ToolCall(ToolCall { id: "call_0".into(), name: "echo".into(), arguments: format!("{{\"text\": {t:?}}}") })]
    ///     }
    /// }
    /// assert_eq!(AllCalls.on_chunk_outputs("x").len(), 1);
    /// ```
    fn on_chunk_outputs(&mut self, text: &str) -> Vec<Output> {
        let t = self.on_chunk(text);
        if t.is_empty() { Vec::new() } else { vec![Output::Text(t)] }
    }

    /// What was held back, at the end: by default [`on_end`](Self::on_end)'s text.
    fn on_end_outputs(&mut self) -> Vec<Output> {
        let t = self.on_end();
        if t.is_empty() { Vec::new() } else { vec![Output::Text(t)] }
    }

    /// Set by [`Passthrough`] only: [`export_transform!`](crate::export_transform)
    /// then declares in the component that it filters no responses, and the
    /// host skips the response stream (a call per chunk) altogether.
    #[doc(hidden)]
    const PASSES_THROUGH: bool = false;
}

/// A response filter that changes nothing. A transform whose `Filter` is
/// `Passthrough` costs nothing per response: the component says so (a custom
/// section [`export_transform!`](crate::export_transform) writes) and the
/// host never opens a response stream for it.
///
/// ```
/// use weft_sdk::transform::{Passthrough, ResponseFilter};
/// assert_eq!(Passthrough.on_chunk("x"), "x");
/// ```
pub struct Passthrough;

impl ResponseFilter for Passthrough {
    const PASSES_THROUGH: bool = true;
}

/// The custom section a transform component carries to say whether it filters
/// responses: one byte, 1 when its filter is [`Passthrough`] (the host then
/// opens no response stream), 0 otherwise. A component without it (any other
/// toolchain) is filtered chunk by chunk.
///
/// ```
/// assert_eq!(weft_sdk::transform::RESPONSE_FILTER_SECTION, "weft:response-filter");
/// ```
pub const RESPONSE_FILTER_SECTION: &str = "weft:response-filter";

/// The section's content for filter type `F`.
///
/// ```
/// use weft_sdk::transform::{response_filter_section, Passthrough};
/// assert_eq!(response_filter_section::<Passthrough>(), [1]);
/// ```
pub const fn response_filter_section<F: ResponseFilter>() -> [u8; 1] {
    [F::PASSES_THROUGH as u8]
}

/// A request/response transform. Its state (parsed configuration, caches,
/// counters) lives in `self`; each response gets its own [`ResponseFilter`].
///
/// ```
/// use weft_sdk::transform::{Passthrough, Rejection, Request, Transform};
/// use weft_sdk::{Config, Metadata, Plugin};
/// struct MaxPrompt {
///     max: usize,
/// }
/// impl Plugin for MaxPrompt {
///     fn metadata() -> Metadata { Metadata { name: "max-prompt".into(), version: "0.1.0".into(), description: "".into() } }
///     fn init(config: &Config) -> Result<Self, String> {
///         let max = weft_sdk::config_value(config, "max_chars").unwrap_or("4000");
///         Ok(MaxPrompt { max: max.parse().map_err(|_| "max_chars is not a number")? })
///     }
/// }
/// impl Transform for MaxPrompt {
///     type Filter = Passthrough;
///     fn on_request(&mut self, r: Request) -> Result<Request, Rejection> {
///         if r.prompt.as_ref().is_some_and(|p| p.len() > self.max) {
///             return Err(Rejection { status: 400, message: "prompt too long".into() });
///         }
///         Ok(r)
///     }
///     fn response_filter(&mut self, _: &Request) -> Passthrough { Passthrough }
/// }
/// let mut t = MaxPrompt::init(&vec![("max_chars".into(), "3".into())]).unwrap();
/// let r = Request { model: "m".into(), messages: None, prompt: Some("long".into()), params: vec![], headers: vec![], constraint: None };
/// assert_eq!(t.on_request(r).unwrap_err().status, 400);
/// ```
pub trait Transform: crate::Plugin {
    /// The per-response filter.
    type Filter: ResponseFilter;

    /// Rewrites the request, or rejects it with an HTTP status and message.
    /// The default passes it on unchanged.
    fn on_request(&mut self, request: Request) -> Result<Request, Rejection> {
        Ok(request)
    }

    /// The filter for one response to `request` (as the last transform left it).
    fn response_filter(&mut self, request: &Request) -> Self::Filter;
}

#[doc(hidden)]
pub struct StreamResource<T: Transform>(RefCell<T::Filter>);

impl<T: Transform> wit::GuestResponseStream for StreamResource<T> {
    fn new(request: Request) -> Self {
        StreamResource(RefCell::new(crate::instance::with(|p: &mut T| p.response_filter(&request))))
    }

    fn on_chunk(&self, text: String) -> Vec<Output> {
        self.0.borrow_mut().on_chunk_outputs(&text)
    }

    fn on_end(&self) -> Vec<Output> {
        self.0.borrow_mut().on_end_outputs()
    }
}

/// Exports a [`Transform`] as this component's `weft:plugin/transform` implementation.
///
/// ```ignore
/// weft_sdk::export_transform!(MyTransform);
/// ```
#[macro_export]
macro_rules! export_transform {
    ($t:ty) => {
        #[doc(hidden)]
        struct __WeftTransformExport;

        impl $crate::transform::bindings::Guest for __WeftTransformExport {
            fn metadata() -> $crate::Metadata {
                <$t as $crate::Plugin>::metadata()
            }
            fn init(config: $crate::Config) -> ::core::result::Result<(), ::std::string::String> {
                $crate::instance::init::<$t>(&config)
            }
        }

        impl $crate::transform::bindings::exports::weft::plugin::transform::Guest for __WeftTransformExport {
            type ResponseStream = $crate::transform::StreamResource<$t>;
            fn on_request(
                request: $crate::transform::Request,
            ) -> ::core::result::Result<$crate::transform::Request, $crate::transform::Rejection> {
                $crate::instance::with(|p: &mut $t| <$t as $crate::transform::Transform>::on_request(p, request))
            }
        }

        $crate::transform::bindings::__export_transform_world!(__WeftTransformExport with_types_in $crate::transform::bindings);

        // Must match `RESPONSE_FILTER_SECTION` (an attribute takes a literal).
        #[cfg(target_family = "wasm")]
        #[doc(hidden)]
        #[used]
        #[unsafe(link_section = "weft:response-filter")]
        static __WEFT_RESPONSE_FILTER: [u8; 1] =
            $crate::transform::response_filter_section::<<$t as $crate::transform::Transform>::Filter>();
    };
}
