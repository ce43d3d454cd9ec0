//! Bearer keys: reading them from a request and checking them against a stored
//! digest in constant time (the time taken does not depend on how much of the
//! key matched).

use axum::http::HeaderMap;

/// The key of `Authorization: Bearer KEY`, trimmed; `None` if absent or empty.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// SHA-256 of a key, as the admin key is kept in memory.
pub fn digest(key: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes()).into()
}

/// Whether the request's bearer key has this digest; compares digests, not keys.
pub fn matches(headers: &HeaderMap, expected: &[u8; 32]) -> bool {
    let d = digest(bearer(headers).unwrap_or(""));
    d.iter().zip(expected).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_keys_are_read_and_compared_by_digest() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer  sekrit ".parse().unwrap());
        assert_eq!(bearer(&h), Some("sekrit"));
        assert!(matches(&h, &digest("sekrit")));
        assert!(!matches(&h, &digest("sekri")));
        assert!(!matches(&HeaderMap::new(), &digest("sekrit")));
    }
}
