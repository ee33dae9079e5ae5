//! The agent loop: the conversation and the caller's tools go to the LLM; the tool calls it asks for run (in
//! parallel when it asks for several), their results go back, until a final answer, the step cap or the
//! deadline.
//!
//! An unknown tool, a tool the caller may not use, or arguments that are not a JSON object become an error
//! result the model sees; nothing the model sends can crash the loop.

pub mod llm;
#[cfg(test)]
#[path = "tests.rs"]
mod tests;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::{
    clock::SharedClock,
    ids::ApprovalId,
    tools::{
        Caller, Catalog, Decision, ToolContext, ToolRefusal,
        approval::{Approvals, ApproverFactors, Verdict},
        log::{CallStatus, Entry, ToolLog},
        result_text,
    },
};
use llm::{LlmError, LlmProvider, LlmRequest, Message, ToolCall, Usage};

#[derive(Clone, Debug)]
pub struct Limits {
    pub max_steps: usize,
    pub deadline: Duration,
}

/// What the loop reports while it works (the chat stream forwards these).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    Token {
        text: String,
    },
    ToolCall {
        id: String,
        name: String,
        arguments: String,
    },
    ToolResult {
        id: String,
        name: String,
        status: CallStatus,
        result: String,
        duration_ms: f64,
    },
    /// A call under the `ask` policy waits for `POST /chat/approvals/{approval_id}`. With `step_up`, approving
    /// needs a fresh second-factor code of one of `methods` (the approver's: `sms`, `totp`).
    ApprovalRequired {
        approval_id: ApprovalId,
        id: String,
        name: String,
        arguments: String,
        step_up: bool,
        methods: Vec<&'static str>,
    },
}

/// One tool call as it ran: kept with the conversation and in the tool-call log.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ToolRecord {
    pub id: String,
    pub name: String,
    pub arguments: String,
    pub status: CallStatus,
    pub duration_ms: f64,
    pub result: String,
}

#[derive(Debug)]
pub struct Outcome {
    pub content: String,
    /// The assistant and tool messages the loop added, in order, before the final answer.
    pub steps: Vec<Message>,
    pub tool_calls: Vec<ToolRecord>,
    pub usage: Usage,
    /// True when the step cap ended the loop before a final answer.
    pub capped: bool,
}

/// How long a call under the `ask` policy waits for a decision before it counts as refused.
const APPROVAL_WAIT: Duration = Duration::from_secs(300);

/// The longest tool result handed back to the model, in characters.
const MAX_RESULT_CHARS: usize = 16_000;

pub struct Agent {
    pub provider: Arc<dyn LlmProvider>,
    pub approvals: Arc<Approvals>,
    pub catalog: Arc<Catalog>,
    pub tool_log: ToolLog,
    /// Which factors an approver has, for step-up events; `None` only in unit tests (no methods).
    pub factors: Option<Arc<dyn ApproverFactors>>,
    pub clock: SharedClock,
    pub system_prompt: String,
    pub limits: Limits,
}

impl Agent {
    /// Runs the loop over `history` (ending with the user's message) for `caller`.
    pub async fn run(
        &self,
        caller: &Caller,
        ctx: &ToolContext,
        history: Vec<Message>,
        events: Option<mpsc::UnboundedSender<AgentEvent>>,
    ) -> Result<Outcome, LlmError> {
        tokio::time::timeout(
            self.limits.deadline,
            self.steps(caller, ctx, history, events),
        )
        .await
        .map_err(|_| LlmError::Timeout)?
    }

    async fn steps(
        &self,
        caller: &Caller,
        ctx: &ToolContext,
        messages: Vec<Message>,
        events: Option<mpsc::UnboundedSender<AgentEvent>>,
    ) -> Result<Outcome, LlmError> {
        let first_new = messages.len();
        // One request for the whole turn: each step adds its messages to it.
        let mut request = LlmRequest {
            system: self.system_prompt.clone(),
            messages,
            tools: self.catalog.specs_for(caller),
        };
        let mut records = Vec::new();
        let mut usage = Usage::default();
        for _ in 0..self.limits.max_steps {
            let response = match &events {
                Some(events) => {
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let forward = {
                        let events = events.clone();
                        tokio::spawn(async move {
                            while let Some(text) = rx.recv().await {
                                let _ = events.send(AgentEvent::Token { text });
                            }
                        })
                    };
                    let response = self.provider.complete(&request, Some(&tx)).await;
                    drop(tx);
                    let _ = forward.await;
                    response?
                }
                None => self.provider.complete(&request, None).await?,
            };
            usage.input_tokens += response.usage.input_tokens;
            usage.output_tokens += response.usage.output_tokens;
            if response.tool_calls.is_empty() {
                return Ok(Outcome {
                    content: response.content,
                    steps: request.messages.split_off(first_new),
                    tool_calls: records,
                    usage,
                    capped: false,
                });
            }
            if let Some(events) = &events {
                for c in &response.tool_calls {
                    let _ = events.send(AgentEvent::ToolCall {
                        id: c.id.clone(),
                        name: c.name.clone(),
                        arguments: c.arguments.clone(),
                    });
                }
            }
            let runs = response
                .tool_calls
                .iter()
                .map(|call| self.run_tool(caller, ctx, call, events.as_ref()));
            let results = futures::future::join_all(runs).await;
            request.messages.push(Message::assistant(
                response.content,
                response.tool_calls.clone(),
            ));
            for (call, record) in response.tool_calls.iter().zip(results) {
                if let Some(events) = &events {
                    let _ = events.send(AgentEvent::ToolResult {
                        id: record.id.clone(),
                        name: record.name.clone(),
                        status: record.status,
                        result: record.result.clone(),
                        duration_ms: record.duration_ms,
                    });
                }
                request
                    .messages
                    .push(Message::tool_result(call, record.result.clone()));
                records.push(record);
            }
        }
        let content = format!(
            "I stopped after {} steps without reaching a final answer. The tool results so far are above.",
            self.limits.max_steps
        );
        Ok(Outcome {
            content,
            steps: request.messages.split_off(first_new),
            tool_calls: records,
            usage,
            capped: true,
        })
    }

    /// Asks the caller to approve a call and waits for the answer; no answer in time is a refusal. With
    /// `step_up` (the parsed arguments), the approval is bound to this tool and these arguments.
    async fn ask(
        &self,
        caller: &Caller,
        call: &ToolCall,
        step_up: Option<&Value>,
        events: Option<&mpsc::UnboundedSender<AgentEvent>>,
    ) -> Verdict {
        let pending = match self
            .approvals
            .request(
                &caller.user_id,
                step_up.map(|args| (call.name.as_str(), args)),
                APPROVAL_WAIT,
            )
            .await
        {
            Ok(p) => p,
            Err(e) => {
                // Fail closed: a call nobody can approve does not run.
                tracing::error!(error = %e, "registering a pending approval");
                return Verdict {
                    approved: false,
                    by: None,
                    step_up: false,
                };
            }
        };
        if let Some(events) = events {
            let methods = match (&self.factors, step_up) {
                (Some(f), Some(_)) => f.step_up_methods(&caller.user_id).await,
                _ => Vec::new(),
            };
            let _ = events.send(AgentEvent::ApprovalRequired {
                approval_id: pending.id.clone(),
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
                step_up: step_up.is_some(),
                methods,
            });
        }
        self.approvals.wait(pending).await
    }

    async fn run_tool(
        &self,
        caller: &Caller,
        ctx: &ToolContext,
        call: &ToolCall,
        events: Option<&mpsc::UnboundedSender<AgentEvent>>,
    ) -> ToolRecord {
        let started = Instant::now();
        let mut approval: Option<Verdict> = None;
        let outcome = match self.catalog.find_for(caller, &call.name) {
            Err(ToolRefusal::Unknown) => Err(format!("unknown tool {:?}", call.name)),
            Err(ToolRefusal::NotPermitted) => Err(format!(
                "you are not allowed to use the tool {:?}",
                call.name
            )),
            Ok((tool, rule)) => match serde_json::from_str::<Value>(&call.arguments) {
                Ok(args @ Value::Object(_)) => {
                    if rule.decision == Decision::Ask {
                        let step_up = rule.step_up.then_some(&args);
                        approval = Some(self.ask(caller, call, step_up, events).await);
                    }
                    match &approval {
                        Some(v) if !v.approved => {
                            Err(format!("the user refused the call to {:?}", call.name))
                        }
                        _ => tool.call(args, ctx).await,
                    }
                }
                Ok(_) => Err("tool arguments must be a JSON object".to_string()),
                Err(e) => Err(format!("tool arguments are not valid JSON: {e}")),
            },
        };
        let duration_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let arguments = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()));
        let at_ms = self.clock.now_ms();
        let entry = Entry::new(
            at_ms,
            ctx,
            &call.name,
            arguments,
            &outcome,
            duration_ms,
            "agent",
        );
        self.tool_log.record(Entry {
            tool_call_id: Some(call.id.clone()),
            approval: approval.as_ref().map(|v| match (v.approved, v.step_up) {
                (true, true) => "step_up_approved".into(),
                (true, false) => "approved".into(),
                (false, _) => "refused".into(),
            }),
            approver_id: approval.as_ref().and_then(|v| v.by.clone()),
            model: Some(self.provider.model().to_string()),
            api: Some(self.provider.name().to_string()),
            ..entry
        });
        let status = CallStatus::of(&outcome);
        let result = match outcome {
            Ok(v) => result_text(&v),
            Err(e) => format!("Error: {e}"),
        };
        ToolRecord {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            status,
            duration_ms,
            result: result.chars().take(MAX_RESULT_CHARS).collect(),
        }
    }
}
