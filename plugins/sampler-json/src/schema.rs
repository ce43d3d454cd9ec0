//! JSON Schema → a regular expression over the output bytes.
//!
//! Why a regex: with a fixed property order and a bounded nesting depth every
//! schema people send with `response_format` is a regular language, and a
//! determinized automaton makes each decoding step a table walk. Properties are
//! emitted in the schema's order (the same choice as Outlines); optional ones
//! may be skipped. Recursion (`$ref` to an ancestor) and schema-less values
//! are unrolled to `max_depth` levels.
//!
//! Supported: `type` (one or a list), `properties`/`required`,
//! `additionalProperties` as a schema when there are no `properties`, `items`,
//! `minItems`/`maxItems`, `enum`, `const`, `anyOf`/`oneOf`, single-element
//! `allOf`, `$ref` into `#/$defs` or `#/definitions`, string
//! `minLength`/`maxLength`/`pattern`/`format` (date, time, date-time, uuid,
//! email), and a `minimum >= 0` that drops the sign of numbers. Anything else
//! that changes which values are valid is refused with its name, never ignored.

use serde_json::Value;

/// How much whitespace the output may have between tokens of JSON.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Whitespace {
    /// An optional single space after `:` and `,`; nothing else.
    Compact,
    /// Up to 16 whitespace characters wherever JSON allows them.
    Flexible,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub whitespace: Whitespace,
    /// Nesting levels unrolled for recursive schemas and schema-less values.
    pub max_depth: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self { whitespace: Whitespace::Compact, max_depth: 3 }
    }
}

const STRING_CHAR: &str = r#"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})"#;
const INTEGER: &str = r"(?:0|[1-9][0-9]{0,15})";
const FRACTION_EXP: &str = r"(?:\.[0-9]{1,15})?(?:[eE][+-]?[0-9]{1,3})?";
/// A language with no string in it (for branches cut at the depth limit).
const NOTHING: &str = r"[^\s\S]";

struct Ctx<'a> {
    root: &'a Value,
    opts: Options,
}

/// The regex every output matching `schema` (and only such output) matches.
pub fn schema_regex(schema: &Value, opts: Options) -> Result<String, String> {
    let cx = Ctx { root: schema, opts };
    cx.value(schema, 0, "#")
}

/// Any JSON object (the `json_object` response format).
pub fn any_object_regex(opts: Options) -> String {
    let cx = Ctx { root: &Value::Null, opts };
    cx.any_object(opts.max_depth)
}

impl Ctx<'_> {
    fn ws(&self) -> &'static str {
        match self.opts.whitespace {
            Whitespace::Compact => "",
            Whitespace::Flexible => r"[ \t\n]{0,16}",
        }
    }

    /// After `:` and `,`.
    fn sep_ws(&self) -> &'static str {
        match self.opts.whitespace {
            Whitespace::Compact => " ?",
            Whitespace::Flexible => r"[ \t\n]{0,16}",
        }
    }

    fn comma(&self) -> String {
        format!("{},{}", self.ws(), self.sep_ws())
    }

    fn colon(&self) -> String {
        format!("{}:{}", self.ws(), self.sep_ws())
    }

    fn open(&self, c: char) -> String {
        format!(r"\{c}{}", self.ws())
    }

    fn close(&self, c: char) -> String {
        format!(r"{}\{c}", self.ws())
    }

    fn any_scalar(&self) -> String {
        format!(r#"(?:"{STRING_CHAR}*"|-?{INTEGER}{FRACTION_EXP}|true|false|null)"#)
    }

    fn any_value(&self, depth: usize) -> String {
        if depth == 0 {
            return self.any_scalar();
        }
        format!("(?:{}|{}|{})", self.any_scalar(), self.any_object(depth), self.any_array(depth))
    }

    fn any_object(&self, depth: usize) -> String {
        let v = self.any_value(depth.saturating_sub(1));
        let member = format!(r#""{STRING_CHAR}*"{}{v}"#, self.colon());
        format!("{}(?:{member}(?:{}{member})*)?{}", self.open('{'), self.comma(), self.close('}'))
    }

    fn any_array(&self, depth: usize) -> String {
        let v = self.any_value(depth.saturating_sub(1));
        format!("{}(?:{v}(?:{}{v})*)?{}", self.open('['), self.comma(), self.close(']'))
    }

    fn value(&self, s: &Value, depth: usize, at: &str) -> Result<String, String> {
        if depth > self.opts.max_depth + 8 {
            return Ok(NOTHING.into());
        }
        let obj = match s {
            Value::Bool(true) => return Ok(self.any_value(self.opts.max_depth.saturating_sub(depth))),
            Value::Bool(false) => return Err(format!("{at}: the schema `false` allows no value")),
            Value::Object(o) => o,
            _ => return Err(format!("{at}: a schema must be an object or a boolean")),
        };
        for k in [
            "not",
            "if",
            "then",
            "else",
            "patternProperties",
            "dependentRequired",
            "dependentSchemas",
            "uniqueItems",
            "contains",
            "multipleOf",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "maximum",
            "minProperties",
            "maxProperties",
            "propertyNames",
        ] {
            if obj.contains_key(k) {
                return Err(format!("{at}: the keyword `{k}` is not supported by constrained decoding"));
            }
        }
        if let Some(r) = obj.get("$ref") {
            let r = r.as_str().ok_or(format!("{at}: `$ref` must be a string"))?;
            // Past the depth limit a recursive reference admits nothing, which
            // leaves an optional or empty-able place for it empty.
            if depth >= self.opts.max_depth + 4 {
                return Ok(NOTHING.into());
            }
            let target = self.resolve(r).ok_or(format!("{at}: cannot resolve `$ref` {r}"))?;
            return self.value(target, depth + 1, r);
        }
        if let Some(c) = obj.get("const") {
            return Ok(literal(c));
        }
        if let Some(e) = obj.get("enum") {
            let e = e.as_array().ok_or(format!("{at}: `enum` must be an array"))?;
            if e.is_empty() {
                return Err(format!("{at}: an empty `enum` allows no value"));
            }
            return Ok(format!("(?:{})", e.iter().map(literal).collect::<Vec<_>>().join("|")));
        }
        for k in ["anyOf", "oneOf"] {
            if let Some(alts) = obj.get(k) {
                let alts = alts
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .ok_or(format!("{at}: `{k}` must be a non-empty array"))?;
                let parts = alts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.value(a, depth, &format!("{at}/{k}/{i}")))
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(format!("(?:{})", parts.join("|")));
            }
        }
        if let Some(all) = obj.get("allOf") {
            match all.as_array().map(|a| a.as_slice()) {
                Some([one]) => return self.value(one, depth, &format!("{at}/allOf/0")),
                _ => return Err(format!("{at}: `allOf` with more than one schema is not supported")),
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .map(|t| t.as_str().ok_or(format!("{at}: `type` entries must be strings")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{at}: `type` must be a string or an array")),
            None if obj.contains_key("properties") || obj.contains_key("additionalProperties") => vec!["object"],
            None if obj.contains_key("items") => vec!["array"],
            None => return Ok(self.any_value(self.opts.max_depth.saturating_sub(depth))),
        };
        let parts = types.iter().map(|t| self.typed(t, obj, depth, at)).collect::<Result<Vec<_>, _>>()?;
        Ok(if parts.len() == 1 { parts.into_iter().next().unwrap() } else { format!("(?:{})", parts.join("|")) })
    }

    fn typed(&self, t: &str, o: &serde_json::Map<String, Value>, depth: usize, at: &str) -> Result<String, String> {
        let non_negative = o.get("minimum").and_then(Value::as_f64).is_some_and(|m| m >= 0.0);
        if let Some(m) = o.get("minimum")
            && !m.is_number()
        {
            return Err(format!("{at}: `minimum` must be a number"));
        }
        if o.get("minimum").and_then(Value::as_f64).is_some_and(|m| m > 0.0) {
            return Err(format!("{at}: only `minimum: 0` is supported (it removes the sign)"));
        }
        let sign = if non_negative { "" } else { "-?" };
        Ok(match t {
            "null" => "null".into(),
            "boolean" => "(?:true|false)".into(),
            "integer" => format!("{sign}{INTEGER}"),
            "number" => format!("{sign}{INTEGER}{FRACTION_EXP}"),
            "string" => self.string(o, at)?,
            "array" => self.array(o, depth, at)?,
            "object" => self.object(o, depth, at)?,
            other => return Err(format!("{at}: unknown type `{other}`")),
        })
    }

    fn string(&self, o: &serde_json::Map<String, Value>, at: &str) -> Result<String, String> {
        if let Some(p) = o.get("pattern") {
            let p = p.as_str().ok_or(format!("{at}: `pattern` must be a string"))?;
            let p = p.strip_prefix('^').unwrap_or(p);
            let p = p.strip_suffix('$').unwrap_or(p);
            regex_syntax::Parser::new().parse(p).map_err(|e| format!("{at}: invalid `pattern`: {e}"))?;
            return Ok(format!(r#""(?:{p})""#));
        }
        if let Some(f) = o.get("format").and_then(Value::as_str) {
            let date = r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])";
            let time =
                r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
            let body = match f {
                "date" => date.to_string(),
                "time" => time.to_string(),
                "date-time" => format!("{date}T{time}"),
                "uuid" => r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}".into(),
                "email" => r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,4}".into(),
                other => return Err(format!("{at}: string format `{other}` is not supported")),
            };
            return Ok(format!(r#""{body}""#));
        }
        let min = count(o, "minLength", at)?.unwrap_or(0);
        let max = count(o, "maxLength", at)?;
        let rep = match max {
            Some(max) if max < min => return Err(format!("{at}: `maxLength` is below `minLength`")),
            Some(max) => format!("{{{min},{max}}}"),
            None if min == 0 => "*".into(),
            None => format!("{{{min},}}"),
        };
        Ok(format!(r#""{STRING_CHAR}{rep}""#))
    }

    fn array(&self, o: &serde_json::Map<String, Value>, depth: usize, at: &str) -> Result<String, String> {
        if o.contains_key("prefixItems") {
            return Err(format!("{at}: `prefixItems` is not supported"));
        }
        let item = match o.get("items") {
            Some(i) => self.value(i, depth + 1, &format!("{at}/items"))?,
            None => self.any_value(self.opts.max_depth.saturating_sub(depth + 1)),
        };
        let min = count(o, "minItems", at)?.unwrap_or(0);
        let max = count(o, "maxItems", at)?;
        let more = format!("(?:{}{item})", self.comma());
        let body = match (min, max) {
            (_, Some(max)) if max < min => return Err(format!("{at}: `maxItems` is below `minItems`")),
            (_, Some(0)) => String::new(),
            (0, None) => format!("(?:{item}{more}*)?"),
            (0, Some(max)) => format!("(?:{item}{more}{{0,{}}})?", max - 1),
            (min, None) => format!("{item}{more}{{{},}}", min - 1),
            (min, Some(max)) => format!("{item}{more}{{{},{}}}", min - 1, max - 1),
        };
        Ok(format!("{}{body}{}", self.open('['), self.close(']')))
    }

    fn object(&self, o: &serde_json::Map<String, Value>, depth: usize, at: &str) -> Result<String, String> {
        let empty = serde_json::Map::new();
        let props = match o.get("properties") {
            Some(Value::Object(p)) => p,
            Some(_) => return Err(format!("{at}: `properties` must be an object")),
            None => &empty,
        };
        if props.is_empty() {
            // A map: any keys, values of `additionalProperties` (or anything).
            let v = match o.get("additionalProperties") {
                Some(s @ Value::Object(_)) => self.value(s, depth + 1, &format!("{at}/additionalProperties"))?,
                Some(Value::Bool(false)) => return Ok(format!("{}{}", self.open('{'), self.close('}'))),
                _ => self.any_value(self.opts.max_depth.saturating_sub(depth + 1)),
            };
            let member = format!(r#""{STRING_CHAR}*"{}{v}"#, self.colon());
            return Ok(format!("{}(?:{member}(?:{}{member})*)?{}", self.open('{'), self.comma(), self.close('}')));
        }
        let required: Vec<&str> = match o.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            Some(_) => return Err(format!("{at}: `required` must be an array of names")),
            None => Vec::new(),
        };
        for r in &required {
            if !props.contains_key(*r) {
                return Err(format!("{at}: required property `{r}` is not among the properties"));
            }
        }
        let mut members = Vec::new();
        for (name, sub) in props {
            let key = literal(&Value::String(name.clone()));
            let v = self.value(sub, depth + 1, &format!("{at}/properties/{name}"))?;
            members.push((format!("{key}{}{v}", self.colon()), required.contains(&name.as_str())));
        }
        let body = self.members(&members, 0, true);
        Ok(format!("{}{body}{}", self.open('{'), self.close('}')))
    }

    /// Members `i..` in order, optional ones skippable, commas only between
    /// members present. `first`: nothing has been written yet.
    fn members(&self, m: &[(String, bool)], i: usize, first: bool) -> String {
        let Some((member, required)) = m.get(i) else { return String::new() };
        let comma = self.comma();
        match (first, *required) {
            (false, true) => format!("{comma}{member}{}", self.members(m, i + 1, false)),
            (false, false) => format!("(?:{comma}{member})?{}", self.members(m, i + 1, false)),
            (true, true) => format!("{member}{}", self.members(m, i + 1, false)),
            (true, false) => {
                format!("(?:{member}{}|{})", self.members(m, i + 1, false), self.members(m, i + 1, true))
            }
        }
    }

    fn resolve(&self, r: &str) -> Option<&Value> {
        let path = r.strip_prefix('#')?;
        if path.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(path)
    }
}

fn count(o: &serde_json::Map<String, Value>, key: &str, at: &str) -> Result<Option<u64>, String> {
    match o.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n <= 10_000)
            .map(Some)
            .ok_or(format!("{at}: `{key}` must be an integer from 0 to 10000")),
    }
}

/// The exact JSON text of `v`, as a regex.
fn literal(v: &Value) -> String {
    regex_syntax::escape(&serde_json::to_string(v).expect("a JSON value serializes"))
}

#[cfg(test)]
mod tests {
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
        let e = schema_regex(&json!({"type": "integer", "maximum": 5}), Options::default()).unwrap_err();
        assert!(e.contains("maximum"), "{e}");
    }
}
