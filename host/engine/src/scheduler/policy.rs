//! The scheduling seam: which waiting sequence is admitted next and which
//! running one is preempted when KV blocks run out. The batching loop in
//! [`super::Scheduler`] never changes; fairness lives behind this trait.

/// What a policy may see of a sequence.
#[derive(Debug, Clone, Copy)]
pub struct SeqView<'a> {
    pub id: u64,
    pub tenant: &'a str,
    /// Larger is more important.
    pub priority: i32,
    /// Submission order (kept across preemptions).
    pub arrival: u64,
    /// Order of the latest admission.
    pub admitted_at: u64,
    pub prompt_len: usize,
    pub num_tokens: usize,
    /// KV blocks the sequence holds now (0 while waiting).
    pub blocks: usize,
}

/// Chooses admissions and preemption victims.
pub trait SchedulingPolicy: Send {
    /// Short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Index into `waiting` (never empty) of the sequence to admit next, or
    /// `None` to admit nothing this step (e.g. every waiting tenant is at its
    /// KV share). `running` and `total_blocks` let a policy see who holds what.
    fn pick_next(&mut self, waiting: &[SeqView<'_>], running: &[SeqView<'_>], total_blocks: usize) -> Option<usize>;

    /// Index into `running` (never empty) of the sequence to preempt.
    /// Default: lowest priority, and among those the most recently admitted.
    fn pick_victim(&mut self, running: &[SeqView<'_>]) -> usize {
        running
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (s.priority, std::cmp::Reverse(s.admitted_at)))
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Called once per scheduled sequence per step with the tokens it will
    /// process, for policies that account service per tenant.
    fn on_scheduled(&mut self, _seq: &SeqView<'_>, _tokens: usize) {}
}
