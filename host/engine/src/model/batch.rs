//! The ragged batch one engine step hands to the model.

/// One sequence's part of a step.
#[derive(Debug, Clone)]
pub struct SeqSlice {
    /// First row of this sequence in the batch.
    pub start: usize,
    /// Number of new tokens (1 for decode, a chunk for prefill).
    pub len: usize,
    /// Position of the first new token; the new tokens see positions `0..pos0+len`.
    pub pos0: usize,
    /// Block ids covering positions `0..pos0+len`.
    pub block_table: Vec<u32>,
}

/// All tokens of a step, sequence after sequence.
#[derive(Debug, Clone, Default)]
pub struct ForwardBatch {
    pub tokens: Vec<u32>,
    pub seqs: Vec<SeqSlice>,
    /// Rows whose logits are wanted (the last row of sequences that need a token).
    pub logits_rows: Vec<usize>,
}

impl ForwardBatch {
    pub fn push(&mut self, tokens: &[u32], pos0: usize, block_table: Vec<u32>, want_logits: bool) {
        let start = self.tokens.len();
        self.tokens.extend_from_slice(tokens);
        self.seqs.push(SeqSlice { start, len: tokens.len(), pos0, block_table });
        if want_logits {
            self.logits_rows.push(start + tokens.len() - 1);
        }
    }

    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// For every row: (sequence index, position).
    pub fn row_positions(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::with_capacity(self.tokens.len());
        for (s, seq) in self.seqs.iter().enumerate() {
            for i in 0..seq.len {
                out.push((s, seq.pos0 + i));
            }
        }
        out
    }
}
