//! The runtime's one error type. Every way a plugin can fail maps to a
//! stable kind, used verbatim in API error bodies and metric labels.

/// How a plugin failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file is unreadable or not a valid component.
    Load,
    /// The component needs imports the host does not provide, or lacks an export.
    Link,
    /// Built for an incompatible contract version.
    Version,
    /// `init` (or a constructor such as a tokenizer's `load`) returned an error.
    Init,
    /// The guest trapped (panic, unreachable, out-of-bounds access).
    Trap,
    /// A call ran past its deadline (or out of fuel).
    Timeout,
    /// The guest tried to grow its memory past the limit.
    Memory,
    /// The guest returned something the host refuses (token outside the
    /// vocabulary, oversized string, unknown backend...).
    InvalidOutput,
    /// The plugin returned an error value of its own.
    Plugin,
    /// The plugin's circuit breaker is open after repeated faults.
    Unavailable,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Load => "load",
            ErrorKind::Link => "link",
            ErrorKind::Version => "version",
            ErrorKind::Init => "init",
            ErrorKind::Trap => "trap",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Memory => "memory",
            ErrorKind::InvalidOutput => "invalid-output",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A plugin failure: which plugin, what kind, what happened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin `{plugin}` failed ({kind}): {message}")]
pub struct PluginError {
    pub plugin: String,
    pub kind: ErrorKind,
    pub message: String,
    /// When trying again can succeed (an open breaker).
    pub retry_after: Option<std::time::Duration>,
}

impl PluginError {
    pub fn new(plugin: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { plugin: plugin.into(), kind, message: message.into(), retry_after: None }
    }

    pub fn retry_after(mut self, d: std::time::Duration) -> Self {
        self.retry_after = Some(d);
        self
    }

    /// The stable kind string.
    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// The panic message a Rust guest printed before trapping: from
/// "panicked at" to the end, on one line (at most 512 bytes).
pub(crate) fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.rfind("panicked at")?;
    let text: String = stderr[at..]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
        .collect::<Vec<_>>()
        .join(": ");
    let mut end = text.len().min(512);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_text_is_extracted() {
        let err = "some log\nthread '<unnamed>' panicked at src/lib.rs:5:9:\nfilter blew up\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(panic_message(err).unwrap(), "panicked at src/lib.rs:5:9:: filter blew up");
        assert_eq!(panic_message("just a log line"), None);
    }
}
