//! Redaction end to end: the model is made to write an e-mail address, a
//! phone number and a card number token by token (a regex constraint forces
//! the text, and tokens of one to three characters are the tiniest chunks a
//! stream has), and transform-redact must mask every one before the client
//! sees it, streamed or not. A prompt's own e-mail never reaches the model.

use serde_json::{Value, json};

mod common;
use common::*;

/// Long enough around the secret that the filter must release text in many
/// chunks, before and after it.
const LEAD: &str = r"Dear customer, thank you for your patience while we looked into this for you\. ";
const TAIL: &str = r" We will answer within two working days, as promised in our service terms\.";

const SENSITIVE: [(&str, &str, &str); 3] = [
    (r"Write to jane\.doe@example\.com today\.", "jane.doe@example.com", "[email]"),
    (r"Call \(555\) 867-5309 now\.", "867-5309", "[phone]"),
    (r"Card 4111 1111 1111 1111 on file\.", "4111", "[card]"),
];

#[test]
fn sensitive_text_split_across_streamed_tokens_never_reaches_the_client() {
    let cfg = write_config(
        "redact",
        "[[models]]\nname = \"SmolLM2-135M-Instruct\"\n[models.pipeline]\ntransforms = [\"transform-redact\", \"transform-chat-template\"]\n",
    );
    let (s, _) = start(&["--config", cfg.to_str().unwrap()]);
    for (middle, secret, mask) in SENSITIVE {
        let regex = format!("{LEAD}{middle}{TAIL}");
        let body = |stream: bool| -> Value {
            json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Say it."}],
                   "max_tokens": 80, "temperature": 0, "guided_regex": regex, "stream": stream})
        };
        let chunks = sse(&s.base, "/v1/chat/completions", &body(true));
        let pieces: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        let text: String = pieces.concat();
        assert!(!text.contains(secret), "{secret} leaked in the stream: {pieces:?}");
        assert!(text.contains(mask), "{mask} missing from {text:?}");
        assert!(pieces.len() >= 4, "released in several chunks around the secret: {pieces:?}");
        let (st, r) = post(&s, "/v1/chat/completions", &body(false));
        assert_eq!(st, 200, "{r}");
        let whole = r["choices"][0]["message"]["content"].as_str().unwrap();
        assert_eq!(whole, text, "streamed and whole responses agree");
    }
    // The chat template declares it filters nothing (`Passthrough`): it is
    // called for the request, never per streamed chunk; the redact filter is
    // called for every chunk.
    let (template0, redact0) = (calls(&s, "transform-chat-template"), calls(&s, "transform-redact"));
    let body = json!({"model": "SmolLM2-135M-Instruct", "messages": [{"role": "user", "content": "Tell a story."}],
                      "max_tokens": 40, "ignore_eos": true, "stream": true});
    let chunks = sse(&s.base, "/v1/chat/completions", &body);
    let pieces = chunks.iter().filter(|c| c["choices"][0]["delta"]["content"].is_string()).count();
    let (template, redact) =
        (calls(&s, "transform-chat-template") - template0, calls(&s, "transform-redact") - redact0);
    assert!(template <= 2.0, "chat template called {template} times for one streamed request");
    assert!(redact >= pieces as f64, "redact called {redact} times for {pieces} streamed chunks");

    // The prompt's address is masked before the model sees it: the model
    // echoes what it was given, and what it was given is the mask.
    let (st, r) = post(
        &s,
        "/v1/completions",
        &json!({"model": "SmolLM2-135M-Instruct", "prompt": "My mail is bob@corp.example.org. Repeat: My mail is",
        "max_tokens": 12, "temperature": 0, "guided_regex": r" [^ ]{1,30}"}),
    );
    assert_eq!(st, 200, "{r}");
    let text = r["choices"][0]["text"].as_str().unwrap();
    assert!(!text.contains("bob@") && !text.contains("corp.example"), "{text:?}");
}

/// Calls into `plugin` so far, over every tenant.
fn calls(s: &Server, plugin: &str) -> f64 {
    let text = client().get(format!("{}/metrics", s.base)).send().unwrap().text().unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|x| x.metric == "weft_plugin_call_duration_seconds_count" && x.labels.get("plugin") == Some(plugin))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}
