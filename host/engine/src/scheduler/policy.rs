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

    /// Index into `candidates` (never empty) of the sequence to preempt when
    /// KV blocks run out; `running` is every running sequence (for accounting
    /// who holds what). Default: lowest priority, and among those the most
    /// recently admitted.
    fn pick_victim(&mut self, candidates: &[SeqView<'_>], _running: &[SeqView<'_>], _total_blocks: usize) -> usize {
        candidates
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| (s.priority, std::cmp::Reverse(s.admitted_at)))
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// Index into `candidates` of a sequence to preempt so that `waiting`
    /// (the policy's own next pick, which cannot be admitted: every slot or
    /// block is taken) gets in now; `None` to let it wait. Only sequences that
    /// have run a while are candidates, so one preemption per step cannot
    /// thrash; `running` is every running sequence and `slots` how many may
    /// run at once. Default: never.
    fn preempt_for(
        &mut self,
        _waiting: &SeqView<'_>,
        _candidates: &[SeqView<'_>],
        _running: &[SeqView<'_>],
        _slots: usize,
    ) -> Option<usize> {
        None
    }

    /// Called once per scheduled sequence per step with the tokens it will
    /// process, for policies that account service per tenant.
    fn on_scheduled(&mut self, _seq: &SeqView<'_>, _tokens: usize) {}
}
