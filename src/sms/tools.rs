//! The agent's SMS tools: `sms_send`, `phone_lookup`, `phone_risk`. They go through the same [`Sms`] service
//! as the routes (destination rules, limits, the log). Each names the SMS permission its route needs
//! (`sms:send`, `sms:lookup`) as its `required_permission`: the catalog neither offers nor runs it for a caller
//! without that permission, on top of `tools:call:<name>` and the tool policy.

use std::sync::Arc;

use futures::{FutureExt, future::BoxFuture};
use serde_json::{Value, json};

use super::{MessageKind, PhoneNumber, Sms, SmsError};
use crate::tools::{Tool, ToolContext, ToolSpec};

/// The permission names the tools ask for (the same as `auth::permissions`).
pub const SMS_SEND: &str = "sms:send";
pub const SMS_LOOKUP: &str = "sms:lookup";

pub fn all(sms: Arc<Sms>) -> Vec<Arc<dyn Tool>> {
    [ToolKind::Send, ToolKind::Lookup, ToolKind::Risk]
        .into_iter()
        .map(|kind| {
            Arc::new(SmsTool {
                kind,
                sms: sms.clone(),
            }) as Arc<dyn Tool>
        })
        .collect()
}

#[derive(Clone, Copy)]
enum ToolKind {
    Send,
    Lookup,
    Risk,
}

struct SmsTool {
    kind: ToolKind,
    sms: Arc<Sms>,
}

/// A message for the model: what went wrong, never an internal detail.
fn model_error(e: SmsError) -> String {
    match e {
        SmsError::Internal(_) => "the SMS service failed".into(),
        e => e.to_string(),
    }
}

impl Tool for SmsTool {
    fn required_permission(&self) -> Option<&'static str> {
        Some(match self.kind {
            ToolKind::Send => SMS_SEND,
            ToolKind::Lookup | ToolKind::Risk => SMS_LOOKUP,
        })
    }

    fn spec(&self) -> ToolSpec {
        match self.kind {
            ToolKind::Send => ToolSpec {
                name: "sms_send".into(),
                description: "Send a text message (SMS) to a phone number".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "phone_number": {"type": "string", "description": "international, like +1 555 867 5309"},
                        "message": {"type": "string", "maxLength": 1600}
                    },
                    "required": ["phone_number", "message"]
                }).into(),
            },
            ToolKind::Lookup => ToolSpec {
                name: "phone_lookup".into(),
                description:
                    "Look a phone number up: its type, carrier, country and whether it is blocked"
                        .into(),
                parameters: json!({
                    "type": "object",
                    "properties": {"phone_number": {"type": "string"}},
                    "required": ["phone_number"]
                }).into(),
            },
            ToolKind::Risk => ToolSpec {
                name: "phone_risk".into(),
                description: "Assess the fraud risk of a phone number".into(),
                parameters: json!({
                    "type": "object",
                    "properties": {
                        "phone_number": {"type": "string"},
                        "account_lifecycle_event": {"type": "string", "enum": ["create", "sign-in", "transact", "update", "delete"]}
                    },
                    "required": ["phone_number"]
                }).into(),
            },
        }
    }

    fn call<'a>(
        &'a self,
        arguments: Value,
        ctx: &'a ToolContext,
    ) -> BoxFuture<'a, Result<Value, String>> {
        async move {
            let raw = arguments["phone_number"]
                .as_str()
                .ok_or("phone_number is required")?;
            let number = PhoneNumber::parse(raw).map_err(|e| e.to_string())?;
            match self.kind {
                ToolKind::Send => {
                    let message = arguments["message"]
                        .as_str()
                        .filter(|m| !m.trim().is_empty() && m.chars().count() <= 1600)
                        .ok_or("message is required (at most 1600 characters)")?;
                    let sent = self
                        .sms
                        .send_message(&ctx.user_id, &number, message, MessageKind::Arn, None)
                        .await
                        .map_err(model_error)?;
                    Ok(json!({
                        "phone_number": number.masked(),
                        "reference_id": sent.reference_id,
                        "status_code": sent.status_code,
                        "status": sent.status,
                    }))
                }
                ToolKind::Lookup => {
                    let info = self
                        .sms
                        .phone_id(&ctx.user_id, &number)
                        .await
                        .map_err(model_error)?;
                    serde_json::to_value(info).map_err(|e| e.to_string())
                }
                ToolKind::Risk => {
                    let event = arguments["account_lifecycle_event"]
                        .as_str()
                        .unwrap_or("create");
                    if !["create", "sign-in", "transact", "update", "delete"].contains(&event) {
                        return Err(
                            "account_lifecycle_event is create, sign-in, transact, update or delete"
                                .into(),
                        );
                    }
                    let risk = self
                        .sms
                        .assess_risk(&ctx.user_id, &number, event)
                        .await
                        .map_err(model_error)?;
                    Ok(json!({
                        "phone_number": number.masked(),
                        "risk_level": risk.level,
                        "risk_score": risk.score,
                        "recommendation": risk.recommendation,
                        "phone_type": risk.phone_type,
                        "carrier": risk.carrier,
                    }))
                }
            }
        }
        .boxed()
    }
}
