//! JSON Schema → a regular expression over the output bytes.
//!
//! Why a regex: with a fixed property order and a bounded nesting depth every
//! schema people send with `response_format` is a regular language, and a
//! determinized automaton makes each decoding step a table walk. Properties are
//! emitted in the schema's order (the same choice as Outlines); optional ones
//! may be skipped. Recursion (`$ref` to an ancestor) and schema-less values
//! are unrolled to `max_depth` levels.
//!
//! Supported: `type` (one or a list), `properties`/`required` (up to four
//! scalar properties in any order, other objects in the schema's order),
//! `additionalProperties` (`false`, or a schema when there are no
//! `properties`), `minProperties`/`maxProperties`, `items`, `prefixItems`,
//! `minItems`/`maxItems`, `enum` and `const` of any JSON value, `anyOf`/`oneOf`,
//! single-element `allOf`, `$ref` into `#/$defs` or `#/definitions`, string
//! `minLength`/`maxLength`/`pattern`/`format` ([`crate::formats`]), and
//! `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`
//! ([`crate::numbers`]). Anything else that changes which values are valid is
//! refused with its name, never ignored.

use serde_json::Value;

use crate::{formats, numbers};

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
    /// Python literals instead of JSON (`True`, `False`, `None`; strings,
    /// numbers, lists and dicts are written as in JSON, which Python reads).
    pub python: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self { whitespace: Whitespace::Compact, max_depth: 3, python: false }
    }
}

/// A character of a JSON string: `\u` escapes of surrogates are left out
/// (a lone one is not text, and parsers such as serde_json refuse it;
/// characters past the BMP are written as UTF-8 instead).
const STRING_CHAR: &str =
    r#"(?:[^"\\\x00-\x1F]|\\["\\/bfnrt]|\\u(?:[0-9a-cA-Ce-fE-F][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))"#;
const INTEGER: &str = r"(?:0|[1-9][0-9]{0,15})";
const FRACTION_EXP: &str = r"(?:\.[0-9]{1,15})?(?:[eE][+-]?[0-9]{1,3})?";
/// Objects of at most this many scalar properties take them in any order.
const ANY_ORDER: usize = 4;
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

/// A Python call `name(k=v, ...)` whose keyword arguments follow the object
/// schema `params` (values as Python literals), for tool formats that write
/// calls as Python.
pub fn python_call_regex(name: &str, params: &Value, opts: Options) -> Result<String, String> {
    let cx = Ctx { root: params, opts: Options { python: true, ..opts } };
    let at = format!("{name}.parameters");
    let o = params.as_object().ok_or(format!("{at}: must be an object schema"))?;
    let empty = serde_json::Map::new();
    let props = match o.get("properties") {
        Some(Value::Object(p)) => p,
        None => &empty,
        Some(_) => return Err(format!("{at}: `properties` must be an object")),
    };
    let body = if props.is_empty() { String::new() } else { cx.properties(o, props, 0, &at, |k| format!("{k}="))? };
    let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid || props.keys().any(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')) {
        return Err(format!("{at}: Python calls need identifier names (letters, digits, _)"));
    }
    Ok(format!(r"{}\({body}\)", regex_syntax::escape(name)))
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
        format!(r#"(?:"{STRING_CHAR}*"|-?{INTEGER}{FRACTION_EXP}|{}|{})"#, self.boolean(), self.null())
    }

    fn boolean(&self) -> &'static str {
        if self.opts.python { "(?:True|False)" } else { "(?:true|false)" }
    }

    fn null(&self) -> &'static str {
        if self.opts.python { "None" } else { "null" }
    }

    /// The exact text of `v` in the output's syntax, as a regex.
    fn literal(&self, v: &Value) -> String {
        if !self.opts.python {
            return literal(v);
        }
        match v {
            Value::Null => "None".into(),
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Array(a) => {
                format!(r"\[{}\]", a.iter().map(|x| self.literal(x)).collect::<Vec<_>>().join(&self.comma()))
            }
            Value::Object(o) => format!(
                r"\{{{}\}}",
                o.iter()
                    .map(|(k, x)| format!("{}{}{}", literal(&Value::String(k.clone())), self.colon(), self.literal(x)))
                    .collect::<Vec<_>>()
                    .join(&self.comma())
            ),
            other => literal(other),
        }
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
            return Ok(self.literal(c));
        }
        if let Some(e) = obj.get("enum") {
            let e = e.as_array().ok_or(format!("{at}: `enum` must be an array"))?;
            if e.is_empty() {
                return Err(format!("{at}: an empty `enum` allows no value"));
            }
            return Ok(format!("(?:{})", e.iter().map(|x| self.literal(x)).collect::<Vec<_>>().join("|")));
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
        Ok(match t {
            "null" => self.null().into(),
            "boolean" => self.boolean().into(),
            "integer" => match bounds(o, true, at)? {
                None => format!("-?{INTEGER}"),
                Some(b) => numbers::integer(b),
            },
            "number" => match bounds(o, false, at)? {
                None => format!("-?{INTEGER}{FRACTION_EXP}"),
                Some(b) => numbers::number(b),
            },
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
            let body = formats::regex(f).ok_or(format!("{at}: string format `{f}` is not supported"))?;
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
        let prefix: Vec<String> = match o.get("prefixItems") {
            None => Vec::new(),
            Some(Value::Array(p)) => p
                .iter()
                .enumerate()
                .map(|(i, s)| self.value(s, depth + 1, &format!("{at}/prefixItems/{i}")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("{at}: `prefixItems` must be an array of schemas")),
        };
        // With prefixItems, `items: false` closes the array after them.
        let closed = matches!(o.get("items"), Some(Value::Bool(false)));
        let item = match o.get("items") {
            Some(Value::Bool(false)) if !prefix.is_empty() => String::new(),
            Some(i) => self.value(i, depth + 1, &format!("{at}/items"))?,
            None => self.any_value(self.opts.max_depth.saturating_sub(depth + 1)),
        };
        let min = count(o, "minItems", at)?.unwrap_or(0);
        let max = count(o, "maxItems", at)?;
        if !prefix.is_empty() {
            let max = if closed { Some(max.map_or(prefix.len() as u64, |m| m.min(prefix.len() as u64))) } else { max };
            if max.is_some_and(|m| m < min) {
                return Err(format!("{at}: `maxItems` (or a closed `prefixItems`) is below `minItems`"));
            }
            let body = self.elements(&prefix, &item, 0, min, max);
            return Ok(format!("{}{body}{}", self.open('['), self.close(']')));
        }
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
            let more = format!("(?:{}{member})", self.comma());
            let min = count(o, "minProperties", at)?.unwrap_or(0);
            let body = match count(o, "maxProperties", at)? {
                Some(max) if max < min => return Err(format!("{at}: `maxProperties` is below `minProperties`")),
                Some(0) => String::new(),
                Some(max) if min == 0 => format!("(?:{member}{more}{{0,{}}})?", max - 1),
                Some(max) => format!("{member}{more}{{{},{}}}", min - 1, max - 1),
                None if min == 0 => format!("(?:{member}{more}*)?"),
                None => format!("{member}{more}{{{},}}", min - 1),
            };
            return Ok(format!("{}{body}{}", self.open('{'), self.close('}')));
        }
        let key = |name: &str| format!("{}{}", literal(&Value::String(name.into())), self.colon());
        let body = self.properties(o, props, depth, at, key)?;
        Ok(format!("{}{body}{}", self.open('{'), self.close('}')))
    }

    /// An object's members (`key` writes a property's name and separator):
    /// required ones always, optional ones maybe, within the property counts.
    fn properties(
        &self,
        o: &serde_json::Map<String, Value>,
        props: &serde_json::Map<String, Value>,
        depth: usize,
        at: &str,
        key: impl Fn(&str) -> String,
    ) -> Result<String, String> {
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
        // Any order only where it stays cheap: a few scalar properties. (An
        // object-valued property first would make the automaton track every
        // alternative of an enclosing `anyOf` at once.)
        let scalar = |v: &Value| {
            let t = |x: &Value| matches!(x.as_str(), Some("string" | "integer" | "number" | "boolean" | "null"));
            match (v.get("type"), v.get("enum").or(v.get("const"))) {
                (_, Some(e)) => e.as_array().map_or(!e.is_object() && !e.is_array(), |a| {
                    v.get("const").is_none() && a.iter().all(|x| !x.is_object() && !x.is_array())
                }),
                (Some(Value::Array(ts)), None) => ts.iter().all(t),
                (Some(x), None) => t(x),
                (None, None) => false,
            }
        };
        let any_order = props.len() <= ANY_ORDER && props.values().all(scalar);
        let mut members = Vec::new();
        for (name, sub) in props {
            let v = self.value(sub, depth + 1, &format!("{at}/properties/{name}"))?;
            members.push((format!("{}{v}", key(name)), required.contains(&name.as_str())));
        }
        let min = count(o, "minProperties", at)?.unwrap_or(0) as usize;
        let max = count(o, "maxProperties", at)?.map(|m| m as usize);
        let needed = members.iter().filter(|m| m.1).count();
        if min > members.len() || max.is_some_and(|m| m < needed.max(min)) {
            return Err(format!("{at}: `minProperties`/`maxProperties` leave no object these properties can form"));
        }
        let body = if any_order {
            // Few properties: any order (the model's own), every subset that
            // holds the required ones and fits the counts.
            self.any_order(&members, min, max)
        } else if min > needed || max.is_some_and(|m| m < members.len()) {
            if members.len() > 8 {
                return Err(format!(
                    "{at}: `minProperties`/`maxProperties` are supported on objects of at most 8 properties"
                ));
            }
            self.counted(&members, 0, true, 0, min, max)
        } else {
            self.members(&members, 0, true)
        };
        Ok(body)
    }

    /// Array elements from index `i` on: the prefix schemas first, then
    /// `item` (empty: none allowed); at least `min`, at most `max` in all.
    fn elements(&self, prefix: &[String], item: &str, i: u64, min: u64, max: Option<u64>) -> String {
        if max.is_some_and(|m| i >= m) {
            return String::new();
        }
        let sep = if i == 0 { String::new() } else { self.comma() };
        let this = match prefix.get(i as usize) {
            Some(p) => p.clone(),
            None if item.is_empty() => return String::new(),
            None => {
                // Past the prefix: a plain repetition of `item`.
                let more = format!("(?:{}{item})", self.comma());
                let need = min.saturating_sub(i);
                let first = format!("{sep}{item}");
                let body = match max.map(|m| m - i) {
                    Some(left) => format!("{first}{more}{{{},{}}}", need.saturating_sub(1), left - 1),
                    None => format!("{first}{more}{{{},}}", need.saturating_sub(1)),
                };
                return if need == 0 { format!("(?:{body})?") } else { body };
            }
        };
        let rest = self.elements(prefix, item, i + 1, min, max);
        let here = format!("{sep}{this}{rest}");
        if i < min { here } else { format!("(?:{here})?") }
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

    /// Every order of every subset of `m` holding the required members, of
    /// `min..=max` members.
    fn any_order(&self, m: &[(String, bool)], min: usize, max: Option<usize>) -> String {
        let mut alts = Vec::new();
        let mut seq = Vec::new();
        fn walk(
            m: &[(String, bool)],
            used: &mut Vec<usize>,
            min: usize,
            max: usize,
            comma: &str,
            alts: &mut Vec<String>,
        ) {
            let complete = m.iter().enumerate().all(|(i, x)| !x.1 || used.contains(&i));
            if complete && used.len() >= min {
                alts.push(used.iter().map(|&i| m[i].0.as_str()).collect::<Vec<_>>().join(comma));
            }
            if used.len() == max {
                return;
            }
            for i in 0..m.len() {
                if !used.contains(&i) {
                    used.push(i);
                    walk(m, used, min, max, comma, alts);
                    used.pop();
                }
            }
        }
        walk(m, &mut seq, min, max.unwrap_or(m.len()), &self.comma(), &mut alts);
        format!(
            "(?:{})",
            alts.iter()
                .map(|a| if a.is_empty() { String::new() } else { format!("(?:{a})") })
                .collect::<Vec<_>>()
                .join("|")
        )
    }

    /// [`members`](Self::members) in schema order, counting members present
    /// (`c` so far) to keep `min..=max` of them.
    fn counted(&self, m: &[(String, bool)], i: usize, first: bool, c: usize, min: usize, max: Option<usize>) -> String {
        if max.is_some_and(|x| c > x) || c + (m.len() - i) < min {
            return NOTHING.into();
        }
        let Some((member, required)) = m.get(i) else { return String::new() };
        let lead = if first { String::new() } else { self.comma() };
        let with = format!("{lead}{member}{}", self.counted(m, i + 1, false, c + 1, min, max));
        if *required {
            return with;
        }
        format!("(?:{with}|{})", self.counted(m, i + 1, first, c, min, max))
    }

    fn resolve(&self, r: &str) -> Option<&Value> {
        let path = r.strip_prefix('#')?;
        if path.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(path)
    }
}

/// The largest bound magnitude: numbers of up to 15 digits.
const MAX_BOUND: f64 = 1e15;

/// A number's `minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum` as
/// inclusive whole-number bounds (`None`: none given). For integers they are
/// exact; for numbers a fractional or exclusive lower bound moves up to the
/// next whole number and a fractional upper bound down (a narrower range,
/// never a wider one: every value generated still validates).
fn bounds(o: &serde_json::Map<String, Value>, integer: bool, at: &str) -> Result<Option<numbers::Bounds>, String> {
    let get = |k: &str| -> Result<Option<f64>, String> {
        match o.get(k) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.abs() < MAX_BOUND => Ok(Some(x)),
                Some(_) => Err(format!("{at}: `{k}` must be within ±10^15 for constrained decoding")),
                None => Err(format!("{at}: `{k}` must be a number")),
            },
        }
    };
    let (min, max, xmin, xmax) = (get("minimum")?, get("maximum")?, get("exclusiveMinimum")?, get("exclusiveMaximum")?);
    if min.is_none() && max.is_none() && xmin.is_none() && xmax.is_none() {
        return Ok(None);
    }
    let lo = [min.map(f64::ceil), xmin.map(|x| x.floor() + 1.0)]
        .into_iter()
        .flatten()
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    // An integer below an exclusive maximum h is at most ceil(h) - 1; a
    // number is kept at or below that whole number too.
    let hi = [max.map(f64::floor), xmax.map(|x| x.ceil() - 1.0)]
        .into_iter()
        .flatten()
        .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b))));
    if let (Some(l), Some(h)) = (lo, hi)
        && l > h
    {
        return Err(format!(
            "{at}: the bounds leave no {} value",
            if integer { "integer" } else { "whole-number-bounded" }
        ));
    }
    Ok(Some(numbers::Bounds { lo: lo.map(|x| x as i64), hi: hi.map(|x| x as i64) }))
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
mod tests;

/// Values drawn at random from each schema's automaton validate against the
/// schema under an independent validator (`jsonschema`, formats checked).
#[cfg(test)]
mod generated;
