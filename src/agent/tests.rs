//! Unit tests of the agent loop with a scripted `LlmProvider` and paused time: the approval wait (no answer in
//! five minutes is a refusal), the deadline, and the step cap. Time is paused after set-up, so the waits take
//! no real time and their lengths are measured on tokio's clock.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use tokio::{sync::mpsc, time::Instant};

use super::{APPROVAL_WAIT, Agent, AgentEvent, Limits};
use crate::tools::log::CallStatus;
use crate::{
    audit::Audit,
    clock::{ManualClock, SharedClock},
    store::Db,
    tools::{
        Caller, Catalog, CatalogParts, ToolContext, approval::Approvals, builtin, log::ToolLog,
        policy::Policy,
    },
};

use super::llm::{
    DeltaSender, LlmError, LlmProvider, LlmRequest, LlmResponse, Message, ToolCall, Usage,
};

/// What the scripted model does on one request.
enum Turn {
    Answer(LlmResponse),
    /// Never answers (a model that hangs).
    Hang,
}

/// Answers each request with the next scripted turn; once the script is used up, repeats `then`.
struct Scripted {
    script: Mutex<VecDeque<Turn>>,
    then: fn() -> Turn,
    requests: Mutex<usize>,
}

impl Scripted {
    fn new(script: Vec<Turn>, then: fn() -> Turn) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Mutex::new(script.into()),
            then,
            requests: Mutex::new(0),
        })
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

impl LlmProvider for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn model(&self) -> &str {
        "scripted-model"
    }

    fn complete<'a>(
        &'a self,
        _: &'a LlmRequest,
        _: Option<&'a DeltaSender>,
    ) -> BoxFuture<'a, Result<LlmResponse, LlmError>> {
        *self.requests.lock().unwrap() += 1;
        let turn = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(self.then);
        match turn {
            Turn::Answer(response) => async move { Ok(response) }.boxed(),
            Turn::Hang => futures::future::pending().boxed(),
        }
    }
}

fn text(content: &str) -> Turn {
    Turn::Answer(LlmResponse {
        content: content.into(),
        tool_calls: Vec::new(),
        usage: Usage {
            input_tokens: 1,
            output_tokens: 1,
        },
        finish_reason: "stop".into(),
    })
}

fn call_add() -> Turn {
    Turn::Answer(LlmResponse {
        content: String::new(),
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: "add".into(),
            arguments: r#"{"a":1,"b":2}"#.into(),
        }],
        usage: Usage::default(),
        finish_reason: "tool_calls".into(),
    })
}

fn hang() -> Turn {
    Turn::Hang
}

fn account() -> Caller {
    Caller {
        user_id: "user-1".into(),
        session_id: "session-1".into(),
        role: "user".into(),
        permissions: vec!["*".into()],
    }
}

fn context() -> ToolContext {
    ToolContext {
        user_id: "user-1".into(),
        session_id: "session-1".into(),
        conversation_id: Some("conversation-1".into()),
    }
}

/// An agent over a migrated SQLite database in `dir`; `add` is under the `ask` policy when `ask` is set.
async fn agent(
    dir: &tempfile::TempDir,
    provider: Arc<Scripted>,
    limits: Limits,
    ask: bool,
) -> Agent {
    let db = Db::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await
    .unwrap();
    db.migrate().await.unwrap();
    if ask {
        sqlx::query(
            "INSERT INTO tool_policies (role, tool_pattern, decision, updated_at) VALUES ('user', 'add', 'ask', 0)",
        )
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let clock: SharedClock = ManualClock::new();
    let audit = Audit::start(db.clone(), clock.clone());
    let tool_log = ToolLog::start(
        db.clone(),
        None,
        crate::telemetry::tally::Tally::new(Arc::new(crate::clock::SystemClock)),
    );
    let catalog = Catalog::new(
        Policy::load(&db, crate::cluster::Bus::none())
            .await
            .unwrap(),
        CatalogParts {
            db,
            audit: audit.clone(),
            tool_log: tool_log.clone(),
            clock: clock.clone(),
        },
    );
    catalog.register(Arc::new(builtin::Add));
    Agent {
        provider,
        approvals: Arc::new(Approvals::in_memory(Some(audit), clock.clone())),
        catalog: Arc::new(catalog),
        tool_log,
        factors: None,
        clock,
        system_prompt: "test".into(),
        limits,
    }
}

fn limits(max_steps: usize, deadline: Duration) -> Limits {
    Limits {
        max_steps,
        deadline,
    }
}

#[tokio::test]
async fn an_approval_nobody_answers_for_five_minutes_is_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Scripted::new(vec![call_add(), text("refused")], hang);
    let limits = limits(4, Duration::from_secs(3600));
    let agent = Arc::new(agent(&dir, provider, limits, true).await);
    tokio::time::pause();
    let (events, mut seen) = mpsc::unbounded_channel();
    let started = Instant::now();
    let outcome = agent
        .run(
            &account(),
            &context(),
            vec![Message::user("add")],
            Some(events),
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= APPROVAL_WAIT && waited < APPROVAL_WAIT + Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(APPROVAL_WAIT, Duration::from_secs(300));
    let record = &outcome.tool_calls[0];
    assert_eq!(record.status, CallStatus::Error);
    assert!(record.result.contains("refused"), "{}", record.result);
    assert_eq!(outcome.content, "refused");
    // The request was announced, and withdrawn once the wait ended: a late answer finds nothing.
    let mut approval_id = None;
    while let Ok(event) = seen.try_recv() {
        if let AgentEvent::ApprovalRequired {
            approval_id: id, ..
        } = event
        {
            approval_id = Some(id);
        }
    }
    let approval_id = approval_id.expect("an approval_required event");
    assert!(
        !agent
            .approvals
            .decide(&approval_id, &"user-1".into(), true)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_approved_call_runs() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Scripted::new(vec![call_add(), text("3")], hang);
    let limits = limits(4, Duration::from_secs(3600));
    let agent = Arc::new(agent(&dir, provider, limits, true).await);
    tokio::time::pause();
    let (events, mut seen) = mpsc::unbounded_channel();
    let run = {
        let agent = agent.clone();
        tokio::spawn(async move {
            agent
                .run(
                    &account(),
                    &context(),
                    vec![Message::user("add")],
                    Some(events),
                )
                .await
        })
    };
    let approval_id = loop {
        match seen.recv().await.expect("events until the approval") {
            AgentEvent::ApprovalRequired { approval_id, .. } => break approval_id,
            _ => continue,
        }
    };
    // Another user cannot decide it; its owner can.
    assert!(
        !agent
            .approvals
            .decide(&approval_id, &"user-2".into(), true)
            .await
            .unwrap()
    );
    assert!(
        agent
            .approvals
            .decide(&approval_id, &"user-1".into(), true)
            .await
            .unwrap()
    );
    let outcome = run.await.unwrap().unwrap();
    assert_eq!(outcome.tool_calls[0].status, CallStatus::Success);
    assert_eq!(outcome.tool_calls[0].result, "3");
}

#[tokio::test]
async fn a_model_that_never_answers_ends_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Scripted::new(Vec::new(), hang);
    let deadline = Duration::from_secs(90);
    let agent = agent(&dir, provider.clone(), limits(4, deadline), false).await;
    tokio::time::pause();
    let started = Instant::now();
    let result = agent
        .run(&account(), &context(), vec![Message::user("hi")], None)
        .await;
    assert!(matches!(result, Err(LlmError::Timeout)), "{result:?}");
    let waited = started.elapsed();
    assert!(
        waited >= deadline && waited < deadline + Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(provider.requests(), 1);
}

#[tokio::test]
async fn the_deadline_covers_the_whole_loop_not_one_step() {
    let dir = tempfile::tempdir().unwrap();
    // Tool calls answer at once; the second request hangs: the deadline still ends the turn.
    let provider = Scripted::new(vec![call_add()], hang);
    let deadline = Duration::from_secs(30);
    let agent = agent(&dir, provider.clone(), limits(8, deadline), false).await;
    tokio::time::pause();
    let result = agent
        .run(&account(), &context(), vec![Message::user("hi")], None)
        .await;
    assert!(matches!(result, Err(LlmError::Timeout)), "{result:?}");
    assert_eq!(provider.requests(), 2);
}

#[tokio::test]
async fn the_step_cap_ends_a_model_that_only_calls_tools() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Scripted::new(Vec::new(), call_add);
    let agent = agent(
        &dir,
        provider.clone(),
        limits(3, Duration::from_secs(60)),
        false,
    )
    .await;
    tokio::time::pause();
    let outcome = agent
        .run(&account(), &context(), vec![Message::user("loop")], None)
        .await
        .unwrap();
    assert!(outcome.capped);
    assert_eq!(provider.requests(), 3);
    assert_eq!(outcome.tool_calls.len(), 3);
    assert!(outcome.tool_calls.iter().all(|c| c.result == "3"));
    // Each step adds the assistant's call and the tool's result.
    assert_eq!(outcome.steps.len(), 6);
    assert!(
        outcome.content.contains("after 3 steps"),
        "{}",
        outcome.content
    );
}
