//! Pending approvals of tool calls under the `ask` policy: the agent registers one and waits; the owner of the
//! conversation decides through `POST /chat/approvals/{id}`. Nobody else can decide (their id finds nothing).
//! Every decision that lands is recorded in the audit trail (`tool.approval`).
//!
//! A call under a step-up rule is registered with its [`StepUpBinding`]; [`Approvals::decide`] then only refuses
//! it, and approving takes [`Approvals::approve_step_up`] with the same binding, which the service that checked
//! the approver's second-factor code (`mfa`) calls. This module knows no factor: it keeps what a code is bound to.

use std::collections::HashMap;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::{
    audit::{Audit, Event},
    ids::{ApprovalId, UserId},
};

/// How long a step-up code lives after it is issued, ms: short, so the code proves presence at this decision.
pub const STEP_UP_CODE_MS: i64 = 2 * 60_000;

/// What a step-up code is bound to: the approver, the approval, the tool and its exact arguments. A code issued
/// for one binding proves nothing about another (another approval, tool, argument or user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepUpBinding {
    pub approver: UserId,
    pub approval_id: ApprovalId,
    pub tool: String,
    /// [`arguments_sha256`] of the call's arguments.
    pub arguments_sha256: String,
}

impl StepUpBinding {
    /// The text a code's HMAC covers: every part of the binding, NUL-separated (no part holds a NUL: ids are
    /// UUIDs or names, the hash is hex, and a tool name is a catalog name).
    pub fn key(&self) -> String {
        format!(
            "step-up\0{}\0{}\0{}\0{}",
            self.approver, self.approval_id, self.tool, self.arguments_sha256
        )
    }

    /// The SHA-256 (hex) of [`StepUpBinding::key`]: what the challenge row stores to name its binding.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.key().as_bytes()))
    }

    /// When a code issued at `issued_at_ms` stops working.
    pub fn expires_at(issued_at_ms: i64) -> i64 {
        issued_at_ms + STEP_UP_CODE_MS
    }

    /// Whether a code that expires at `expires_at_ms` is expired at `now_ms` (by the injected clock).
    pub fn is_expired(expires_at_ms: i64, now_ms: i64) -> bool {
        expires_at_ms <= now_ms
    }
}

/// The SHA-256 (hex) of the canonical JSON of `arguments`: object keys sorted at every depth, no whitespace, so
/// the same arguments hash the same however the model spelled them.
pub fn arguments_sha256(arguments: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut text = String::new();
    canonical(arguments, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Which second factors a user can approve a step-up call with (`sms`, `totp`); the mfa service answers, so
/// the agent can say so in its `approval_required` event without this module knowing any factor.
pub trait ApproverFactors: Send + Sync {
    fn step_up_methods<'a>(&'a self, user_id: &'a UserId) -> BoxFuture<'a, Vec<&'static str>>;
}

struct Pending {
    user_id: UserId,
    step_up: Option<StepUpBinding>,
    decide: oneshot::Sender<Verdict>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub approved: bool,
    /// Who decided; `None` when nobody did in time (a refusal).
    pub by: Option<UserId>,
    /// The approval came with a verified step-up code.
    pub step_up: bool,
}

/// What a pending call awaits from its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Awaiting {
    /// A plain yes or no.
    Plain,
    /// A yes needs a fresh second-factor code bound to this.
    StepUp(StepUpBinding),
}

/// The calls waiting for a decision, on this instance.
#[derive(Default)]
pub struct Approvals {
    pending: Mutex<HashMap<ApprovalId, Pending>>,
    /// Where decisions are recorded; `None` only in unit tests.
    audit: Option<Audit>,
}

impl Approvals {
    /// Approvals whose decisions are recorded in `audit`.
    pub fn new(audit: Audit) -> Approvals {
        Approvals {
            pending: Mutex::default(),
            audit: Some(audit),
        }
    }

    /// Registers a call awaiting `user_id`'s decision; the receiver yields it (or closes if withdrawn). With
    /// `step_up` (the tool's name and arguments), approving needs a code bound to this call.
    pub fn request(
        &self,
        user_id: &UserId,
        step_up: Option<(&str, &Value)>,
    ) -> (ApprovalId, oneshot::Receiver<Verdict>) {
        let id = ApprovalId::from(uuid::Uuid::new_v4().to_string());
        let (decide, wait) = oneshot::channel();
        let step_up = step_up.map(|(tool, arguments)| StepUpBinding {
            approver: user_id.clone(),
            approval_id: id.clone(),
            tool: tool.to_string(),
            arguments_sha256: arguments_sha256(arguments),
        });
        self.pending.lock().insert(
            id.clone(),
            Pending {
                user_id: user_id.clone(),
                step_up,
                decide,
            },
        );
        (id, wait)
    }

    /// What the pending call `id` awaits from `user_id`; `None` when there is none for that user.
    pub fn awaiting(&self, id: &ApprovalId, user_id: &UserId) -> Option<Awaiting> {
        let pending = self.pending.lock();
        let p = pending.get(id).filter(|p| &p.user_id == user_id)?;
        Some(match &p.step_up {
            Some(b) => Awaiting::StepUp(b.clone()),
            None => Awaiting::Plain,
        })
    }

    /// Forgets a request nobody answered (timeout or cancelled turn).
    pub fn withdraw(&self, id: &ApprovalId) {
        self.pending.lock().remove(id);
    }

    /// Records `user_id`'s decision and its audit event. False when there is no such pending call for that user,
    /// and for an approval of a step-up call (that takes [`Approvals::approve_step_up`]; refusing needs no code).
    pub fn decide(&self, id: &ApprovalId, user_id: &UserId, approved: bool) -> bool {
        self.deliver(id, user_id, approved, |p| !approved || p.step_up.is_none())
    }

    /// Approves a step-up call whose code the caller has verified against `binding`. False unless the call is
    /// pending for `binding.approver` under exactly that binding.
    pub fn approve_step_up(&self, binding: &StepUpBinding) -> bool {
        self.deliver(&binding.approval_id, &binding.approver, true, |p| {
            p.step_up.as_ref() == Some(binding)
        })
    }

    fn deliver(
        &self,
        id: &ApprovalId,
        user_id: &UserId,
        approved: bool,
        allowed: impl Fn(&Pending) -> bool,
    ) -> bool {
        let (delivered, step_up) = {
            let mut pending = self.pending.lock();
            if pending
                .get(id)
                .is_none_or(|p| &p.user_id != user_id || !allowed(p))
            {
                return false;
            }
            let Some(p) = pending.remove(id) else {
                return false;
            };
            let step_up = approved && p.step_up.is_some();
            let delivered = p
                .decide
                .send(Verdict {
                    approved,
                    by: Some(user_id.clone()),
                    step_up,
                })
                .is_ok();
            (delivered, step_up)
        };
        if delivered && let Some(audit) = &self.audit {
            let outcome = if approved { "approved" } else { "refused" };
            audit.record(
                Event::new("tool.approval", "ok")
                    .actor(user_id.as_str())
                    .subject(id.as_str())
                    .detail(serde_json::json!({ "decision": outcome, "step_up": step_up })),
            );
        }
        delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_owner_decides_and_only_once() {
        let a = Approvals::default();
        let (alice, mallory) = (UserId::from("alice"), UserId::from("mallory"));
        let (id, wait) = a.request(&alice, None);
        assert!(!a.decide(&id, &mallory, true));
        assert!(a.decide(&id, &alice, false));
        assert!(!a.decide(&id, &alice, true));
        assert_eq!(
            wait.await.unwrap(),
            Verdict {
                approved: false,
                by: Some("alice".into()),
                step_up: false,
            }
        );
    }

    #[tokio::test]
    async fn a_step_up_call_is_approved_only_with_its_own_binding() {
        let a = Approvals::default();
        let alice = UserId::from("alice");
        let args = serde_json::json!({"to": "bob", "amount": 10});
        let (id, wait) = a.request(&alice, Some(("pay", &args)));
        let other_args = serde_json::json!({"to": "bob", "amount": 1000});
        let (other, _other_wait) = a.request(&alice, Some(("pay", &other_args)));
        let Some(Awaiting::StepUp(binding)) = a.awaiting(&id, &alice) else {
            panic!("a step-up approval");
        };
        assert_eq!(a.awaiting(&id, &"mallory".into()), None);
        assert!(!a.decide(&id, &alice, true), "a plain yes is not enough");
        let Some(Awaiting::StepUp(other_binding)) = a.awaiting(&other, &alice) else {
            panic!("a step-up approval");
        };
        let mut moved = other_binding.clone();
        moved.approval_id = id.clone();
        assert!(!a.approve_step_up(&moved), "another call's arguments");
        assert!(a.approve_step_up(&binding));
        assert!(!a.approve_step_up(&binding), "only once");
        assert_eq!(
            wait.await.unwrap(),
            Verdict {
                approved: true,
                by: Some(alice.clone()),
                step_up: true,
            }
        );
        assert!(a.decide(&other, &alice, false), "refusing needs no code");
    }

    #[test]
    fn the_arguments_hash_is_canonical_and_covers_every_value() {
        let a = serde_json::json!({"b": [1, {"y": true, "x": null}], "a": "s"});
        let same: Value =
            serde_json::from_str(r#"{ "a" : "s", "b" : [1, {"x": null, "y": true}] }"#).unwrap();
        assert_eq!(arguments_sha256(&a), arguments_sha256(&same));
        assert_eq!(arguments_sha256(&a).len(), 64);
        for changed in [
            serde_json::json!({"b": [1, {"y": false, "x": null}], "a": "s"}),
            serde_json::json!({"b": [{"y": true, "x": null}, 1], "a": "s"}),
            serde_json::json!({"b": [1, {"y": true, "x": null}], "a": "t"}),
            serde_json::json!({"b": [1, {"y": true, "x": null}], "a": "s", "c": 0}),
        ] {
            assert_ne!(
                arguments_sha256(&a),
                arguments_sha256(&changed),
                "{changed}"
            );
        }
    }

    #[test]
    fn the_binding_key_names_every_part_and_the_code_expires_after_two_minutes() {
        let b = StepUpBinding {
            approver: "alice".into(),
            approval_id: "a1".into(),
            tool: "pay".into(),
            arguments_sha256: arguments_sha256(&serde_json::json!({"amount": 10})),
        };
        let variants = [
            StepUpBinding {
                approver: "bob".into(),
                ..b.clone()
            },
            StepUpBinding {
                approval_id: "a2".into(),
                ..b.clone()
            },
            StepUpBinding {
                tool: "refund".into(),
                ..b.clone()
            },
            StepUpBinding {
                arguments_sha256: arguments_sha256(&serde_json::json!({"amount": 11})),
                ..b.clone()
            },
        ];
        for v in &variants {
            assert_ne!(v.key(), b.key());
            assert_ne!(v.digest(), b.digest());
        }
        let issued = 1_000_000;
        let expires = StepUpBinding::expires_at(issued);
        assert_eq!(expires - issued, 120_000);
        assert!(!StepUpBinding::is_expired(expires, expires - 1));
        assert!(StepUpBinding::is_expired(expires, expires));
    }
}
