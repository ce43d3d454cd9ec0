//! First come, first served: the earliest submitted waiting sequence goes
//! next (a preempted sequence keeps its place), ignoring tenants.

use super::policy::{SchedulingPolicy, SeqView};

/// The default policy.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fcfs;

impl SchedulingPolicy for Fcfs {
    fn name(&self) -> &'static str {
        "fcfs"
    }

    fn pick_next(&mut self, waiting: &[SeqView<'_>], _running: &[SeqView<'_>], _total_blocks: usize) -> Option<usize> {
        waiting.iter().enumerate().min_by_key(|(_, s)| s.arrival).map(|(i, _)| i)
    }
}
