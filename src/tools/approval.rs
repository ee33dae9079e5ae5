//! Pending approvals of tool calls under the `ask` policy: the agent registers one and waits; the owner of the
//! conversation decides through `POST /chat/approvals/{id}`. Nobody else can decide (their id finds nothing).
//! Every decision that lands is recorded in the audit trail (`tool.approval`).

use std::collections::HashMap;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{
    audit::{Audit, Event},
    ids::{ApprovalId, UserId},
};

struct Pending {
    user_id: UserId,
    decide: oneshot::Sender<Verdict>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub approved: bool,
    /// Who decided; `None` when nobody did in time (a refusal).
    pub by: Option<UserId>,
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

    /// Registers a call awaiting `user_id`'s decision; the receiver yields it (or closes if withdrawn).
    pub fn request(&self, user_id: &UserId) -> (ApprovalId, oneshot::Receiver<Verdict>) {
        let id = ApprovalId::from(uuid::Uuid::new_v4().to_string());
        let (decide, wait) = oneshot::channel();
        self.pending.lock().insert(
            id.clone(),
            Pending {
                user_id: user_id.clone(),
                decide,
            },
        );
        (id, wait)
    }

    /// Forgets a request nobody answered (timeout or cancelled turn).
    pub fn withdraw(&self, id: &ApprovalId) {
        self.pending.lock().remove(id);
    }

    /// Records `user_id`'s decision and its audit event. False when there is no such pending call for that user.
    pub fn decide(&self, id: &ApprovalId, user_id: &UserId, approved: bool) -> bool {
        let delivered = {
            let mut pending = self.pending.lock();
            if pending.get(id).is_none_or(|p| &p.user_id != user_id) {
                return false;
            }
            let Some(p) = pending.remove(id) else {
                return false;
            };
            p.decide
                .send(Verdict {
                    approved,
                    by: Some(user_id.clone()),
                })
                .is_ok()
        };
        if delivered && let Some(audit) = &self.audit {
            let outcome = if approved { "approved" } else { "refused" };
            audit.record(
                Event::new("tool.approval", "ok")
                    .actor(user_id.as_str())
                    .subject(id.as_str())
                    .detail(serde_json::json!({ "decision": outcome })),
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
        let (id, wait) = a.request(&alice);
        assert!(!a.decide(&id, &mallory, true));
        assert!(a.decide(&id, &alice, false));
        assert!(!a.decide(&id, &alice, true));
        assert_eq!(
            wait.await.unwrap(),
            Verdict {
                approved: false,
                by: Some("alice".into())
            }
        );
    }
}
