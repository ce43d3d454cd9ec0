//! Stop strings matched over the decoded text stream, across token
//! boundaries. Text that might be the start of a stop string is held back
//! until it is known not to be; the stop string itself never reaches the client.

/// Streaming matcher for one sequence.
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops, pending: String::new() }
    }

    /// Feeds text; returns what may be sent and whether a stop string was hit.
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.pending.push_str(text);
        if self.stops.is_empty() {
            return (std::mem::take(&mut self.pending), false);
        }
        if let Some(at) = self.stops.iter().filter_map(|s| self.pending.find(s.as_str())).min() {
            let out = self.pending[..at].to_string();
            self.pending.clear();
            return (out, true);
        }
        // Keep the longest suffix that is a prefix of some stop string.
        let mut keep = 0;
        for s in &self.stops {
            for k in (1..s.len().min(self.pending.len() + 1)).rev() {
                if self.pending.is_char_boundary(self.pending.len() - k)
                    && s.starts_with(&self.pending[self.pending.len() - k..])
                {
                    keep = keep.max(k);
                    break;
                }
            }
        }
        let cut = self.pending.len() - keep;
        let out = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        (out, false)
    }

    /// Releases held-back text at the end of the sequence.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_across_chunks_and_hides_the_stop() {
        let mut m = StopMatcher::new(vec!["END".into(), "\n\n".into()]);
        assert_eq!(m.push("hello E"), ("hello ".into(), false));
        assert_eq!(m.push("N"), ("".into(), false));
        assert_eq!(m.push("Dx"), ("".into(), true));
        let mut m = StopMatcher::new(vec!["END".into()]);
        assert_eq!(m.push("EN"), ("".into(), false));
        assert_eq!(m.push("ough"), ("ENough".into(), false));
        assert_eq!(m.finish(), "");
        let mut m = StopMatcher::new(vec![]);
        assert_eq!(m.push("abc"), ("abc".into(), false));
    }
}
