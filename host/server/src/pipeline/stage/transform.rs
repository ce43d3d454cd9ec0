//! The request transform stage: the Wasm transform, and the chat template
//! rendered natively as the chat-template plugin's twin.

use std::sync::Arc;

use weft_runtime::{LoadedPlugin, Rejection, TransformRequest, WasmTransform};

use super::{Component, Fault};
use crate::pipeline::PipelineError;

/// Rewrites a request, or refuses it with a status of its choosing.
pub trait Transform: Component {
    fn on_request(&self, req: &TransformRequest) -> Result<Result<TransformRequest, Rejection>, Fault>;
}

impl Component for WasmTransform {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        Some(WasmTransform::plugin(self))
    }
}

impl Transform for WasmTransform {
    fn on_request(&self, req: &TransformRequest) -> Result<Result<TransformRequest, Rejection>, Fault> {
        Ok(WasmTransform::on_request(self, req)?)
    }
}

/// The chat-template plugin's own code compiled into the host.
pub struct NativeTemplate(pub Arc<transform_chat_template::ChatTemplate>);

impl Component for NativeTemplate {
    fn plugin(&self) -> Option<&Arc<LoadedPlugin>> {
        None
    }
}

impl Transform for NativeTemplate {
    fn on_request(&self, req: &TransformRequest) -> Result<Result<TransformRequest, Rejection>, Fault> {
        let mut req = req.clone();
        let Some(messages) = req.messages.take() else { return Ok(Ok(req)) };
        let msgs: Vec<transform_chat_template::Message> = messages
            .into_iter()
            .map(|m| transform_chat_template::Message {
                role: m.role,
                content: m.content,
                name: m.name,
                tool_calls: m
                    .tool_calls
                    .iter()
                    .map(|c| transform_chat_template::ToolCall::new(&c.id, &c.name, &c.arguments))
                    .collect(),
                tool_call_id: m.tool_call_id,
            })
            .collect();
        let tools = transform_chat_template::tools_param(req.param("tools"))
            .map_err(|e| Fault::Request(PipelineError::invalid("tools", e)))?;
        // A template that cannot render these messages refuses the request, not the stage.
        req.prompt = Some(
            self.0
                .render_with_tools(&msgs, tools.as_ref(), true)
                .map_err(|e| Fault::Request(PipelineError::invalid("messages", e)))?,
        );
        Ok(Ok(req))
    }
}
