//! Built against a copy of the contract relabelled 9.0.0: the host serves
//! 0.1.x and must refuse it with both versions in the error.

wit_bindgen::generate!({ world: "transform-plugin", path: "wit", generate_all });

struct Future;

impl Guest for Future {
    fn metadata() -> weft::plugin::types::PluginMetadata {
        weft::plugin::types::PluginMetadata {
            name: "future".into(),
            version: "9.0.0".into(),
            description: "from the future".into(),
        }
    }
    fn init(_config: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }
}

struct Stream;

impl exports::weft::plugin::transform::GuestResponseStream for Stream {
    fn new() -> Self {
        Stream
    }
    fn on_chunk(&self, text: String) -> String {
        text
    }
    fn on_end(&self) -> String {
        String::new()
    }
}

impl exports::weft::plugin::transform::Guest for Future {
    type ResponseStream = Stream;
    fn on_request(
        req: exports::weft::plugin::transform::Request,
    ) -> Result<exports::weft::plugin::transform::Request, exports::weft::plugin::transform::Rejection> {
        Ok(req)
    }
}

export!(Future);
