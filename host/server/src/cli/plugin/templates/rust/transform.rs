//! {{name}}: a weft transform. Refuses requests that mention a blocked word
//! (config `blocked`, comma-separated) and tags the answer's end.

use weft_sdk::transform::{Rejection, Request, ResponseFilter, Transform};
use weft_sdk::{Config, Metadata, Plugin};

pub struct Guard {
    blocked: Vec<String>,
    tag: String,
}

impl Plugin for Guard {
    fn metadata() -> Metadata {
        Metadata { name: "{{name}}".into(), version: "0.1.0".into(), description: "refuses blocked words".into() }
    }

    fn init(config: &Config) -> Result<Self, String> {
        let get = |k| weft_sdk::config_value(config, k).unwrap_or("");
        let blocked = get("blocked").split(',').map(|w| w.trim().to_lowercase()).filter(|w| !w.is_empty()).collect();
        Ok(Guard { blocked, tag: get("tag").to_string() })
    }
}

pub struct Tag(String);

impl ResponseFilter for Tag {
    fn on_end(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

impl Transform for Guard {
    type Filter = Tag;

    fn on_request(&mut self, request: Request) -> Result<Request, Rejection> {
        let texts: Vec<String> = request
            .messages
            .iter()
            .flatten()
            .map(|m| m.content.to_lowercase())
            .chain(request.prompt.iter().map(|p| p.to_lowercase()))
            .collect();
        if let Some(w) = self.blocked.iter().find(|w| texts.iter().any(|t| t.contains(w.as_str()))) {
            return Err(Rejection { status: 400, message: format!("requests may not mention '{w}'") });
        }
        Ok(request)
    }

    fn response_filter(&mut self, _request: &Request) -> Tag {
        Tag(self.tag.clone())
    }
}

weft_sdk::export_transform!(Guard);

#[cfg(test)]
mod tests {
    use super::*;
    use weft_sdk::transform::Message;

    fn req(text: &str) -> Request {
        Request {
            model: "m".into(),
            messages: Some(vec![Message::text("user", text)]),
            prompt: None,
            params: vec![],
            headers: vec![],
            constraint: None,
        }
    }

    #[test]
    fn refuses_blocked_words_and_tags_the_rest() {
        let mut g = Guard::init(&vec![("blocked".into(), "secret".into()), ("tag".into(), " [checked]".into())]).unwrap();
        assert_eq!(g.on_request(req("the SECRET")).unwrap_err().status, 400);
        let r = g.on_request(req("hello")).unwrap();
        let mut f = g.response_filter(&r);
        assert_eq!(f.on_chunk("hi") + &f.on_end(), "hi [checked]");
    }
}
