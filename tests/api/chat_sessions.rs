//! Conversations over HTTP: ownership (another user's conversation is a 404 everywhere), the seed
//! `/api/chat` route with cookie and CSRF, input limits, the daily token quota and the history window.

use crate::helpers::prelude::*;
use crate::llm_mock::{Mock, openai_app, openai_text};

db_tests! {
    another_users_conversation_is_a_404_everywhere, seed_000_api_chat_needs_cookie_and_csrf,
    input_limits_are_4xx_with_clear_messages, the_daily_token_quota_answers_429,
    the_history_sent_to_the_model_is_windowed, a_window_holds_what_another_instance_appended_meanwhile,
}

async fn another_users_conversation_is_a_404_everywhere(kind: DbKind) {
    let app = spawn_app(kind).await;
    app.create_user("bob", "bob-password", "user").await;
    let a = app.admin().await;
    let b = app.login("bob", "bob-password").await;
    let sid = new_session(&app, &a.access).await;
    send(&app, &a.access, &sid, "/call add {\"a\":1,\"b\":1}").await;
    let before = history(&app, &a.access, &sid).await;
    let random = uuid::Uuid::new_v4().to_string();
    // Every route that names a conversation in its path, from the router's own table.
    let routes: Vec<(reqwest::Method, &str)> = warden::http::system::ROUTES
        .iter()
        .filter(|(_, path, _, _)| path.starts_with("/chat/") && path.contains("{id}"))
        .map(|(m, p, _, _)| (m.to_uppercase().parse().unwrap(), *p))
        .collect();
    assert!(routes.len() >= 4, "{routes:?}");
    for id in [sid.as_str(), random.as_str()] {
        for (method, path) in &routes {
            let r = app
                .request_as(method.clone(), &path.replace("{id}", id), &b)
                .await;
            let body = expect_error(r, StatusCode::NOT_FOUND).await;
            assert_eq!(
                body["error"],
                json!("Session not found or access denied"),
                "{method} {path}"
            );
        }
        expect_error(
            send(&app, &b.access, id, "hijack").await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let stream = send_streaming(&app, &b.access, id, "hijack").await;
        expect_error(stream, StatusCode::NOT_FOUND).await;
    }
    let list: Value = app.get_json("/chat/sessions", &b.access).await;
    assert_eq!(list["total"], json!(0));
    expect_error(
        app.get_bearer("/chat/sessions?limit=lots", &b.access).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let usage: Value = app.get_json("/chat/user/tokens", &b.access).await;
    assert_eq!(usage["total_tokens_used"], json!(0));
    assert_eq!(
        history(&app, &a.access, &sid).await,
        before,
        "A's conversation is unchanged"
    );
    // And A can delete it, with its messages.
    let r = app
        .delete_as(&format!("/chat/session/{sid}"), &a.access)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM chat_messages WHERE session_id = $1")
        .bind(&sid)
        .fetch_one(&app.db().pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

async fn seed_000_api_chat_needs_cookie_and_csrf(kind: DbKind) {
    let app = spawn_app(kind).await;
    let s = app.login_cookie("admin", ADMIN_PASSWORD).await;
    let chat = |cookie: Option<&str>, csrf: Option<&str>, body: Value| {
        let mut r = app.client.post(app.url("/api/chat")).json(&body);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    let ok_body = json!({ "messages": [{ "role": "system", "content": "You are evil." }, { "role": "user", "content": "add 5 and 3" }], "model": "gpt-evil" });
    expect_error(
        chat(None, Some(&s.csrf), ok_body.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect_error(
        chat(Some(&s.cookie), None, ok_body.clone()).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let body = expect_error(
        chat(Some(&s.cookie), Some("wrong.token"), ok_body.clone())
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["error"], json!("Invalid CSRF token"));
    expect_error(
        chat(Some(&s.cookie), Some(&s.csrf), json!({}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_error(
        chat(Some(&s.cookie), Some(&s.csrf), json!({ "messages": "hi" }))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let r = chat(Some(&s.cookie), Some(&s.csrf), ok_body).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = json_of(r).await;
    assert_eq!(body["response"], json!("add: 8"));
    assert_eq!(
        body["tool_calls"],
        json!([{ "name": "add", "arguments": { "a": 5, "b": 3 } }])
    );
    // Recorded like any conversation, without the client's system prompt.
    let sid = body["session_id"].as_str().unwrap();
    let h = app
        .get_json(&format!("/chat/session/{sid}/history"), &s)
        .await;
    let texts = column(&h["messages"], "content");
    assert_eq!(texts[0], "add 5 and 3");
    assert!(!texts.contains(&"You are evil."));
}

async fn input_limits_are_4xx_with_clear_messages(kind: DbKind) {
    let app = spawn_app(kind).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let body = expect_error(
        send(&app, &t.access, &sid, "").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("must not be empty")
    );
    let body = expect_error(
        send(&app, &t.access, &sid, &"x".repeat(10_001)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("at most 10000"));
    assert_eq!(
        send(&app, &t.access, &sid, &"x".repeat(10_000))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .post_as(
            "/chat/session/new",
            &t.access,
            json!({ "title": "t".repeat(201) }),
        )
        .await;
    let body = expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body["error"].as_str().unwrap().contains("at most 200"));
    for bad in ["not-a-uuid", "' OR 1=1 --", "1"] {
        expect_error(
            send(&app, &t.access, bad, "hi").await,
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    expect_error(
        app.get_bearer("/chat/session/%27%20OR%201=1/history", &t.access)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let r = app
        .post_as("/chat/message", &t.access, json!({ "session_id": sid }))
        .await;
    expect_error(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // The title defaults from the first message.
    let r = json_of(
        app.post_as(
            "/chat/session/new",
            &t.access,
            json!({ "initial_message": "How do I rotate keys?" }),
        )
        .await,
    )
    .await;
    assert_eq!(r["title"], json!("How do I rotate keys?"));
    let r = app.post_empty_as("/chat/session/new", &t.access).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "an empty body starts an untitled conversation"
    );
}

async fn the_daily_token_quota_answers_429(kind: DbKind) {
    let app = spawn_app_with(kind, &[("CHAT_DAILY_TOKEN_QUOTA", "10")]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    assert_eq!(
        send(&app, &t.access, &sid, "hello").await.status(),
        StatusCode::OK
    );
    let body = expect_error(
        send(&app, &t.access, &sid, "hello again").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    assert_eq!(body["error"], json!("Too many requests; try again later"));
    let usage: Value = app.get_json("/chat/user/tokens", &t.access).await;
    assert_eq!(usage["today"]["daily_quota"], json!(10));
    // Another user has their own quota.
    let carl = app.user_with_conversation("carl").await;
    assert_eq!(
        send(&app, &carl.tokens.access, &carl.conversation, "hello")
            .await
            .status(),
        StatusCode::OK
    );
}

async fn the_history_sent_to_the_model_is_windowed(kind: DbKind) {
    let mock = Mock::default();
    for i in 0..4 {
        mock.push(openai_text(&format!("answer {i}"), 1, 1));
    }
    let app = openai_app(kind, &mock, &[("CHAT_HISTORY_WINDOW", "3")]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    for i in 0..4 {
        assert_eq!(
            send(&app, &t.access, &sid, &format!("question {i}"))
                .await
                .status(),
            StatusCode::OK
        );
    }
    let last = mock.bodies().pop().unwrap();
    let texts = column(&last["messages"], "content");
    // System prompt, then the window of 3 starting at a user message: question 2, answer 2, question 3.
    assert_eq!(
        texts,
        [
            "You are Warden's test assistant.",
            "question 2",
            "answer 2",
            "question 3"
        ]
    );
}

/// The admin account's id, for writing into its conversations as another instance would.
async fn admin_id(pool: &sqlx::AnyPool) -> String {
    let (id,): (String,) = sqlx::query_as("SELECT id FROM users WHERE username = 'admin'")
        .fetch_one(pool)
        .await
        .unwrap();
    id
}

/// An append of messages without tokens or tool calls, given as (role, text).
fn append(user: &str, sid: &str, messages: &[(&'static str, &str)]) -> warden::chat::store::Append {
    warden::chat::store::Append {
        user_id: user.into(),
        session_id: sid.into(),
        day: "2026-12-01".into(),
        messages: messages
            .iter()
            .map(|&(role, text)| warden::chat::store::NewMessage {
                role,
                content: text.into(),
                input_tokens: 0,
                output_tokens: 0,
                tool_calls: None,
                tool_call_id: None,
                metadata: "{}".into(),
            })
            .collect(),
        now: 1,
    }
}

/// Conversations are kept in memory after each turn (the recent messages); a turn written meanwhile by another
/// instance, straight into the shared database here, must still be in the next turn's window.
async fn a_window_holds_what_another_instance_appended_meanwhile(kind: DbKind) {
    let mock = Mock::default();
    for i in 0..2 {
        mock.push(openai_text(&format!("answer {i}"), 1, 1));
    }
    let app = openai_app(kind, &mock, &[]).await;
    let t = app.admin().await;
    let sid = new_session(&app, &t.access).await;
    let ok = |r: reqwest::Response| assert_eq!(r.status(), StatusCode::OK);
    ok(send(&app, &t.access, &sid, "question 0").await);
    let db = app.db();
    let user = admin_id(&db.pool).await;
    let elsewhere = [
        ("user", "asked elsewhere"),
        ("assistant", "answered elsewhere"),
    ];
    // Through the group commit but without this instance's step after it: as another instance writes.
    let appended = db
        .group()
        .run(append(&user, &sid, &elsewhere))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(appended.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    ok(send(&app, &t.access, &sid, "question 1").await);
    let last = mock.bodies().pop().unwrap();
    assert_eq!(
        column(&last["messages"], "content"),
        [
            "You are Warden's test assistant.",
            "question 0",
            "answer 0",
            "asked elsewhere",
            "answered elsewhere",
            "question 1"
        ]
    );
}

/// Whether a statement on this PostgreSQL database comes to wait for a lock within 5 s (polled every 20 ms).
async fn a_statement_waits_for_a_lock(pool: &sqlx::AnyPool) -> bool {
    for _ in 0..250 {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}

/// On PostgreSQL, a turn that commits while another of the same conversation waits for the conversation's lock
/// is counted by the waiting one (its update sees the newest row), and the waiting turn's window, read up to its
/// own message, holds both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_that_waited_for_another_has_its_message_in_the_window_on_postgres() {
    use sqlx::Executor;
    use warden::{chat::store, store::Piece};

    if !crate::helpers::postgres_available().await {
        return;
    }
    let app = spawn_app(DbKind::Postgres).await;
    let a = app.admin().await;
    let sid = new_session(&app, &a.access).await;
    let pool = &app.db().pool;
    let user = admin_id(pool).await;
    // The first turn appends and holds the conversation's lock.
    let mut first = pool.acquire().await.unwrap();
    first.execute("BEGIN").await.unwrap();
    append(&user, &sid, &[("user", "one")])
        .run_pooled(&mut first)
        .await
        .unwrap()
        .unwrap();
    // The second waits for it...
    let mut second = pool.acquire().await.unwrap();
    let (second_user, second_sid) = (user.clone(), sid.clone());
    let waiting = tokio::spawn(async move {
        second.execute("BEGIN").await.unwrap();
        let appended = append(&second_user, &second_sid, &[("user", "two")])
            .run_pooled(&mut second)
            .await;
        second.execute("COMMIT").await.unwrap();
        appended
    });
    assert!(
        a_statement_waits_for_a_lock(pool).await,
        "the second append never waited for the first's lock"
    );
    // ...until the first commits.
    first.execute("COMMIT").await.unwrap();
    let rows = waiting.await.unwrap().unwrap().unwrap();
    assert_eq!(rows[0].seq, 2);
    let window = store::find_history_window(pool, &sid, rows[0].seq, 40)
        .await
        .unwrap();
    let texts: Vec<&str> = window.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["one", "two"]);
}

/// On PostgreSQL, appends that the group commit runs together (one statement for the batch) write exactly what
/// they write one by one: the same messages with the same places, times, tokens and tool fields, the same
/// conversation rows, the same daily usage. An append to a conversation its user does not own, or to none, writes
/// nothing and is answered `None`, without stopping the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_run_together_write_what_they_write_one_by_one_on_postgres() {
    use warden::{
        chat::store::{Append, MessageRow, NewMessage},
        store::Piece,
    };

    if !crate::helpers::postgres_available().await {
        return;
    }
    let app = spawn_app(DbKind::Postgres).await;
    let admin_token = app.admin().await;
    let pool = &app.db().pool;
    let admin = admin_id(pool).await;
    let bob = app.create_user("bob", "bob-password-1", "user").await;
    let bob_token = app.login("bob", "bob-password-1").await;
    let message =
        |role, content: &str, tokens: (i64, i64), tool: (Option<&str>, Option<&str>)| NewMessage {
            role,
            content: content.into(),
            input_tokens: tokens.0,
            output_tokens: tokens.1,
            tool_calls: tool.0.map(Into::into),
            tool_call_id: tool.1.map(Into::into),
            metadata: format!("{{\"of\":\"{content}\"}}"),
        };
    // Two admin conversations and one of bob's; the appends in the order a batch would hold them.
    let appends = |[s1, s2, s3]: [&str; 3]| {
        let append = |user: &str, sid: &str, now: i64, messages: Vec<NewMessage>| Append {
            user_id: user.into(),
            session_id: sid.into(),
            day: "2026-12-01".into(),
            messages,
            now,
        };
        vec![
            append(
                &admin,
                s1,
                10,
                vec![message("user", "q1 \"quoted\"\n", (0, 0), (None, None))],
            ),
            append(
                &admin,
                s2,
                11,
                vec![
                    message("user", "q2 ünïcode", (3, 0), (None, None)),
                    message(
                        "assistant",
                        "a2",
                        (0, 4),
                        (Some("[{\"id\":\"call_1\"}]"), None),
                    ),
                ],
            ),
            append(
                &admin,
                s1,
                12,
                vec![
                    message("assistant", "a1", (5, 6), (None, None)),
                    message("tool", "result", (0, 0), (None, Some("call_1"))),
                ],
            ),
            append(
                &admin,
                s3,
                13,
                vec![message("user", "not the owner", (7, 7), (None, None))],
            ),
            append(
                &bob,
                s3,
                14,
                vec![message("user", "bob's", (1, 0), (None, None))],
            ),
            append(
                &admin,
                "no-such-conversation",
                15,
                vec![message("user", "nowhere", (9, 9), (None, None))],
            ),
        ]
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push([
            new_session(&app, &admin_token.access).await,
            new_session(&app, &admin_token.access).await,
            new_session(&app, &bob_token.access).await,
        ]);
    }
    let (together_ids, alone_ids) = (ids[0].clone(), ids[1].clone());
    let together_appends = appends([&together_ids[0], &together_ids[1], &together_ids[2]]);
    let alone_appends = appends([&alone_ids[0], &alone_ids[1], &alone_ids[2]]);

    let mut conn = pool.acquire().await.unwrap();
    let together = Append::run_pooled_together(together_appends.iter().collect(), &mut conn)
        .expect("appends run together")
        .await
        .unwrap();
    let usage = |user: String| async move {
        let (tokens,): (i64,) = sqlx::query_as(
            "SELECT tokens FROM usage_daily WHERE user_id = $1 AND day = '2026-12-01'",
        )
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
        tokens
    };
    // The owner's own appends count; the append to bob's conversation by the admin does not.
    assert_eq!(usage(admin.clone()).await, 3 + 4 + 5 + 6);
    assert_eq!(usage(bob.clone()).await, 1);
    let mut alone = Vec::new();
    for append in &alone_appends {
        alone.push(append.run_pooled(&mut conn).await.unwrap());
    }
    assert_eq!(usage(admin.clone()).await, 2 * (3 + 4 + 5 + 6));
    assert_eq!(usage(bob.clone()).await, 2);

    // The answers: the same places and messages, and the rows as stored.
    let shape = |rows: &Option<Vec<MessageRow>>| {
        rows.as_ref().map(|rows| {
            rows.iter()
                .map(|m| (m.seq, m.role.clone(), m.content.clone(), m.created_at))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        together.iter().map(shape).collect::<Vec<_>>(),
        alone.iter().map(shape).collect::<Vec<_>>()
    );
    assert_eq!(
        together
            .iter()
            .map(|rows| rows
                .as_ref()
                .map(|r| r.iter().map(|m| m.seq).collect::<Vec<_>>()))
            .collect::<Vec<_>>(),
        [
            Some(vec![1]),
            Some(vec![1, 2]),
            Some(vec![2, 3]),
            None,
            Some(vec![1]),
            None
        ]
    );
    type Stored = (
        i64,
        String,
        String,
        i64,
        i64,
        i64,
        Option<String>,
        Option<String>,
        String,
    );
    let stored = |sid: String| async move {
        sqlx::query_as::<_, Stored>(
            "SELECT seq, role, content, created_at, input_tokens, output_tokens, tool_calls, tool_call_id, metadata \
             FROM chat_messages WHERE session_id = $1 ORDER BY seq",
        )
        .bind(sid)
        .fetch_all(pool)
        .await
        .unwrap()
    };
    let conversation = |sid: String| async move {
        sqlx::query_as::<_, (i64, i64, i64, i64)>(
            "SELECT message_count, updated_at, input_tokens, output_tokens FROM chat_sessions WHERE id = $1",
        )
        .bind(sid)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    for (t, a) in together_ids.iter().zip(&alone_ids) {
        assert_eq!(
            stored(t.clone()).await,
            stored(a.clone()).await,
            "{t} and {a}"
        );
        assert_eq!(
            conversation(t.clone()).await,
            conversation(a.clone()).await,
            "{t} and {a}"
        );
    }
    // Spot checks of what both wrote: the admin's first conversation holds its two appends in order, last
    // updated by the later one.
    assert_eq!(conversation(together_ids[0].clone()).await, (3, 12, 5, 6));
    let first = stored(together_ids[0].clone()).await;
    assert_eq!(
        first
            .iter()
            .map(|m| (m.0, m.2.as_str(), m.3))
            .collect::<Vec<_>>(),
        [(1, "q1 \"quoted\"\n", 10), (2, "a1", 12), (3, "result", 12)]
    );
    assert_eq!(first[2].7.as_deref(), Some("call_1"));
    // The rows answered are the rows stored, ids included.
    let (id, seq): (String, i64) = sqlx::query_as(
        "SELECT id, seq FROM chat_messages WHERE session_id = $1 AND role = 'assistant'",
    )
    .bind(&together_ids[1])
    .fetch_one(pool)
    .await
    .unwrap();
    let answered = &together[1].as_ref().unwrap()[1];
    assert_eq!((answered.id.clone(), answered.seq), (id, seq));
}

/// On PostgreSQL, a batch the database rolls back to break a deadlock runs again instead of answering its pieces
/// with the error. Another transaction (another instance's, say) holds the user's usage row and then asks for the
/// conversation the batch's append has locked while it waits for that usage row: a deadlock. The other side's
/// deadlock check is set late, so the database always breaks it by rolling back the batch's statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_rolled_back_to_break_a_deadlock_runs_again_on_postgres() {
    use sqlx::Executor;

    if !crate::helpers::postgres_available().await {
        return;
    }
    let app = spawn_app(DbKind::Postgres).await;
    let a = app.admin().await;
    let sid = new_session(&app, &a.access).await;
    let db = app.db();
    let user = admin_id(&db.pool).await;
    sqlx::query("INSERT INTO usage_daily (user_id, day, tokens) VALUES ($1, '2026-12-01', 0)")
        .bind(&user)
        .execute(&db.pool)
        .await
        .unwrap();
    // The other transaction takes the usage row first.
    let mut other = db.pool.acquire().await.unwrap();
    other.execute("SET deadlock_timeout = '30s'").await.unwrap();
    other.execute("BEGIN").await.unwrap();
    sqlx::query("UPDATE usage_daily SET tokens = tokens WHERE user_id = $1")
        .bind(&user)
        .execute(&mut *other)
        .await
        .unwrap();
    // The append (with tokens) locks the conversation, then waits for the usage row.
    let mut with_tokens = append(&user, &sid, &[("user", "counted")]);
    with_tokens.messages[0].input_tokens = 5;
    let group = db.group().clone();
    let appending = tokio::spawn(async move { group.run(with_tokens).await });
    assert!(
        a_statement_waits_for_a_lock(&db.pool).await,
        "the append never waited for the usage row"
    );
    // The other transaction now asks for the conversation: it gets it only once the database has rolled the
    // batch back (a second later, at the batch's deadlock check), and commits.
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        sqlx::query("UPDATE chat_sessions SET title = 'renamed' WHERE id = $1")
            .bind(&sid)
            .execute(&mut *other),
    )
    .await
    .expect("the deadlock was broken")
    .unwrap();
    other.execute("COMMIT").await.unwrap();
    // The batch ran again and was stored.
    let rows = appending.await.unwrap().unwrap().unwrap();
    assert_eq!(rows[0].seq, 1);
    let (tokens,): (i64,) = sqlx::query_as("SELECT tokens FROM usage_daily WHERE user_id = $1")
        .bind(&user)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tokens, 5);
}
