//! Key/value memory for every layer, addressed by slot (`block * block_size + offset`).
//!
//! Layout per layer is `[slot][kv_head][head_dim]` in f32, so one token's keys
//! for all KV heads are contiguous and a block holds `block_size` such rows.
//! The buffers are allocated zeroed up front (the OS maps pages lazily), so
//! memory does not grow step by step.

/// Per-layer key and value buffers.
pub struct KvStore {
    block_size: usize,
    kv_dim: usize,
    num_blocks: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl KvStore {
    pub fn new(num_layers: usize, num_blocks: usize, block_size: usize, kv_dim: usize) -> Self {
        let len = num_blocks * block_size * kv_dim;
        Self {
            block_size,
            kv_dim,
            num_blocks,
            k: (0..num_layers).map(|_| vec![0.0; len]).collect(),
            v: (0..num_layers).map(|_| vec![0.0; len]).collect(),
        }
    }

    /// Bytes one block takes across all layers, keys and values.
    pub fn bytes_per_block(num_layers: usize, block_size: usize, kv_dim: usize) -> usize {
        2 * num_layers * block_size * kv_dim * std::mem::size_of::<f32>()
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Writes one token's keys and values (`kv_dim` each) of `layer` into `slot`.
    pub fn write(&mut self, layer: usize, slot: usize, k: &[f32], v: &[f32]) {
        let at = slot * self.kv_dim;
        self.k[layer][at..at + self.kv_dim].copy_from_slice(k);
        self.v[layer][at..at + self.kv_dim].copy_from_slice(v);
    }

    /// Keys and values of one layer, for the attention kernel.
    pub fn layer(&self, layer: usize) -> (&[f32], &[f32]) {
        (&self.k[layer], &self.v[layer])
    }
}
