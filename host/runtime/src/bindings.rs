//! The host's bindings of the `weft:plugin` contract: one module per world,
//! all generated from `wit/` here and nowhere else. The shared interfaces
//! (`types`, `host`) are generated once in `common` and reused by the others.

pub mod common {
    wasmtime::component::bindgen!({
        world: "common",
        path: "../../wit",
    });
}

pub mod tokenizer {
    wasmtime::component::bindgen!({
        world: "tokenizer-plugin",
        path: "../../wit",
        with: {
            "weft:plugin/types": super::common::weft::plugin::types,
            "weft:plugin/host": super::common::weft::plugin::host,
        },
    });
}

pub mod sampler {
    wasmtime::component::bindgen!({
        world: "sampler-plugin",
        path: "../../wit",
        with: {
            "weft:plugin/types": super::common::weft::plugin::types,
            "weft:plugin/host": super::common::weft::plugin::host,
        },
    });
}

pub mod router {
    wasmtime::component::bindgen!({
        world: "router-plugin",
        path: "../../wit",
        with: {
            "weft:plugin/types": super::common::weft::plugin::types,
            "weft:plugin/host": super::common::weft::plugin::host,
        },
    });
}

pub mod transform {
    wasmtime::component::bindgen!({
        world: "transform-plugin",
        path: "../../wit",
        with: {
            "weft:plugin/types": super::common::weft::plugin::types,
            "weft:plugin/host": super::common::weft::plugin::host,
        },
    });
}

pub use common::weft::plugin::types::{Candidate, LogLevel, PluginMetadata as Metadata};
