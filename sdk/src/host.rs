//! Calls a plugin may make on the host. These are the only capabilities a
//! plugin has: there are no files, sockets, clocks or environment inside.

use crate::LogLevel;
use crate::common::weft::plugin::host as raw;

/// Writes a log line attributed to this plugin (shown in the host's tracing output).
///
/// ```no_run
/// weft_sdk::host::log(weft_sdk::LogLevel::Info, "loaded 3 rules");
/// ```
pub fn log(level: LogLevel, message: &str) {
    raw::log(level, message)
}

/// This plugin's own configuration value for `key`, as set in `weft.toml`.
///
/// ```no_run
/// let rules = weft_sdk::host::config_get("rules").unwrap_or_default();
/// ```
pub fn config_get(key: &str) -> Option<String> {
    raw::config_get(key)
}

/// Adds `value` to the counter `<plugin>_<name>` exported in `/metrics`.
///
/// ```no_run
/// weft_sdk::host::counter_add("redactions", 1);
/// ```
pub fn counter_add(name: &str, value: u64) {
    raw::counter_add(name, value)
}

/// Records `value` in the histogram `<plugin>_<name>` exported in `/metrics`.
///
/// ```no_run
/// weft_sdk::host::histogram_record("candidates", 12.0);
/// ```
pub fn histogram_record(name: &str, value: f64) {
    raw::histogram_record(name, value)
}
