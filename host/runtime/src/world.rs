//! The four plugin roles and their WIT names.

/// The role a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    Tokenizer,
    Sampler,
    Router,
    Transform,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::Tokenizer => "tokenizer",
            World::Sampler => "sampler",
            World::Router => "router",
            World::Transform => "transform",
        }
    }

    pub fn world_name(self) -> &'static str {
        match self {
            World::Tokenizer => "tokenizer-plugin",
            World::Sampler => "sampler-plugin",
            World::Router => "router-plugin",
            World::Transform => "transform-plugin",
        }
    }

    pub(crate) fn from_interface(name: &str) -> Option<Self> {
        Some(match name {
            "tokenizer" => World::Tokenizer,
            "sampler" => World::Sampler,
            "router" => World::Router,
            "transform" => World::Transform,
            _ => return None,
        })
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        World::from_interface(s)
            .ok_or_else(|| format!("unknown plugin kind `{s}` (tokenizer, sampler, router, transform)"))
    }
}
