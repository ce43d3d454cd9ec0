use super::*;
use crate::automaton::{Automaton, DEAD};
use rand::{Rng, SeedableRng};
use serde_json::json;

/// A random member of the automaton's language: random live bytes, then
/// (past `soft` bytes) only bytes that bring a complete value closer.
fn draw(a: &Automaton, rng: &mut impl Rng, soft: usize) -> String {
    let mut out = Vec::new();
    let mut s = a.start();
    loop {
        if a.is_accepting(s) && (rng.random_bool(0.3) || out.len() > soft || !a.can_continue(s)) {
            return String::from_utf8(out).expect("the automaton enforces UTF-8");
        }
        let here = a.dist(s);
        // ASCII bytes only keep the draw simple; every schema here has ASCII paths.
        let next: Vec<(u8, u32)> = (0x20u8..0x7f)
            .map(|b| (b, a.next(s, b)))
            .filter(|&(_, t)| t != DEAD && (out.len() <= soft || a.dist(t) < here))
            .collect();
        let (b, t) = next[rng.random_range(0..next.len())];
        out.push(b);
        s = t;
    }
}

#[test]
fn generated_values_validate() {
    let schemas = [
        json!({"type": "integer", "minimum": 1, "maximum": 5}),
        json!({"type": "integer", "exclusiveMinimum": -20, "exclusiveMaximum": 300}),
        json!({"type": "number", "minimum": -2.5, "maximum": 7}),
        json!({"type": "number", "exclusiveMaximum": 1, "minimum": 0}),
        json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}, "c": {"type": "string", "maxLength": 5}},
               "required": ["a"], "additionalProperties": false}),
        json!({"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "null"}, "c": {"type": "null"},
               "d": {"type": "null"}, "e": {"type": "null"}, "f": {"type": "null"}},
               "minProperties": 2, "maxProperties": 3, "additionalProperties": false}),
        json!({"type": "object", "additionalProperties": {"type": "integer", "maximum": 9}, "minProperties": 1, "maxProperties": 2}),
        json!({"type": "string", "format": "ipv4"}),
        json!({"type": "string", "format": "ipv6"}),
        json!({"type": "string", "format": "hostname"}),
        json!({"type": "string", "format": "uri"}),
        json!({"enum": [1, "two", null, [3], {"four": 4}, true]}),
        json!({"const": {"k": [1, {"x": "y"}]}}),
        json!({"type": "array", "prefixItems": [{"type": "integer", "minimum": 0, "maximum": 3}, {"type": "string", "maxLength": 3}],
               "items": {"type": "boolean"}, "maxItems": 4}),
        json!({"type": "array", "prefixItems": [{"type": "null"}, {"type": "integer"}], "items": false, "minItems": 1}),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for schema in schemas {
        let re = schema_regex(&schema, Options::default()).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let a = Automaton::from_regex(&re, 64 << 20).unwrap();
        let v = jsonschema::options().should_validate_formats(true).build(&schema).unwrap();
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..300 {
            let text = draw(&a, &mut rng, 40);
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{schema}: {text:?} is not JSON: {e}"));
            assert!(v.is_valid(&value), "{schema}: {text} does not validate");
            distinct.insert(text);
        }
        assert!(distinct.len() > 1 || schema.get("const").is_some(), "{schema}: one value only");
    }
}
