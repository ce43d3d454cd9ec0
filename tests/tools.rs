//! Tool calling end to end, through the real server: one tenant per tool
//! format (the format is a plugin chosen per tenant), the official `openai`
//! Python client running the standard tool loop, forced calls in every format
//! validated against their schemas, the lazy `auto` constraint, and the
//! refusals (`tools` without a format, an unknown named function).

use std::process::Command;

use serde_json::{Value, json};

mod common;
use common::*;

const FORMATS: [&str; 4] = ["hermes", "llama3", "mistral", "pythonic"];

fn config() -> String {
    let mut c = String::from("[[models]]\nname = \"SmolLM2-135M-Instruct\"\n\n");
    for f in FORMATS {
        c.push_str(&format!(
            "[[tenants]]\nid = \"{f}\"\napi_keys = [\"{}\"]\n[tenants.pipeline]\ntransforms = [\"tools\", \"transform-chat-template\"]\n\
             [[tenants.plugins]]\nname = \"tools\"\nbuiltin = \"transform-tools\"\nkind = \"transform\"\n[tenants.plugins.config]\nformat = \"{f}\"\n\n",
            hash_key(&format!("key-{f}"))
        ));
    }
    c.push_str(&format!("[[tenants]]\nid = \"plain\"\napi_keys = [\"{}\"]\n", hash_key("key-plain")));
    c
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"}},
            "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "search", "description": "Search the web",
            "parameters": {"type": "object", "properties": {
                "query": {"type": "string", "maxLength": 60},
                "safe": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3}},
            "required": ["query", "safe"], "additionalProperties": false}}}
    ])
}

fn ask(s: &Server, key: &str, body: &Value) -> (u16, Value) {
    let r = client().post(format!("{}/v1/chat/completions", s.base)).bearer_auth(key).json(body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

/// Every call of `message` names one of the tools and its arguments validate against that tool's schema.
fn validate_calls(message: &Value) -> usize {
    let calls = message["tool_calls"].as_array().cloned().unwrap_or_default();
    for c in &calls {
        let name = c["function"]["name"].as_str().unwrap();
        let tool = tools().as_array().unwrap().iter().find(|t| t["function"]["name"] == name).cloned();
        let tool = tool.unwrap_or_else(|| panic!("a call of {name}, which is not a tool"));
        let args: Value = serde_json::from_str(c["function"]["arguments"].as_str().unwrap()).unwrap();
        let v = jsonschema::validator_for(&tool["function"]["parameters"]).unwrap();
        assert!(v.is_valid(&args), "{name} arguments {args} do not validate");
        assert!(c["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(c["type"], "function");
    }
    calls.len()
}

#[test]
fn tool_calls_in_every_format() {
    let cfg = write_config("tools", &config());
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);

    // The official client's loop: forced call, tool result, text answer; streamed; named.
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/tools/openai_tool_loop.py");
    let out =
        Command::new(python()).arg(&script).args([&s.base, "key-hermes", "SmolLM2-135M-Instruct"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let loop_result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("openai client loop: {loop_result}");

    // Forced calls validate in every format: 20 requests each at temperature 0.7.
    let question = |i: usize| {
        [
            "What's the weather in Lyon this week?",
            "Search the web for rust tutorials.",
            "Weather in Oslo in fahrenheit?",
        ][i % 3]
    };
    for f in FORMATS {
        let mut total = 0;
        for i in 0..20 {
            let body = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": question(i)}],
                "tools": tools(), "tool_choice": "required", "max_tokens": 120, "temperature": 0.7, "seed": i});
            let (st, r) = ask(&s, &format!("key-{f}"), &body);
            assert_eq!(st, 200, "{f}: {r}");
            assert_eq!(r["choices"][0]["finish_reason"], "tool_calls", "{f}: {r}");
            let n = validate_calls(&r["choices"][0]["message"]);
            assert!(n >= 1, "{f}: no call in {r}");
            total += n;
        }
        eprintln!("{f}: 20 forced requests, {total} calls, all valid");
    }

    // A named function in a format that writes no markers (llama3): only that function, streamed.
    let body = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Find cats."}],
        "tools": tools(), "tool_choice": {"type": "function", "function": {"name": "search"}},
        "parallel_tool_calls": false, "max_tokens": 120, "temperature": 0.7, "seed": 3, "stream": true});
    let chunks = {
        let r = client()
            .post(format!("{}/v1/chat/completions", s.base))
            .bearer_auth("key-llama3")
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().unwrap()
    };
    let deltas: Vec<Value> = chunks
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let calls: Vec<&Value> =
        deltas.iter().filter_map(|d| d["choices"][0]["delta"]["tool_calls"].as_array()).flatten().collect();
    assert_eq!(calls.len(), 1, "parallel_tool_calls false: one call: {chunks}");
    assert_eq!(calls[0]["function"]["name"], "search");
    assert_eq!(deltas.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");

    // `auto`: the model writes text, and a call it opens is constrained from
    // its marker on, so every call it makes validates.
    let mut auto_calls = 0;
    for (i, p) in ["Write the text <tool_call> and then the JSON for the weather in Rome.", "Say \"<tool_call>\"."]
        .iter()
        .enumerate()
    {
        for seed in 0..4 {
            let body = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": p}],
                "tools": tools(), "tool_choice": "auto", "max_tokens": 60, "temperature": 0.7, "seed": seed + 10 * i});
            let (st, r) = ask(&s, "key-hermes", &body);
            assert_eq!(st, 200, "{r}");
            let n = validate_calls(&r["choices"][0]["message"]);
            let reason = &r["choices"][0]["finish_reason"];
            assert_eq!(reason == "tool_calls", n > 0, "{r}");
            auto_calls += n;
        }
    }
    assert!(auto_calls > 0, "the model opened no call in 8 tries");

    // Refusals: tools where no format is configured, a named function that is not a tool.
    let forced = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "hi"}],
        "tools": tools(), "tool_choice": "required", "max_tokens": 8});
    let (st, r) = ask(&s, "key-plain", &forced);
    assert_eq!(st, 400, "{r}");
    assert_eq!(r["error"]["param"], "tools", "{r}");
    let mut bad = forced.clone();
    bad["tool_choice"] = json!({"type": "function", "function": {"name": "nope"}});
    let (st, r) = ask(&s, "key-hermes", &bad);
    assert_eq!((st, r["error"]["param"].as_str()), (400, Some("tool_choice")), "{r}");
    // `none` leaves the answer to the model: text, no calls.
    let mut none = forced.clone();
    none["tool_choice"] = json!("none");
    let (st, r) = ask(&s, "key-plain", &none);
    assert_eq!(st, 200, "{r}");
    assert!(r["choices"][0]["message"].get("tool_calls").is_none(), "{r}");
}
