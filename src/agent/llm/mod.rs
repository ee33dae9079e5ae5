//! The LLM interface the agent loop talks to, and its providers: OpenAI-compatible chat completions
//! (OpenAI, Groq, Ollama, vLLM, LiteLLM), Anthropic Messages, and `builtin` (offline, deterministic).
//!
//! A provider turns one `LlmRequest` into one `LlmResponse`. When given a delta sender it streams: text
//! fragments go to the sender as they arrive, tool-call fragments are assembled inside the provider, and the
//! complete response is still returned at the end. Providers never run tools.

pub mod anthropic;
pub mod builtin;
pub mod http;
pub mod openai;

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// The result of one tool call, answering `tool_call_id`.
    Tool,
}

/// One tool call the model asked for. `arguments` is the JSON text exactly as the model sent it (it may be
/// invalid; the agent reports that back to the model).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    /// For assistant messages: the calls it made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For tool messages: which call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For tool messages: the tool's name (Anthropic and some OpenAI-compatible servers want it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Message {
        Message {
            role: Role::Assistant,
            content: content.into(),
            tool_calls,
            tool_call_id: None,
            name: None,
        }
    }
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Message {
        Message {
            role: Role::Tool,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id.clone()),
            name: Some(call.name.clone()),
        }
    }
}

/// Tools are described by the catalog, below the agent; providers translate its specs into their dialects.
pub use crate::tools::{Schema, ToolSpec};

#[derive(Clone, Debug)]
pub struct LlmRequest {
    /// The server's system prompt (never the client's).
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Arc<ToolSpec>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LlmResponse {
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// As the server said it (`stop`, `tool_calls`, `end_turn`, `length`, or anything else).
    pub finish_reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the language model did not answer in time")]
    Timeout,
    #[error("the language model is rate limiting requests")]
    RateLimited { retry_after_secs: Option<u64> },
    #[error("the language model answered HTTP {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("the language model could not be reached: {0}")]
    Unreachable(String),
    #[error("the language model sent a reply that could not be read: {0}")]
    Protocol(String),
}

/// Text fragments of the answer, as they arrive.
pub type DeltaSender = mpsc::UnboundedSender<String>;

pub trait LlmProvider: Send + Sync {
    /// For logs and the tool-call log's `metadata.api`.
    fn name(&self) -> &str;
    /// The model name, for `metadata.model`.
    fn model(&self) -> &str;
    fn complete<'a>(
        &'a self,
        request: &'a LlmRequest,
        deltas: Option<&'a DeltaSender>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>>;
}

/// The provider the settings ask for: LLM_PROVIDER if set, else the first key or URL present, else `builtin`.
pub fn from_config(
    config: &crate::config::Config,
) -> anyhow::Result<std::sync::Arc<dyn LlmProvider>> {
    use std::sync::Arc;
    let policy = http::RetryPolicy {
        timeout: config.llm_timeout,
        max_retries: config.llm_max_retries,
        ..Default::default()
    };
    let chosen = config.llm_provider.clone().unwrap_or_else(|| {
        if config.anthropic_api_key.is_some() {
            "anthropic".into()
        } else if config.openai_api_key.is_some() {
            "openai".into()
        } else if config.groq_api_key.is_some() {
            "groq".into()
        } else if config.llm_api_url.is_some() {
            "openai-compatible".into()
        } else {
            "builtin".into()
        }
    });
    let url = |default: &str| {
        config
            .llm_api_url
            .clone()
            .unwrap_or_else(|| default.to_string())
    };
    let model = |default: &str| {
        config
            .llm_model
            .clone()
            .unwrap_or_else(|| default.to_string())
    };
    Ok(match chosen.as_str() {
        "builtin" => Arc::new(builtin::Builtin),
        "anthropic" => {
            let key = config
                .anthropic_api_key
                .clone()
                .ok_or_else(|| anyhow::anyhow!("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY"))?;
            Arc::new(anthropic::Anthropic::new(
                &url("https://api.anthropic.com"),
                key,
                &model("claude-sonnet-4-5"),
                4096,
                policy,
            ))
        }
        "openai" => Arc::new(openai::OpenAi::new(
            "openai",
            &url("https://api.openai.com/v1"),
            &model("gpt-4o-mini"),
            config.openai_api_key.clone(),
            policy,
        )),
        "groq" => Arc::new(openai::OpenAi::new(
            "groq",
            &url("https://api.groq.com/openai/v1"),
            &model("llama-3.1-8b-instant"),
            config.groq_api_key.clone(),
            policy,
        )),
        other => {
            let base = config
                .llm_api_url
                .clone()
                .ok_or_else(|| anyhow::anyhow!("LLM_PROVIDER={other} needs LLM_API_URL"))?;
            let model = config
                .llm_model
                .clone()
                .ok_or_else(|| anyhow::anyhow!("LLM_PROVIDER={other} needs LLM_MODEL"))?;
            let key = config
                .openai_api_key
                .clone()
                .or_else(|| config.groq_api_key.clone());
            Arc::new(openai::OpenAi::new(other, &base, &model, key, policy))
        }
    })
}
