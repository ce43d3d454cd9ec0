use super::*;

/// Every single byte plus some multi-byte tokens spanning JSON lexemes.
fn vocab() -> Vocab {
    let mut bytes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for t in ["{\"", "\":", "\",\"", "\"}", "true", "false", "null", "12", " {\"", "name", "\":\"", "\"]}", "<eos>"] {
        bytes.push(t.as_bytes().to_vec());
    }
    let eos = bytes.len() as u32 - 1;
    bytes[eos as usize] = Vec::new();
    Vocab::new(bytes, vec![eos])
}

/// Follows `script` (repeating its last token) while the mask allows it,
/// else takes the lowest allowed id: a stand-in for a model's preferences.
fn run(args: &str, script: &[&str], max_tokens: u32) -> String {
    let v = vocab();
    let c = Rc::new(Compiled::new(&constraint_regex(args).unwrap()).unwrap());
    let mut d = Decoder::new(c, max_tokens);
    let mut out = Vec::new();
    let mut next = 0;
    for _ in 0..max_tokens {
        let m = d.mask(&v).unwrap();
        let want = script.get(next.min(script.len() - 1)).and_then(|w| v.bytes.iter().position(|b| b == w.as_bytes()));
        let pick = match want.map(|i| i as u32).filter(|&t| m.allows(t)) {
            Some(t) => {
                next += 1;
                t
            }
            None => (0..v.bytes.len() as u32).find(|&t| m.allows(t)).unwrap(),
        };
        if v.eos.contains(&pick) {
            break;
        }
        out.extend(&v.bytes[pick as usize]);
        if d.accept(&v, pick).unwrap() == Progress::Done {
            break;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn a_budget_below_the_fewest_tokens_of_a_value_is_refused() {
    let v = vocab();
    let schema =
        r#"{"json_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}"#;
    let c = Rc::new(Compiled::new(&constraint_regex(schema).unwrap()).unwrap());
    // {"name":"" is 11 bytes; with this vocabulary {" name ":" "} spells it in 4 tokens.
    assert_eq!(c.min_tokens(&v, 100), MinTokens::Exactly(4));
    assert!(Decoder::new(c.clone(), 3).check_budget(&v).unwrap_err().starts_with("max_tokens 3 "));
    assert!(Decoder::new(c.clone(), 4).check_budget(&v).is_ok());
    assert!(Decoder::new(c, 11).check_budget(&v).is_ok());
}

#[test]
fn output_follows_the_schema_and_stops_when_complete() {
    let args = r#"{"json_schema": {"type": "object", "properties": {"name": {"type": "string"}, "ok": {"type": "boolean"}}, "required": ["name", "ok"]}}"#;
    let out = run(args, &["{\"", "name", "\":\"", "x", "\",\"", "o", "k", "\":", "true", "}"], 64);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "x");
    assert_eq!(v["ok"], true);
}

#[test]
fn the_budget_closes_a_runaway_string() {
    let args = r#"{"json_schema": {"type": "object", "properties": {"s": {"type": "string"}}, "required": ["s"]}}"#;
    // Prefers "a" forever; the budget must force the closing quote and brace.
    for budget in [9, 12, 30] {
        let out = run(args, &["{\"", "s", "\":", "\"", "a"], budget);
        assert!(out.len() > 8, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
        assert!(v["s"].as_str().unwrap().chars().all(|c| c == 'a'), "{out}");
    }
}

/// A repeated value is not started when the tokens left cannot finish it.
#[test]
fn the_budget_forbids_a_value_it_cannot_finish() {
    let args = r#"{"regex": "a{5}", "prefix": "[", "suffix": "]", "separator": ",", "max_values": 3}"#;
    for budget in 8..20u32 {
        let out = run(args, &["[", "a", "a", "a", "a", "a", "]", ","], budget);
        let a = Automaton::from_regex(&constraint_regex(args).unwrap(), 1 << 20).unwrap();
        assert!(a.matches(out.as_bytes()), "budget {budget}: {out:?} is incomplete");
    }
}

/// Free text until the trigger, then one wrapped value, then free again.
#[test]
fn a_lazy_constraint_starts_at_its_trigger() {
    let v = vocab();
    let args = r#"{"json_schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        "prefix": "<c>", "suffix": "</c>", "trigger": "<c>"}"#;
    let c = Rc::new(Compiled::new(&constraint_regex(args).unwrap()).unwrap());
    let mut d = Decoder::lazy(c, 200, Trigger::from_args(args).unwrap().unwrap());
    let feed = |d: &mut Decoder, s: &str| {
        for b in s.bytes() {
            assert_eq!(d.accept(&v, b as u32).unwrap(), Progress::Continue);
        }
    };
    feed(&mut d, "Sure <");
    assert!(!d.constrained(), "free text, even with half a trigger");
    feed(&mut d, "c>");
    assert!(d.constrained(), "the trigger spanned two tokens");
    assert!(!d.mask(&v).unwrap().allows(b'x' as u32), "only the value may follow");
    feed(&mut d, r#"{"name":"a"}</c"#);
    assert!(d.constrained());
    assert_eq!(d.accept(&v, b'>' as u32).unwrap(), Progress::Continue);
    assert!(!d.constrained(), "free again after the value");
    feed(&mut d, " and more <c>");
    assert!(d.constrained(), "a second call");
    // A budget that runs low closes the value.
    let c = Rc::new(Compiled::new(&constraint_regex(args).unwrap()).unwrap());
    let mut d = Decoder::lazy(c, 14, Trigger::from_args(args).unwrap().unwrap());
    feed(&mut d, "<c>");
    assert!(d.mask(&v).unwrap().len(v.bytes.len()) < 5, "closing: the budget is tight");
    // Anchored: only a message that begins with the trigger (spanning tokens) is a call.
    let args = r#"{"json_schema": {"type": "integer"}, "prefix": "[T]", "trigger": "[T]", "trigger_at_start": true}"#;
    let make = || {
        let c = Rc::new(Compiled::new(&constraint_regex(args).unwrap()).unwrap());
        Decoder::lazy(c, 50, Trigger::from_args(args).unwrap().unwrap())
    };
    let mut d = make();
    feed(&mut d, " [T");
    assert!(!d.constrained());
    feed(&mut d, "]");
    assert!(d.constrained());
    let mut d = make();
    feed(&mut d, "no [T]");
    assert!(!d.constrained(), "not at the start");
}

#[test]
fn wrapped_and_repeated_values() {
    let args =
        r#"{"json_schema": {"type": "integer"}, "prefix": "[", "suffix": "]", "separator": ",", "max_values": 3}"#;
    let a = Automaton::from_regex(&constraint_regex(args).unwrap(), 1 << 20).unwrap();
    for ok in ["[1]", "[1],[22]", "[1],[2],[3]"] {
        assert!(a.matches(ok.as_bytes()), "{ok}");
    }
    for bad in ["1", "[1],[2],[3],[4]", "[1][2]", "[x]"] {
        assert!(!a.matches(bad.as_bytes()), "{bad}");
    }
    assert!(Trigger::from_args(r#"{"regex": "a", "prefix": "<x>", "trigger": "<y>"}"#).is_err());
    let args = r#"{"python_calls": [{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["b"]}}, {"name": "g", "parameters": {"type": "object"}}],
        "open": "[", "close": "]", "separator": ", ", "max_values": 2}"#;
    let a = Automaton::from_regex(&constraint_regex(args).unwrap(), 1 << 20).unwrap();
    for ok in ["[f(b=2)]", "[f(a=True, b=3), g()]", "[g(), f(b=1,a=False)]"] {
        assert!(a.matches(ok.as_bytes()), "{ok}");
    }
    for bad in ["[f(a=true, b=2)]", "[f(b=4)]", "[f(a=True)]", "[g(), g(), g()]", "f(b=1)", "[h()]"] {
        assert!(!a.matches(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn regex_and_eos() {
    let out = run(r#"{"regex": "[0-9]{3}-[0-9]{2}"}"#, &["12", "1"], 20);
    assert_eq!(out.len(), 6);
    assert!(out.as_bytes()[3] == b'-');
    // A value that could go on may end with end of sequence.
    let v = vocab();
    let c = Rc::new(Compiled::new("[0-9]+").unwrap());
    let mut d = Decoder::new(c, 10);
    assert!(!d.mask(&v).unwrap().allows(v.eos[0]), "no end before the value is complete");
    d.accept(&v, b'4' as u32).unwrap();
    assert!(d.mask(&v).unwrap().allows(v.eos[0]));
    assert!(d.accept(&v, b'x' as u32).is_err());
}
