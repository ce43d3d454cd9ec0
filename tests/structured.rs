//! Structured output end to end: `response_format` and `guided_regex` map to
//! the sampler-json plugin, and on the default model every completion parses
//! and validates, at temperature 0 and 1, and stops as soon as it is complete.

use std::sync::Mutex;

use serde_json::{Value, json};

mod common;
use common::*;

fn schemas() -> Vec<Value> {
    vec![
        json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 24},
            "age": {"type": "integer", "minimum": 0},
            "email": {"type": "string", "format": "email"},
            "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3}
        }, "required": ["name", "age", "hobbies"]}),
        json!({"type": "object", "properties": {
            "status": {"enum": ["pending", "shipped", "delivered"]},
            "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                "type": "object", "properties": {"sku": {"type": "string", "maxLength": 12}, "qty": {"type": "integer", "minimum": 0}}, "required": ["sku", "qty"]}},
            "total": {"type": "number"}
        }, "required": ["status", "items", "total"]}),
        json!({"type": "object", "properties": {
            "server": {"type": "object", "properties": {"host": {"type": "string", "maxLength": 32}, "port": {"type": "integer"}}, "required": ["host", "port"]},
            "debug": {"type": "boolean"},
            "tags": {"type": ["array", "null"], "items": {"type": "string", "maxLength": 10}, "maxItems": 4}
        }, "required": ["server", "debug", "tags"]}),
        json!({"$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
            "type": "object", "properties": {
                "shape": {"anyOf": [{"$ref": "#/$defs/point"}, {"enum": ["circle", "square"]}]},
                "points": {"type": "array", "items": {"$ref": "#/$defs/point"}, "maxItems": 2}
            }, "required": ["shape", "points"]}),
        json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 12},
            "children": {"type": "array", "maxItems": 2, "items": {"$ref": "#"}}
        }, "required": ["name", "children"]}),
        // The keywords tool parameters carry: ranges, formats, tuples, property counts.
        json!({"type": "object", "properties": {
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
            "site": {"type": "string", "format": "hostname"},
            "ip": {"type": "string", "format": "ipv4"},
            "pair": {"type": "array", "prefixItems": [{"type": "string", "maxLength": 8}, {"type": "integer", "minimum": -3, "maximum": 3}], "items": false}
        }, "required": ["rating", "score", "ip", "pair"], "additionalProperties": false, "minProperties": 4}),
    ]
}

const PROMPTS: [&str; 4] = [
    "Describe it as JSON.",
    "Give me an example record in JSON.",
    "Answer in JSON only: make something up.",
    "Return a JSON object for a customer in Paris.",
];

const REGEXES: [&str; 3] = [
    r"\([0-9]{3}\) [0-9]{3}-[0-9]{4}",
    r"20[0-9]{2}-(0[1-9]|1[0-2])-[0-2][0-9]",
    r"(yes|no|maybe), because [a-z ]{1,40}\.",
];

fn body(prompt: &str, temperature: f64, seed: u64, extra: Value) -> Value {
    let mut b = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": prompt}],
        "max_tokens": 160, "temperature": temperature, "seed": seed});
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

enum Check {
    Schema(Value),
    Object,
    Regex(regex::Regex),
}

#[test]
fn constrained_generations_all_parse_validate_and_stop_when_complete() {
    let (s, _) = start(&[]);
    let mut jobs: Vec<(Value, Check)> = Vec::new();
    for (i, schema) in schemas().into_iter().enumerate() {
        for temperature in [0.0, 1.0] {
            for (j, p) in PROMPTS.iter().enumerate() {
                let rf = json!({"response_format": {"type": "json_schema", "json_schema": {"name": format!("s{i}"), "schema": schema}}});
                jobs.push((body(p, temperature, (i * 10 + j) as u64, rf), Check::Schema(schema.clone())));
            }
        }
    }
    for temperature in [0.0, 1.0] {
        for p in &PROMPTS[..2] {
            jobs.push((body(p, temperature, 5, json!({"response_format": {"type": "json_object"}})), Check::Object));
        }
    }
    for re in REGEXES {
        for temperature in [0.0, 1.0] {
            let anchored = regex::Regex::new(&format!("^(?:{re})$")).unwrap();
            jobs.push((body("Answer briefly.", temperature, 9, json!({"guided_regex": re})), Check::Regex(anchored)));
        }
    }
    assert_eq!(jobs.len(), 58, "six schemas x 2 temperatures x 4 prompts, 4 json_object, 6 regex");

    let jobs = Mutex::new(jobs.into_iter().enumerate().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::<String>::new());
    std::thread::scope(|sc| {
        for _ in 0..8 {
            sc.spawn(|| {
                loop {
                    let Some((i, (req, check))) = jobs.lock().unwrap().pop() else { return };
                    let (st, resp) = post(&s, "/v1/chat/completions", &req);
                    let fail = |m: String| failures.lock().unwrap().push(format!("job {i}: {m}"));
                    if st != 200 {
                        fail(format!("status {st}: {resp}"));
                        continue;
                    }
                    let text = resp["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_string();
                    let finish = resp["choices"][0]["finish_reason"].as_str().unwrap_or_default().to_string();
                    if finish != "stop" {
                        fail(format!("finish_reason {finish} for {text:?}"));
                    }
                    match check {
                        Check::Schema(schema) => match serde_json::from_str::<Value>(&text) {
                            Ok(v) if jsonschema::is_valid(&schema, &v) => {}
                            Ok(v) => fail(format!("{v} does not validate against {schema}")),
                            Err(e) => fail(format!("{text:?} is not JSON: {e}")),
                        },
                        Check::Object => match serde_json::from_str::<Value>(&text) {
                            Ok(Value::Object(_)) => {}
                            other => fail(format!("{text:?} is not a JSON object: {other:?}")),
                        },
                        Check::Regex(re) => {
                            if !re.is_match(&text) {
                                fail(format!("{text:?} does not match {re}"));
                            }
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} of 58 failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn bad_constraints_are_client_errors_and_streaming_is_constrained_too() {
    let (s, _) = start(&[]);
    let (st, e) = post(
        &s,
        "/v1/chat/completions",
        &body(
            "hi",
            0.0,
            1,
            json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer", "multipleOf": 3}}}}),
        ),
    );
    assert_eq!(st, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("multipleOf"), "names the keyword: {e}");
    assert_eq!(e["error"]["param"], "response_format");
    let (st, e) = post(&s, "/v1/chat/completions", &body("hi", 0.0, 1, json!({"guided_regex": "(unclosed"})));
    assert_eq!(st, 400, "{e}");
    let (st, e) = post(
        &s,
        "/v1/chat/completions",
        &body("hi", 0.0, 1, json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})),
    );
    assert_eq!(st, 400, "{e}");
    let (st, e) = post(&s, "/v1/chat/completions", &body("hi", 0.0, 1, json!({"response_format": {"type": "yaml"}})));
    assert_eq!(st, 400, "{e}");
    // A budget too small for any complete value is refused, not answered with half a value.
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
    let (st, e) = post(
        &s,
        "/v1/chat/completions",
        &body(
            "hi",
            0.0,
            1,
            json!({"max_tokens": 2, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
        ),
    );
    assert_eq!(st, 400, "{e}");
    assert_eq!(e["error"]["param"], "max_tokens", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("max_tokens 2 is too small"), "{e}");

    let mut b = body("Is the sky blue?", 1.0, 3, json!({"guided_regex": "(yes|no)!", "stream": true}));
    b["max_tokens"] = json!(20);
    let chunks = sse(&s.base, "/v1/chat/completions", &b);
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert!(text == "yes!" || text == "no!", "{text:?}");
    // The server keeps serving unconstrained requests alongside.
    let (st, _) = post(&s, "/v1/chat/completions", &chat("hi", json!({"max_tokens": 4})));
    assert_eq!(st, 200);
}
