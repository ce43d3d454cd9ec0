//! Numeric ranges as regular expressions over JSON number text.
//!
//! Why: tool parameters routinely bound their numbers (`{"type": "integer",
//! "minimum": 1, "maximum": 5}`), and a constraint that ignored the bounds
//! would produce arguments that fail validation. An integer range becomes
//! digit patterns (the classic range-to-regex split: `[17, 342]` is `1[7-9]
//! | [2-9][0-9] | [1-2][0-9]{2} | 3[0-3][0-9] | 34[0-2]`), with no leading
//! zeros and `-` for the negative side. A number range bounds the integer
//! part and lets the fraction run free below the upper bound; numbers under
//! a bound have no exponent.
//!
//! Invariant: every text the regex matches is a JSON number inside the
//! bounds. Fractional bounds are narrowed to whole numbers (the value set is
//! a subset, never a superset), and an exclusive lower bound on a number
//! starts at the next whole number.

/// Up to 16 digits: JSON integers past 2^53 lose precision in most parsers anyway.
const MAX_DIGITS: usize = 16;
const FRACTION: &str = r"(?:\.[0-9]{1,15})?";

/// Inclusive bounds; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

/// Alternatives for the digit strings of `[lo, hi]`, both of `n` digits.
fn same_len(lo: &[u8], hi: &[u8], out: &mut Vec<String>, prefix: String) {
    if lo.is_empty() {
        out.push(prefix);
        return;
    }
    let (a, b) = (lo[0], hi[0]);
    let (lr, hr) = (&lo[1..], &hi[1..]);
    let n = lr.len();
    if a == b {
        same_len(lr, hr, out, format!("{prefix}{}", a as char));
        return;
    }
    let rest = |n: usize| if n == 0 { String::new() } else { format!("[0-9]{{{n}}}") };
    let mut first = a;
    if lr.iter().any(|&c| c != b'0') {
        same_len(lr, &vec![b'9'; n], out, format!("{prefix}{}", a as char));
        first = a + 1;
    }
    let mut last = b;
    let tail_partial = hr.iter().any(|&c| c != b'9');
    if tail_partial {
        last = b - 1;
    }
    if first <= last {
        let d =
            if first == last { (first as char).to_string() } else { format!("[{}-{}]", first as char, last as char) };
        out.push(format!("{prefix}{d}{}", rest(n)));
    }
    if tail_partial {
        same_len(&vec![b'0'; n], hr, out, format!("{prefix}{}", b as char));
    }
}

/// Non-negative integers in `[lo, hi]` (`hi = None`: unbounded), as alternatives.
fn non_negative(lo: u64, hi: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    let digits = |x: u64| x.to_string().len();
    let top = |d: usize| -> u64 { 10u64.saturating_pow(d as u32) - 1 };
    let hi_digits = hi.map_or(MAX_DIGITS, digits);
    let mut start = lo;
    for d in digits(lo)..=hi_digits {
        let end = match hi {
            Some(h) if d == hi_digits => h,
            _ => top(d),
        };
        if start > end {
            break;
        }
        if hi.is_none() && start == 10u64.pow(d as u32 - 1) {
            // Every longer number too, up to the digit cap.
            out.push(format!("[1-9][0-9]{{{},{}}}", d - 1, MAX_DIGITS - 1));
            break;
        }
        same_len(start.to_string().as_bytes(), end.to_string().as_bytes(), &mut out, String::new());
        start = end + 1;
    }
    out
}

fn alt(parts: Vec<String>) -> String {
    match parts.len() {
        0 => r"[^\s\S]".into(),
        1 => parts.into_iter().next().unwrap(),
        _ => format!("(?:{})", parts.join("|")),
    }
}

/// Integers in `b`.
pub fn integer(b: Bounds) -> String {
    let mut parts = Vec::new();
    // Non-negative side: [max(lo, 0), hi].
    if b.hi.is_none_or(|h| h >= 0) {
        let lo = b.lo.map_or(0, |l| l.max(0)) as u64;
        parts.extend(non_negative(lo, b.hi.map(|h| h as u64)));
    }
    // Negative side: -m for m in [max(1, -hi), -lo].
    if b.lo.is_none_or(|l| l < 0) {
        let m_lo = b.hi.map_or(1, |h| if h < 0 { h.unsigned_abs() } else { 1 });
        let m_hi = b.lo.map(|l| l.unsigned_abs());
        let neg = non_negative(m_lo, m_hi);
        if !neg.is_empty() {
            parts.push(format!("-{}", alt(neg)));
        }
    }
    alt(parts)
}

/// Numbers in `b` (decimal text, no exponent).
pub fn number(b: Bounds) -> String {
    let mut parts = Vec::new();
    let frac = |ints: Vec<String>| if ints.is_empty() { None } else { Some(format!("{}{FRACTION}", alt(ints))) };
    let exact = |m: u64| format!(r"{m}(?:\.0{{1,15}})?");
    // Non-negative side: integer part in [max(lo, 0), hi - 1] with any fraction, or hi itself.
    if b.hi.is_none_or(|h| h >= 0) {
        let lo = b.lo.map_or(0, |l| l.max(0)) as u64;
        match b.hi {
            None => parts.extend(frac(non_negative(lo, None))),
            Some(h) => {
                let h = h as u64;
                if h > lo {
                    parts.extend(frac(non_negative(lo, Some(h - 1))));
                }
                if h >= lo {
                    parts.push(exact(h));
                }
            }
        }
    }
    // Negative side: -(k.f) for k in [max(0, -hi), -lo - 1] any fraction, or -lo itself.
    if b.lo.is_none_or(|l| l < 0) {
        let k_lo = b.hi.map_or(0, |h| if h < 0 { h.unsigned_abs() } else { 0 });
        let mut neg = Vec::new();
        match b.lo {
            None => neg.extend(frac(non_negative(k_lo, None))),
            Some(l) => {
                let m = l.unsigned_abs();
                if m > k_lo {
                    neg.extend(frac(non_negative(k_lo, Some(m - 1))));
                }
                neg.push(exact(m));
            }
        }
        if !neg.is_empty() {
            parts.push(format!("-{}", alt(neg)));
        }
    }
    alt(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automaton::Automaton;

    fn auto(re: &str) -> Automaton {
        Automaton::from_regex(re, 64 << 20).unwrap()
    }

    /// Every integer in a window around the bounds matches exactly when inside them.
    #[test]
    fn integer_ranges_are_exact() {
        let cases = [
            (Some(1), Some(5)),
            (Some(17), Some(342)),
            (Some(0), Some(0)),
            (Some(-40), Some(-3)),
            (Some(-15), Some(120)),
            (Some(99), Some(1000)),
            (Some(7), None),
            (None, Some(12)),
            (None, Some(-8)),
            (Some(100), None),
        ];
        for (lo, hi) in cases {
            let a = auto(&integer(Bounds { lo, hi }));
            for x in -1200i64..1200 {
                let inside = lo.is_none_or(|l| x >= l) && hi.is_none_or(|h| x <= h);
                assert_eq!(a.matches(x.to_string().as_bytes()), inside, "{x} in [{lo:?}, {hi:?}]");
            }
            assert!(!a.matches(b"01"), "no leading zeros");
            assert!(!a.matches(b"-0") || lo.is_none_or(|l| l <= 0), "-0");
        }
        let a = auto(&integer(Bounds { lo: Some(1), hi: None }));
        assert!(a.matches(b"1234567890123456"));
        assert!(!a.matches(b"12345678901234567"), "16 digits at most");
    }

    #[test]
    fn number_ranges_hold() {
        for (lo, hi) in
            [(Some(0), Some(1)), (Some(-5), Some(5)), (Some(-10), Some(-2)), (Some(3), None), (None, Some(0))]
        {
            let a = auto(&number(Bounds { lo, hi }));
            for text in ["0", "0.5", "1", "1.0", "1.5", "-0.5", "-2", "-2.5", "-10", "-10.5", "4.25", "7", "-7.125"] {
                let x: f64 = text.parse().unwrap();
                let inside = lo.is_none_or(|l| x >= l as f64) && hi.is_none_or(|h| x <= h as f64);
                assert_eq!(a.matches(text.as_bytes()), inside, "{text} in [{lo:?}, {hi:?}]");
            }
        }
    }
}
