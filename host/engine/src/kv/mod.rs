//! The paged KV cache.
//!
//! Split the way mistral.rs and vLLM split it: [`block_manager`] decides which
//! fixed-size block holds which tokens (ref counts, prefix-cache hashes, LRU
//! eviction) and never touches tensor data; [`store`] owns the per-layer key
//! and value memory the attention kernel reads and writes through block tables.

pub mod block_manager;
pub mod store;

pub use block_manager::{
    BlockId, BlockManager, KvStats, PrefixIndex, block_hash, cache_root, prefix_hashes, prefix_hashes_from,
};
pub use store::{KvDtype, KvStore};

/// How much memory the KV cache may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvCapacity {
    /// A number of blocks.
    Blocks(usize),
    /// A byte budget, turned into blocks from the model's per-block footprint.
    Bytes(usize),
}

impl KvCapacity {
    /// Number of blocks this capacity buys, given the bytes one block needs.
    pub fn blocks(self, bytes_per_block: usize) -> usize {
        match self {
            KvCapacity::Blocks(n) => n,
            KvCapacity::Bytes(b) => b / bytes_per_block.max(1),
        }
    }
}
