use super::*;
use crate::automaton::Automaton;
use serde_json::json;

fn auto(schema: Value) -> Automaton {
    Automaton::from_regex(&schema_regex(&schema, Options::default()).unwrap(), 64 << 20).unwrap()
}

#[test]
fn objects_with_required_and_optional_properties() {
    let a = auto(json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 10},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 3},
            "ok": {"type": ["boolean", "null"]}
        },
        "required": ["age"]
    }));
    for good in [
        r#"{"age":3}"#,
        r#"{"name": "Bob", "age": -12}"#,
        r#"{"age":0,"tags":["a","b"],"ok":null}"#,
        r#"{"name":"x","age":1,"ok":true}"#,
    ] {
        assert!(a.matches(good.as_bytes()), "{good}");
    }
    for bad in [
        r#"{}"#,
        r#"{"name":"x"}"#,
        r#"{"age":01}"#,
        r#"{"age":1,}"#,
        r#"{"age":1,"tags":["c"]}"#,
        r#"{"age":1} "#,
        r#"{"name":"01234567890","age":1}"#,
    ] {
        assert!(!a.matches(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn refs_any_of_and_nesting() {
    let a = auto(json!({
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
        "type": "object",
        "properties": {"shape": {"anyOf": [{"$ref": "#/$defs/point"}, {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 1}]}},
        "required": ["shape"]
    }));
    assert!(a.matches(br#"{"shape":{"x":1.5,"y":-2e3}}"#));
    assert!(a.matches(br#"{"shape":[{"x":1,"y":2},{"x":0,"y":0}]}"#));
    assert!(!a.matches(br#"{"shape":[]}"#));
}

#[test]
fn recursion_is_unrolled_to_the_depth_limit() {
    let a = auto(json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
        "required": ["name"]
    }));
    assert!(a.matches(br#"{"name":"a","children":[{"name":"b","children":[{"name":"c"}]}]}"#));
}

#[test]
fn any_object_and_formats() {
    let a = Automaton::from_regex(&any_object_regex(Options::default()), 64 << 20).unwrap();
    assert!(a.matches(br#"{"a": [1, {"b": null}], "c": "d"}"#));
    assert!(!a.matches(br#"[1]"#) && !a.matches(br#"{"a":}"#));
    let d = auto(json!({"type": "string", "format": "date"}));
    assert!(d.matches(br#""2024-02-29""#) && !d.matches(br#""2024-13-01""#));
}

#[test]
fn unsupported_keywords_are_named() {
    for k in ["multipleOf", "uniqueItems", "patternProperties", "not"] {
        let e = schema_regex(&json!({"type": "integer", k: 2}), Options::default()).unwrap_err();
        assert!(e.contains(k), "{e}");
    }
    let e = schema_regex(&json!({"type": "string", "format": "isbn"}), Options::default()).unwrap_err();
    assert!(e.contains("isbn"), "{e}");
}
