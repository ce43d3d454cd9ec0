//! Hyper-parameters of a Llama-family decoder, read from GGUF metadata or a
//! Hugging Face `config.json`. Both loaders produce this one struct so the
//! forward pass never asks where the weights came from.

/// Architecture hyper-parameters of a Llama-family decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f64,
    /// Longest context the model was trained for; requests beyond it are refused.
    pub max_position_embeddings: usize,
    /// GGUF llama weights are permuted for interleaved RoPE (pairs 2i, 2i+1);
    /// Hugging Face weights use the half-split ("neox") layout (pairs i, i+d/2).
    pub rope_interleaved: bool,
}

impl LlamaConfig {
    /// Width of one token's keys (or values) across all KV heads.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// Checks the relations the forward pass relies on.
    pub fn validate(&self) -> Result<(), String> {
        let nonzero = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("head_dim", self.head_dim),
        ];
        for (name, v) in nonzero {
            if v == 0 {
                return Err(format!("{name} is 0"));
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "num_heads {} is not a multiple of num_kv_heads {}",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {} is odd; RoPE needs pairs", self.head_dim));
        }
        Ok(())
    }
}
