//! Key/value memory for every layer, addressed by slot (`block * block_size + offset`).
//!
//! Values are laid out per layer as `[slot][kv_head][head_dim]` (a token's
//! row is what the weighted sum adds). Keys are transposed within each
//! block, `[block][kv_head][head_dim][block_size]`: for one dimension the
//! block's tokens are contiguous, so attention computes a block's scores as
//! `head_dim` vector multiply-adds over its tokens, with no reduction across
//! lanes per score (that reduction was most of attention's time).
//! Values are held as f16 by default (as llama.cpp does): decode at many
//! streams or long contexts reads the cache once per step, and f32 made that
//! read, not the arithmetic, a quarter of a 32-stream step. `KvDtype::F32`
//! keeps full precision. The buffers are allocated zeroed up front (the OS
//! maps pages lazily), so memory does not grow step by step.

use half::f16;

/// The cache's element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvDtype {
    #[default]
    F16,
    F32,
}

impl std::str::FromStr for KvDtype {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(KvDtype::F16),
            "f32" => Ok(KvDtype::F32),
            other => Err(format!("`{other}` is not f16 or f32")),
        }
    }
}

impl KvDtype {
    pub fn bytes(self) -> usize {
        match self {
            KvDtype::F16 => 2,
            KvDtype::F32 => 4,
        }
    }
}

enum Buffers {
    F16 { k: Vec<Vec<f16>>, v: Vec<Vec<f16>> },
    F32 { k: Vec<Vec<f32>>, v: Vec<Vec<f32>> },
}

/// One layer's keys (transposed per block, see the module doc) and values, for the attention kernel.
#[derive(Clone, Copy)]
pub enum KvLayer<'a> {
    F16(&'a [f16], &'a [f16]),
    F32(&'a [f32], &'a [f32]),
}

/// Per-layer key and value buffers.
pub struct KvStore {
    block_size: usize,
    kv_dim: usize,
    num_blocks: usize,
    buf: Buffers,
}

impl KvStore {
    pub fn new(num_layers: usize, num_blocks: usize, block_size: usize, kv_dim: usize, dtype: KvDtype) -> Self {
        let len = num_blocks * block_size * kv_dim;
        let buf = match dtype {
            KvDtype::F16 => Buffers::F16 {
                k: (0..num_layers).map(|_| vec![f16::ZERO; len]).collect(),
                v: (0..num_layers).map(|_| vec![f16::ZERO; len]).collect(),
            },
            KvDtype::F32 => Buffers::F32 {
                k: (0..num_layers).map(|_| vec![0.0; len]).collect(),
                v: (0..num_layers).map(|_| vec![0.0; len]).collect(),
            },
        };
        Self { block_size, kv_dim, num_blocks, buf }
    }

    /// Bytes one block takes across all layers, keys and values.
    pub fn bytes_per_block(num_layers: usize, block_size: usize, kv_dim: usize, dtype: KvDtype) -> usize {
        2 * num_layers * block_size * kv_dim * dtype.bytes()
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
        use half::slice::HalfFloatSliceExt;
        let bs = self.block_size;
        let r = slot * self.kv_dim..(slot + 1) * self.kv_dim;
        // Key element i = (head h, dimension d) of this token: [block][h][d][offset].
        let (block, off) = (slot / bs, slot % bs);
        let key_at = |i: usize| ((block * self.kv_dim + i) * bs) + off;
        match &mut self.buf {
            Buffers::F16 { k: kb, v: vb } => {
                for (i, &x) in k.iter().enumerate() {
                    kb[layer][key_at(i)] = f16::from_f32(x);
                }
                vb[layer][r].convert_from_f32_slice(v);
            }
            Buffers::F32 { k: kb, v: vb } => {
                for (i, &x) in k.iter().enumerate() {
                    kb[layer][key_at(i)] = x;
                }
                vb[layer][r].copy_from_slice(v);
            }
        }
    }

    /// Keys and values of one layer, for the attention kernel.
    pub fn layer(&self, layer: usize) -> KvLayer<'_> {
        match &self.buf {
            Buffers::F16 { k, v } => KvLayer::F16(&k[layer], &v[layer]),
            Buffers::F32 { k, v } => KvLayer::F32(&k[layer], &v[layer]),
        }
    }
}
