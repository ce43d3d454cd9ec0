//! String `format`s as regular expressions over the string's content (the
//! text between the quotes). Each accepts only text its format's validator
//! accepts (a subset where the full grammar is impractical: URIs are bounded in
//! length and take a host name, not an IP literal).

const OCTET: &str = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
const LABEL: &str = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";

fn ipv6() -> String {
    let h = "[0-9a-fA-F]{1,4}";
    // RFC 4291 text forms: eight groups, or `::` standing for one or more zero groups.
    let mut alts = vec![format!("(?:{h}:){{7}}{h}")];
    for left in 0..=7usize {
        for right in 0..=(7 - left) {
            if left + right > 7 {
                continue;
            }
            let l = if left == 0 { String::new() } else { format!("(?:{h}:){{{}}}{h}", left - 1) };
            let r = if right == 0 { String::new() } else { format!("(?:{h}:){{{}}}{h}", right - 1) };
            alts.push(format!("{l}::{r}"));
        }
    }
    format!("(?:{})", alts.join("|"))
}

/// RFC 3986 absolute URIs, bounded: `scheme:` then `//host[:port]` and an
/// absolute path, or a rootless path; an optional query and fragment.
fn uri() -> String {
    let pchar = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})";
    let segments = format!("(?:/{pchar}{{0,40}}){{0,8}}");
    let tail = format!(r"(?:\?(?:{pchar}|[/?]){{0,80}})?(?:#(?:{pchar}|[/?]){{0,40}})?");
    let host = format!(r"{LABEL}(?:\.{LABEL}){{0,8}}");
    format!(r"[A-Za-z][A-Za-z0-9+.-]{{0,15}}:(?://{host}(?::[0-9]{{1,5}})?{segments}|{pchar}{{1,40}}{segments}){tail}")
}

/// The regex of `format`'s strings, if supported.
pub fn regex(format: &str) -> Option<String> {
    let date = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])";
    let time = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
    Some(match format {
        "date" => date.to_string(),
        "time" => time.to_string(),
        "date-time" => format!("{date}T{time}"),
        "uuid" => r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}".into(),
        "email" => r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,4}".into(),
        "ipv4" => format!(r"{OCTET}(?:\.{OCTET}){{3}}"),
        "ipv6" => ipv6(),
        "hostname" => format!(r"{LABEL}(?:\.{LABEL}){{0,8}}"),
        "uri" => uri(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automaton::Automaton;

    fn auto(f: &str) -> Automaton {
        Automaton::from_regex(&regex(f).unwrap(), 64 << 20).unwrap()
    }

    #[test]
    fn formats_accept_and_refuse() {
        let cases: [(&str, &[&str], &[&str]); 4] = [
            ("ipv4", &["192.168.0.1", "0.0.0.0", "255.255.255.255"], &["256.1.1.1", "1.2.3", "01.2.3.4"]),
            ("ipv6", &["::1", "fe80::1:2", "2001:db8:0:0:0:0:2:1", "::"], &["1:2:3:4:5:6:7:8:9", ":::", "12345::"]),
            ("hostname", &["example.com", "a-b.c", "localhost"], &["-a.com", "a..b", "a_b.com"]),
            (
                "uri",
                &["https://example.com/a?b=c#d", "urn:isbn:0451450523", "mailto:x@y.z"],
                &["no scheme", "1http://x", "http://a b"],
            ),
        ];
        for (f, good, bad) in cases {
            let a = auto(f);
            for g in good {
                assert!(a.matches(g.as_bytes()), "{f}: {g}");
            }
            for b in bad {
                assert!(!a.matches(b.as_bytes()), "{f}: {b}");
            }
        }
    }
}
