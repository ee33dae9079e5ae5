//! Faults survived (issue 12, item 6): the database restarted under load (on a PostgreSQL cluster of the test's
//! own), an instance killed with SIGKILL in the middle of a refresh-token rotation, and an upstream MCP server
//! killed in the middle of a call.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use reqwest::Response;
use sqlx::AnyPool;

use crate::cli::warden_command;
use crate::db_faults::assert_unavailable;
use crate::helpers::prelude::*;
use crate::own_postgres::OwnPostgres;
use crate::tool_list_changes::{CHANGING_PEER, mcp_request};
use crate::upstreams::{chat_call, server, servers_file, wait_status};

/// A turn answered 200 during the load: what was sent and what came back.
struct Answered {
    sent: String,
    message_id: String,
    content: String,
}

/// What the load saw so far.
#[derive(Default)]
struct Load {
    answered: Mutex<Vec<Answered>>,
    unavailable: AtomicUsize,
    stop: AtomicBool,
}

impl Load {
    fn answered(&self) -> usize {
        self.answered.lock().len()
    }

    /// Waits (bounded, 60 s) until `more` turns beyond `from` were answered.
    async fn wait_answered(&self, from: usize, more: usize, what: &str) {
        for _ in 0..600 {
            if self.answered() >= from + more {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: only {} turns answered", self.answered());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_answers_503_then_recovers_and_keeps_every_answered_turn() {
    // Arrange: Warden on a cluster of this test's own (the DATABASE_URL replaces spawn_app's SQLite file).
    let pg = OwnPostgres::start_new().await;
    let app = spawn_app_with(DbKind::Sqlite, &[("DATABASE_URL", &pg.url())]).await;
    let token = app.admin().await.access;
    let load = Arc::new(Load::default());
    let mut workers = Vec::new();
    for w in 0..4 {
        let session = new_session(&app, &token).await;
        let (client, base, token, load) = (
            app.client.clone(),
            app.base.clone(),
            token.clone(),
            load.clone(),
        );
        workers.push(tokio::spawn(async move {
            for i in 0..5_000 {
                if load.stop.load(Ordering::Relaxed) {
                    return;
                }
                let sent = format!("turn {w}-{i}");
                let r = client
                    .post(format!("{base}/chat/message"))
                    .bearer_auth(&token)
                    .json(&json!({ "session_id": session, "message": sent }))
                    .send()
                    .await
                    .unwrap();
                if r.status() == StatusCode::OK {
                    let body: Value = r.json().await.unwrap();
                    load.answered.lock().push(Answered {
                        sent,
                        message_id: body["message_id"].as_str().unwrap().to_string(),
                        content: body["content"].as_str().unwrap().to_string(),
                    });
                } else {
                    // Never a 500: a 503 with Retry-After in the common error shape.
                    assert_unavailable(r).await;
                    load.unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    load.wait_answered(0, 8, "before the restart").await;

    // Act 1: `pg_ctl restart -m fast` in the middle of the load.
    pg.restart().await;
    load.wait_answered(load.answered(), 8, "after the restart")
        .await;

    // Act 2: a longer outage (stop, then start) so requests surely meet the database down.
    pg.stop().await;
    let mut refused = false;
    for _ in 0..300 {
        if load.unavailable.load(Ordering::Relaxed) > 0 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pg.start().await;
    assert!(refused, "no request met the stopped database");
    load.wait_answered(load.answered(), 8, "after the outage")
        .await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await
            .expect("a worker saw an answer other than 200 or 503");
    }

    // Assert: every turn answered 200 is stored, the reply as answered and the message as sent.
    let db = AnyPool::connect(&pg.url()).await.unwrap();
    let answered = std::mem::take(&mut *load.answered.lock());
    eprintln!(
        "{} turns answered, {} refused with 503",
        answered.len(),
        load.unavailable.load(Ordering::Relaxed)
    );
    for turn in &answered {
        let stored: Option<(String,)> =
            sqlx::query_as("SELECT content FROM chat_messages WHERE id = $1")
                .bind(&turn.message_id)
                .fetch_optional(&db)
                .await
                .unwrap();
        assert_eq!(
            stored.map(|(c,)| c),
            Some(turn.content.clone()),
            "the reply to {:?} was answered but not stored",
            turn.sent
        );
        let (sent,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM chat_messages WHERE role = 'user' AND content = $1",
        )
        .bind(&turn.sent)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(sent, 1, "{:?} was answered but not stored", turn.sent);
    }
    db.close().await;
    drop(app);
}

/// A `warden serve` process of the real binary, on SQLite in `data_dir`; SIGKILLed when dropped.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Serve {
    async fn start(data_dir: &std::path::Path) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = warden_command(data_dir)
            .env("WARDEN_BIND", format!("127.0.0.1:{port}"))
            .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("PASSWORD_HASH_CONCURRENCY", "2")
            .env("LOGIN_IP_PER_MINUTE", "1000")
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if let Ok(r) = reqwest::get(format!("{}/ready", serve.base)).await
                && r.status() == StatusCode::OK
            {
                return serve;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("warden serve never became ready");
    }

    /// SIGKILL, and wait until the process is gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn refresh(&self, client: &reqwest::Client, token: &str) -> reqwest::Result<Response> {
        client
            .post(format!("{}/auth/refresh", self.base))
            .json(&json!({ "refresh_token": token }))
            .send()
            .await
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The refresh token that a successful refresh answered with.
async fn new_refresh_token(r: Response) -> Option<String> {
    if r.status() != StatusCode::OK {
        return None;
    }
    let body: Value = r.json().await.ok()?;
    body["refresh_token"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_during_a_refresh_rotation_leaves_exactly_one_working_token() {
    // Arrange: one process; the time a refresh takes, measured on it.
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("warden.db").display());
    sqlx::any::install_default_drivers();
    let client = reqwest::Client::new();
    let mut serve = Serve::start(dir.path()).await;
    let login = |base: String| {
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/auth/login"))
                .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            body["refresh_token"].as_str().unwrap().to_string()
        }
    };
    let mut token = login(serve.base.clone()).await;
    let mut took = Vec::new();
    for _ in 0..9 {
        let started = Instant::now();
        let r = serve.refresh(&client, &token).await.unwrap();
        took.push(started.elapsed());
        token = new_refresh_token(r).await.expect("a refresh answers");
    }
    took.sort();
    let took = took[took.len() / 2];

    // Act and assert, per trial: log in, send the refresh, SIGKILL the process after a delay spread over 1.5
    // times the refresh's median duration (the last trial after the answer), start a new process on the same
    // database. The delay is slept on this thread: tokio's timer has millisecond steps, a refresh takes a few.
    const TRIALS: u32 = 20;
    let (mut answered, mut unanswered, mut lost_after_commit) = (0, 0, 0);
    for trial in 0..TRIALS {
        let old = login(serve.base.clone()).await;
        let request = {
            let (client, base, old) = (client.clone(), serve.base.clone(), old.clone());
            tokio::spawn(async move {
                let r = client
                    .post(format!("{base}/auth/refresh"))
                    .json(&json!({ "refresh_token": old }))
                    .send()
                    .await;
                match r {
                    Ok(r) => new_refresh_token(r).await,
                    Err(_) => None,
                }
            })
        };
        let new = if trial == TRIALS - 1 {
            let new = request.await.unwrap();
            serve.kill();
            new
        } else {
            std::thread::sleep(took * 3 * trial / (2 * (TRIALS - 1)));
            serve.kill();
            request.await.unwrap()
        };
        serve = Serve::start(dir.path()).await;

        // The trial's session (the newest) has its old token, used or not, and at most one successor.
        let db = AnyPool::connect(&database).await.unwrap();
        let (rows, unused): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN used_at IS NULL THEN 1 ELSE 0 END), 0) FROM refresh_tokens \
             WHERE session_id = (SELECT id FROM sessions ORDER BY created_at DESC LIMIT 1)",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        db.close().await;
        assert_eq!(
            unused, 1,
            "trial {trial}: {rows} tokens, {unused} usable (a rotation half done?)"
        );
        match new {
            Some(new) => {
                answered += 1;
                assert_eq!(rows, 2, "trial {trial}");
                let r = serve.refresh(&client, &new).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK, "trial {trial}: the new token");
                let r = serve.refresh(&client, &old).await.unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::UNAUTHORIZED,
                    "trial {trial}: the old token"
                );
            }
            None if rows == 1 => {
                unanswered += 1;
                let r = serve.refresh(&client, &old).await.unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::OK,
                    "trial {trial}: the client never got a new token, so the old one must work"
                );
            }
            None => {
                // Committed, but killed before the answer left: the successor is the one usable token.
                lost_after_commit += 1;
                assert_eq!(rows, 2, "trial {trial}");
            }
        }
    }
    eprintln!(
        "a refresh takes {took:?} (median); {answered} answered, {unanswered} killed before the rotation committed, \
         {lost_after_commit} killed between commit and answer"
    );
    assert!(
        answered >= 1 && unanswered >= 1,
        "the kills did not spread over the request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_call_fails_that_call_clearly_and_works_again_once_back() {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    // Arrange: the peer over HTTP, a process of its own on a fixed port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start_peer = || {
        tokio::process::Command::new(&python)
            .args([CHANGING_PEER, &port.to_string()])
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut peer = start_peer();
    let dir = tempfile::tempdir().unwrap();
    let file = servers_file(
        &dir,
        json!({ "web": { "url": format!("http://127.0.0.1:{port}/mcp") } }),
    );
    let app = spawn_app_with(DbKind::Sqlite, &[("MCP_SERVERS_FILE", &file)]).await;
    let admin = app.admin().await;
    wait_status(&app, &admin.access, "web", "up").await;
    let call = |id: i64, tool: &str, arguments: Value| json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": tool, "arguments": arguments } });

    // Act: a slow call, and the peer SIGKILLed while it runs.
    let slow = {
        let (app_client, url, token) = (app.client.clone(), app.url("/mcp"), admin.access.clone());
        let body = call(1, "web__slow", json!({ "seconds": 30 }));
        tokio::spawn(async move {
            let started = Instant::now();
            let r = app_client
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .json(&body)
                .send()
                .await
                .unwrap();
            (started.elapsed(), r.status(), r.text().await.unwrap())
        })
    };
    assert!(
        TestApp::eventually(|| async {
            server(&app, &admin.access, "web").await["total_requests"] == json!(1)
        })
        .await,
        "the slow call never reached the upstream"
    );
    peer.start_kill().unwrap();
    peer.wait().await.unwrap();

    // Assert: that call ends at once (not after its 30 s), as an error naming the upstream.
    let (took, status, body) = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .expect("the call hung after its upstream died")
        .unwrap();
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let error = body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    assert!(
        error.contains("\"web\"") && error.contains("unavailable"),
        "{body}"
    );

    // The lost connection is reported (a stateless HTTP server's death shows nowhere else) and dropped.
    let down = wait_status(&app, &admin.access, "web", "down").await;
    assert!(down["tools"].as_array().unwrap().is_empty(), "{down}");

    // Started again on the same port: /mcp and the agent's calls work after the reconnect.
    let _peer = start_peer();
    let mut answer = Value::Null;
    for i in 0..150 {
        let r = mcp_request(&app, &admin.access, call(2 + i, "web__whoami", json!({}))).await;
        answer = r.json().await.unwrap();
        if answer["result"]["isError"] == json!(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer["result"]["isError"], json!(false), "{answer}");
    let r = chat_call(&app, &admin.access, "/call web__whoami {}").await;
    assert!(
        r["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("web__whoami: "),
        "{r}"
    );
    let health = server(&app, &admin.access, "web").await;
    assert_eq!(health["status"], json!("up"), "{health}");
    assert!(
        health["restarts"].as_u64().unwrap() >= 1,
        "a new connection: {health}"
    );
}
