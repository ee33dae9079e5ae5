//! Pending approvals of tool calls under the `ask` policy: the agent registers one and waits; the owner of the
//! conversation decides through `POST /chat/approvals/{id}`. Nobody else can decide (their id finds nothing).
//! Every decision that lands is recorded in the audit trail (`tool.approval`).
//!
//! A call under a step-up rule is registered with its [`StepUpBinding`]; [`Approvals::decide`] then only refuses
//! it, and approving takes [`Approvals::approve_step_up`] with the same binding, which the service that checked
//! the approver's second-factor code (`mfa`) calls. This module knows no factor: it keeps what a code is bound to.
//!
//! Across instances (issue 12): a pending call is a `tool_approvals` row, so the decision may be posted to any
//! instance. Deciding is one conditional UPDATE (the owner, still pending, unexpired, and for a step-up call the
//! same binding), so exactly one decision or withdrawal lands. The waiting instance learns it at once when it was
//! taken here (the in-memory fast path), otherwise by re-reading the row: when [`Approvals::wake`] is called (a
//! push from another instance) and, as the safety net, every [`POLL`]. A wait that ends undecided withdraws the
//! row, so a late decision finds nothing.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, oneshot};

use crate::{
    audit::{Audit, Event},
    clock::SharedClock,
    cluster::{Bus, Change},
    ids::{ApprovalId, UserId},
    store::Db,
};

/// How often a waiting call re-reads its row when no push arrives: one indexed read per pending call.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a row is kept after it was created: far past any wait, so only settled rows go.
const KEEP_MS: i64 = 24 * 3600 * 1000;

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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub approved: bool,
    /// Who decided; `None` when nobody did in time (a refusal).
    pub by: Option<UserId>,
    /// The approval came with a verified step-up code.
    pub step_up: bool,
}

impl Verdict {
    /// Nobody decided in time.
    fn unanswered() -> Verdict {
        Verdict {
            approved: false,
            by: None,
            step_up: false,
        }
    }
}

/// What a pending call awaits from its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Awaiting {
    /// A plain yes or no.
    Plain,
    /// A yes needs a fresh second-factor code bound to this.
    StepUp(StepUpBinding),
}

/// One pending call as stored: its owner, its binding's parts (step-up only), and its outcome once decided.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Row {
    user_id: String,
    tool: Option<String>,
    arguments_sha256: Option<String>,
    expires_at: i64,
    decision: Option<String>,
    decided_by: Option<String>,
}

impl Row {
    /// The decision it holds, if one landed (a withdrawal is none).
    fn verdict(&self) -> Option<Verdict> {
        let approved = match self.decision.as_deref()? {
            APPROVED => true,
            REFUSED => false,
            _ => return None,
        };
        Some(Verdict {
            approved,
            by: self.decided_by.clone().map(UserId::from),
            step_up: approved && self.tool.is_some(),
        })
    }
}

const APPROVED: &str = "approved";
const REFUSED: &str = "refused";
const WITHDRAWN: &str = "withdrawn";

/// Which pending calls a decision may land on.
enum Condition<'a> {
    /// A refusal: any call (refusing needs no code).
    Any,
    /// A plain approval: calls without a step-up binding.
    Plain,
    /// An approval with a verified code: the call bound to exactly this tool and these arguments.
    Bound {
        tool: &'a str,
        arguments_sha256: &'a str,
    },
}

/// Where the rows live: the database; or this process's memory, for the agent's unit tests, which run on paused
/// time where a database round trip would let the clock jump past their deadlines.
#[derive(Clone)]
enum Rows {
    Db(Db),
    /// The agent's paused-time unit tests only: a database round trip there would let the clock run past them.
    #[cfg(test)]
    Memory(Arc<Mutex<HashMap<ApprovalId, Row>>>),
}

impl Rows {
    /// Stores a new row, and drops the rows older than [`KEEP_MS`] (calls are asked at a person's pace, so one
    /// indexed DELETE each keeps the table small).
    async fn insert(&self, id: &ApprovalId, row: &Row, now: i64) -> sqlx::Result<()> {
        match self {
            Rows::Db(db) => {
                sqlx::query("DELETE FROM tool_approvals WHERE created_at < $1")
                    .bind(now - KEEP_MS)
                    .execute(db.writer())
                    .await?;
                sqlx::query(
                    "INSERT INTO tool_approvals (id, user_id, tool, arguments_sha256, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id.as_str())
                .bind(&row.user_id)
                .bind(&row.tool)
                .bind(&row.arguments_sha256)
                .bind(now)
                .bind(row.expires_at)
                .execute(db.writer())
                .await?;
            }
            #[cfg(test)]
            Rows::Memory(rows) => {
                rows.lock().insert(id.clone(), row.clone());
            }
        }
        Ok(())
    }

    async fn find(&self, id: &ApprovalId) -> sqlx::Result<Option<Row>> {
        match self {
            Rows::Db(db) => {
                sqlx::query_as(
                    "SELECT user_id, tool, arguments_sha256, expires_at, decision, decided_by \
                     FROM tool_approvals WHERE id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&db.pool)
                .await
            }
            #[cfg(test)]
            Rows::Memory(rows) => Ok(rows.lock().get(id).cloned()),
        }
    }

    /// Sets the outcome of a call still pending and unexpired at `now`, owned by `user_id` (any owner when
    /// `None`: a withdrawal) and matching `condition`; whether it landed.
    async fn settle(
        &self,
        id: &ApprovalId,
        user_id: Option<&UserId>,
        decision: &str,
        condition: Condition<'_>,
        now: i64,
    ) -> sqlx::Result<bool> {
        match self {
            Rows::Db(db) => {
                let (mode, tool, sha): (i64, Option<&str>, Option<&str>) = match condition {
                    Condition::Any => (0, None, None),
                    Condition::Plain => (1, None, None),
                    Condition::Bound {
                        tool,
                        arguments_sha256,
                    } => (2, Some(tool), Some(arguments_sha256)),
                };
                // A withdrawal (no user) lands whatever the time; a decision only before the call's wait ends.
                let q = sqlx::query(
                    "UPDATE tool_approvals SET decision = $1, decided_by = $2, decided_at = $3 \
                     WHERE id = $4 AND decision IS NULL \
                     AND ($2 IS NULL OR (user_id = $2 AND expires_at > $3)) \
                     AND ($5 = 0 OR ($5 = 1 AND tool IS NULL) \
                          OR ($5 = 2 AND tool = $6 AND arguments_sha256 = $7))",
                )
                .bind(decision)
                .bind(user_id.map(UserId::as_str))
                .bind(now)
                .bind(id.as_str())
                .bind(mode)
                .bind(tool)
                .bind(sha);
                Ok(q.execute(db.writer()).await?.rows_affected() == 1)
            }
            #[cfg(test)]
            Rows::Memory(rows) => {
                let mut rows = rows.lock();
                let Some(row) = rows.get_mut(id) else {
                    return Ok(false);
                };
                let allowed = row.decision.is_none()
                    && user_id.is_none_or(|u| u.as_str() == row.user_id && row.expires_at > now)
                    && match condition {
                        Condition::Any => true,
                        Condition::Plain => row.tool.is_none(),
                        Condition::Bound {
                            tool,
                            arguments_sha256,
                        } => {
                            row.tool.as_deref() == Some(tool)
                                && row.arguments_sha256.as_deref() == Some(arguments_sha256)
                        }
                    };
                if allowed {
                    row.decision = Some(decision.to_string());
                    row.decided_by = user_id.map(|u| u.as_str().to_string());
                }
                Ok(allowed)
            }
        }
    }
}

/// A call waiting on this instance: where a decision taken here is handed over, and what wakes it to re-read.
struct Waiter {
    verdict: oneshot::Sender<Verdict>,
    wake: Arc<Notify>,
}

/// A registered call, until [`Approvals::wait`] ends it.
pub struct Pending {
    pub id: ApprovalId,
    verdict: oneshot::Receiver<Verdict>,
    wake: Arc<Notify>,
    wait: Duration,
}

/// The calls waiting for a decision: their rows (shared by all instances) and this instance's waiters.
pub struct Approvals {
    rows: Rows,
    waiters: Arc<Mutex<HashMap<ApprovalId, Waiter>>>,
    clock: SharedClock,
    /// Where decisions are recorded; `None` only in unit tests.
    audit: Option<Audit>,
    /// Tells the other instances of a decision, so the one whose turn waits reads it at once.
    bus: Bus,
}

impl Approvals {
    /// Approvals kept in `db`, whose decisions are recorded in `audit`.
    pub fn new(db: Db, audit: Audit, clock: SharedClock, bus: Bus) -> Approvals {
        Approvals {
            rows: Rows::Db(db),
            waiters: Arc::default(),
            clock,
            audit: Some(audit),
            bus,
        }
    }

    /// Approvals in this process's memory only, never purged: for the agent's paused-time unit tests.
    #[cfg(test)]
    pub fn in_memory(audit: Option<Audit>, clock: SharedClock) -> Approvals {
        Approvals {
            rows: Rows::Memory(Arc::default()),
            waiters: Arc::default(),
            clock,
            audit,
            bus: Bus::none(),
        }
    }

    /// Registers a call awaiting `user_id`'s decision for at most `wait`. With `step_up` (the tool's name and
    /// arguments), approving needs a code bound to this call.
    pub async fn request(
        &self,
        user_id: &UserId,
        step_up: Option<(&str, &Value)>,
        wait: Duration,
    ) -> sqlx::Result<Pending> {
        let id = ApprovalId::from(uuid::Uuid::new_v4().to_string());
        let now = self.clock.now_ms();
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
        let row = Row {
            user_id: user_id.as_str().to_string(),
            tool: step_up.map(|(tool, _)| tool.to_string()),
            arguments_sha256: step_up.map(|(_, arguments)| arguments_sha256(arguments)),
            expires_at: now.saturating_add(wait_ms),
            decision: None,
            decided_by: None,
        };
        self.rows.insert(&id, &row, now).await?;
        let (tx, verdict) = oneshot::channel();
        let wake = Arc::new(Notify::new());
        self.waiters.lock().insert(
            id.clone(),
            Waiter {
                verdict: tx,
                wake: wake.clone(),
            },
        );
        Ok(Pending {
            id,
            verdict,
            wake,
            wait,
        })
    }

    /// Waits for the decision on `pending`; no decision within its wait is a refusal, and withdraws the call.
    /// Dropped before the end (the turn went away), it withdraws the call too.
    pub async fn wait(&self, pending: Pending) -> Verdict {
        let Pending {
            id,
            mut verdict,
            wake,
            wait,
        } = pending;
        let mut guard = Withdraw {
            id: id.clone(),
            armed: true,
            rows: self.rows.clone(),
            waiters: self.waiters.clone(),
            clock: self.clock.clone(),
        };
        let deadline = tokio::time::sleep(wait);
        tokio::pin!(deadline);
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                decided = &mut verdict => {
                    guard.disarm();
                    return decided.unwrap_or_else(|_| Verdict::unanswered());
                }
                () = &mut deadline => break,
                () = wake.notified() => {}
                _ = poll.tick() => {}
            }
            // Decided on another instance?
            match self.rows.find(&id).await {
                Ok(Some(row)) => {
                    if let Some(v) = row.verdict() {
                        guard.disarm();
                        return v;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "re-reading a pending approval"),
            }
        }
        guard.disarm();
        // A decision may have landed just before the withdrawal: then it stands.
        match withdraw(&self.rows, &id, self.clock.now_ms()).await {
            Ok(true) => Verdict::unanswered(),
            _ => match self.rows.find(&id).await {
                Ok(Some(row)) => row.verdict().unwrap_or_else(Verdict::unanswered),
                _ => Verdict::unanswered(),
            },
        }
    }

    /// Tells the call `id`, if it waits on this instance, to re-read its row now (a push from another instance
    /// said it changed).
    pub fn wake(&self, id: &ApprovalId) {
        if let Some(w) = self.waiters.lock().get(id) {
            w.wake.notify_one();
        }
    }

    /// What the pending call `id` awaits from `user_id`; `None` when there is none for that user.
    pub async fn awaiting(
        &self,
        id: &ApprovalId,
        user_id: &UserId,
    ) -> sqlx::Result<Option<Awaiting>> {
        let row = self.rows.find(id).await?.filter(|r| {
            r.user_id == user_id.as_str()
                && r.decision.is_none()
                && r.expires_at > self.clock.now_ms()
        });
        Ok(row.map(|r| match (r.tool, r.arguments_sha256) {
            (Some(tool), Some(arguments_sha256)) => Awaiting::StepUp(StepUpBinding {
                approver: user_id.clone(),
                approval_id: id.clone(),
                tool,
                arguments_sha256,
            }),
            _ => Awaiting::Plain,
        }))
    }

    /// Records `user_id`'s decision and its audit event. False when there is no such pending call for that user,
    /// and for an approval of a step-up call (that takes [`Approvals::approve_step_up`]; refusing needs no code).
    pub async fn decide(
        &self,
        id: &ApprovalId,
        user_id: &UserId,
        approved: bool,
    ) -> sqlx::Result<bool> {
        let condition = if approved {
            Condition::Plain
        } else {
            Condition::Any
        };
        self.deliver(id, user_id, approved, false, condition).await
    }

    /// Approves a step-up call whose code the caller has verified against `binding`. False unless the call is
    /// pending for `binding.approver` under exactly that binding.
    pub async fn approve_step_up(&self, binding: &StepUpBinding) -> sqlx::Result<bool> {
        let condition = Condition::Bound {
            tool: &binding.tool,
            arguments_sha256: &binding.arguments_sha256,
        };
        self.deliver(
            &binding.approval_id,
            &binding.approver,
            true,
            true,
            condition,
        )
        .await
    }

    async fn deliver(
        &self,
        id: &ApprovalId,
        user_id: &UserId,
        approved: bool,
        step_up: bool,
        condition: Condition<'_>,
    ) -> sqlx::Result<bool> {
        let decision = if approved { APPROVED } else { REFUSED };
        let now = self.clock.now_ms();
        if !self
            .rows
            .settle(id, Some(user_id), decision, condition, now)
            .await?
        {
            return Ok(false);
        }
        // The fast path: the turn waits here. Elsewhere its instance reads the row when this push reaches it (or
        // at its next poll of the row).
        let waiter = self.waiters.lock().remove(id);
        match waiter {
            Some(w) => {
                let _ = w.verdict.send(Verdict {
                    approved,
                    by: Some(user_id.clone()),
                    step_up,
                });
            }
            None => self.bus.publish(Change::Approval(id.to_string())),
        }
        if let Some(audit) = &self.audit {
            audit.record(
                Event::new("tool.approval", "ok")
                    .actor(user_id.as_str())
                    .subject(id.as_str())
                    .detail(serde_json::json!({ "decision": decision, "step_up": step_up })),
            );
        }
        Ok(true)
    }
}

async fn withdraw(rows: &Rows, id: &ApprovalId, now: i64) -> sqlx::Result<bool> {
    rows.settle(id, None, WITHDRAWN, Condition::Any, now).await
}

/// Forgets a call's waiter however its wait ends; when the wait was dropped before it ended (the turn was
/// cancelled), also withdraws the call in the background, so a late decision finds nothing.
struct Withdraw {
    id: ApprovalId,
    armed: bool,
    rows: Rows,
    waiters: Arc<Mutex<HashMap<ApprovalId, Waiter>>>,
    clock: SharedClock,
}

impl Withdraw {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.id);
        if !self.armed {
            return;
        }
        let (id, rows, now) = (self.id.clone(), self.rows.clone(), self.clock.now_ms());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = withdraw(&rows, &id, now).await {
                    tracing::warn!(error = %e, "withdrawing a dropped approval");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    const WAIT: Duration = Duration::from_secs(60);

    /// Two instances' approvals over one SQLite database.
    async fn two_instances(dir: &tempfile::TempDir) -> (Approvals, Approvals) {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        let on = |db: Db| Approvals {
            rows: Rows::Db(db),
            waiters: Arc::default(),
            clock: Arc::new(SystemClock),
            audit: None,
            bus: Bus::none(),
        };
        (on(db.clone()), on(db))
    }

    #[tokio::test]
    async fn only_the_owner_decides_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = two_instances(&dir).await;
        let (alice, mallory) = (UserId::from("alice"), UserId::from("mallory"));
        let pending = a.request(&alice, None, WAIT).await.unwrap();
        let id = pending.id.clone();
        assert!(!a.decide(&id, &mallory, true).await.unwrap());
        assert!(a.decide(&id, &alice, false).await.unwrap());
        assert!(!a.decide(&id, &alice, true).await.unwrap());
        assert_eq!(
            a.wait(pending).await,
            Verdict {
                approved: false,
                by: Some("alice".into()),
                step_up: false,
            }
        );
    }

    #[tokio::test]
    async fn a_decision_on_another_instance_releases_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_instances(&dir).await;
        let alice = UserId::from("alice");
        let pending = a.request(&alice, None, WAIT).await.unwrap();
        let id = pending.id.clone();
        assert_eq!(
            b.awaiting(&id, &alice).await.unwrap(),
            Some(Awaiting::Plain)
        );
        assert_eq!(b.awaiting(&id, &"mallory".into()).await.unwrap(), None);
        let started = std::time::Instant::now();
        let (verdict, decided) = tokio::join!(a.wait(pending), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.decide(&id, &alice, true).await.unwrap()
        });
        assert!(decided);
        assert_eq!(verdict.by, Some(alice.clone()));
        assert!(verdict.approved);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(a.waiters.lock().is_empty(), "the waiter is forgotten");
    }

    #[tokio::test]
    async fn a_wait_that_ends_withdraws_the_call_and_a_late_decision_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_instances(&dir).await;
        let alice = UserId::from("alice");
        let pending = a
            .request(&alice, None, Duration::from_millis(150))
            .await
            .unwrap();
        let id = pending.id.clone();
        assert_eq!(a.wait(pending).await, Verdict::unanswered());
        assert_eq!(b.awaiting(&id, &alice).await.unwrap(), None);
        assert!(!b.decide(&id, &alice, true).await.unwrap());
        assert!(!a.decide(&id, &alice, false).await.unwrap());
    }

    #[tokio::test]
    async fn a_new_call_drops_the_rows_older_than_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = two_instances(&dir).await;
        let Rows::Db(db) = &a.rows else {
            unreachable!()
        };
        let old = a.request(&"alice".into(), None, WAIT).await.unwrap();
        sqlx::query("UPDATE tool_approvals SET created_at = created_at - $1")
            .bind(KEEP_MS + 1)
            .execute(&db.pool)
            .await
            .unwrap();
        let new = a.request(&"alice".into(), None, WAIT).await.unwrap();
        assert!(a.rows.find(&old.id).await.unwrap().is_none());
        assert!(a.rows.find(&new.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_dropped_wait_withdraws_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_instances(&dir).await;
        let alice = UserId::from("alice");
        let pending = a.request(&alice, None, WAIT).await.unwrap();
        let id = pending.id.clone();
        let wait = tokio::time::timeout(Duration::from_millis(50), a.wait(pending)).await;
        assert!(wait.is_err(), "still waiting when dropped");
        let mut withdrawn = false;
        for _ in 0..100 {
            if b.awaiting(&id, &alice).await.unwrap().is_none() {
                withdrawn = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(withdrawn);
        assert!(!b.decide(&id, &alice, true).await.unwrap());
    }

    #[tokio::test]
    async fn a_step_up_call_is_approved_only_with_its_own_binding() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = two_instances(&dir).await;
        let alice = UserId::from("alice");
        let args = serde_json::json!({"to": "bob", "amount": 10});
        let pending = a.request(&alice, Some(("pay", &args)), WAIT).await.unwrap();
        let id = pending.id.clone();
        let other_args = serde_json::json!({"to": "bob", "amount": 1000});
        let other = a
            .request(&alice, Some(("pay", &other_args)), WAIT)
            .await
            .unwrap();
        let Some(Awaiting::StepUp(binding)) = b.awaiting(&id, &alice).await.unwrap() else {
            panic!("a step-up approval");
        };
        assert_eq!(b.awaiting(&id, &"mallory".into()).await.unwrap(), None);
        assert!(
            !b.decide(&id, &alice, true).await.unwrap(),
            "a plain yes is not enough"
        );
        let Some(Awaiting::StepUp(other_binding)) = b.awaiting(&other.id, &alice).await.unwrap()
        else {
            panic!("a step-up approval");
        };
        let mut moved = other_binding.clone();
        moved.approval_id = id.clone();
        assert!(
            !b.approve_step_up(&moved).await.unwrap(),
            "another call's arguments"
        );
        assert!(b.approve_step_up(&binding).await.unwrap());
        assert!(!b.approve_step_up(&binding).await.unwrap(), "only once");
        assert_eq!(
            a.wait(pending).await,
            Verdict {
                approved: true,
                by: Some(alice.clone()),
                step_up: true,
            }
        );
        assert!(
            b.decide(&other.id, &alice, false).await.unwrap(),
            "refusing needs no code"
        );
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
