//! Several `warden serve` processes on one PostgreSQL database (issue 12): changes made on one instance reach the
//! others by push (Redis pub/sub, or PostgreSQL LISTEN/NOTIFY without Redis), measured against a poll interval of
//! a minute so that only the push can pass; with Redis stopped the poll still carries them.
//!
//! `Cluster` (spawn N, `url(i)`, `kill(i)`) and `OwnRedis` (a redis-server of the test's own, `stop`/`start` on
//! one port) are meant to be reused by other multi-instance cases. Both kill their processes by pid on drop.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sqlx::Executor;

use crate::helpers::{drop_database_now, postgres_admin_url, postgres_available, prelude::*};

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/upstream.py");
/// What a push must beat (the poll interval of these tests is a minute).
const PUSH_BUDGET: Duration = Duration::from_millis(100);
/// What a pushed role or policy edit must beat: far below the minute the poll would take, with room for a
/// loaded CI machine (CI once saw 118 ms, 12 ms, 113 ms for the role edits).
const EDIT_BUDGET: Duration = Duration::from_secs(1);

/// A port nobody listens on now (the OS picks it; a race with another process is possible but unlikely).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How the instances of a `Cluster` reach each other.
pub enum Push {
    /// Redis pub/sub on the Redis at this URL, with a prefix of the test's own.
    Redis(String),
    /// PostgreSQL LISTEN/NOTIFY only (no REDIS_URL).
    Notify,
}

/// N `warden serve` processes on one PostgreSQL database the cluster creates (and drops on drop).
pub struct Cluster {
    children: Vec<Option<Child>>,
    ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    database: String,
    pub client: reqwest::Client,
}

impl Cluster {
    /// Starts `n` instances sharing the database, the signing and encryption keys and the public URL, plus
    /// `extra` settings; returns once each answers `/health`. None when PostgreSQL is not available.
    pub async fn start(n: usize, push: Push, extra: &[(&str, &str)]) -> Option<Cluster> {
        if !postgres_available().await {
            return None;
        }
        let database = format!("warden_cluster_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE \"{database}\""
            )))
            .await
            .unwrap();
        admin.close().await;
        let base = postgres_admin_url();
        let url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
        let seal_key = warden::seal::SealKey::generate();
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", url.as_str()),
            ("JWT_SECRET_KEY", "cluster-test-signing-key-of-forty-bytes!"),
            (
                "WARDEN_ENCRYPTION_KEY",
                secrecy::ExposeSecret::expose_secret(seal_key.encoded()),
            ),
            ("WARDEN_PUBLIC_URL", "http://warden.test"),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("PASSWORD_HASH_CONCURRENCY", "2"),
            ("LOGIN_IP_PER_MINUTE", "100000"),
            ("SYNC_INTERVAL_MS", "60000"),
            ("LOG_LEVEL", "info"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if let Push::Redis(redis) = &push {
            env.push(("REDIS_URL".into(), redis.clone()));
            env.push((
                "REDIS_PREFIX".into(),
                format!("test-{}", uuid::Uuid::new_v4().simple()),
            ));
        }
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut cluster = Cluster {
            children: Vec::new(),
            ports: Vec::new(),
            dirs: Vec::new(),
            database,
            client: reqwest::Client::new(),
        };
        // One after the other: the first creates the schema and the admin account.
        for _ in 0..n {
            cluster.spawn(&env).await;
        }
        Some(cluster)
    }

    async fn spawn(&mut self, env: &[(String, String)]) {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WARDEN_DATA_DIR", dir.path())
            .env("WARDEN_BIND", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push(Some(child));
        self.ports.push(port);
        self.dirs.push(dir);
        let i = self.ports.len() - 1;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.client.get(self.url(i, "/health")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "instance {i} did not start:\n{}",
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL of `path` on instance `i`.
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[i])
    }

    /// What instance `i` logged.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dirs[i].path().join("server.log")).unwrap_or_default()
    }

    /// Kills instance `i` (SIGKILL, by pid).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn login(&self, i: usize, username: &str, password: &str) -> String {
        let r = self
            .client
            .post(self.url(i, "/auth/login"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login on {i}");
        json_of(r).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The status of `method path` on instance `i` with `token` (and a JSON body when given).
    pub async fn status(
        &self,
        i: usize,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> StatusCode {
        let mut request = self
            .client
            .request(method, self.url(i, path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().status()
    }

    /// How long until `path` answers `want` to `token` on every instance in `on`, polled about every
    /// millisecond, for at most 10 s.
    pub async fn time_until(
        &self,
        on: &[usize],
        path: &str,
        token: &str,
        want: StatusCode,
    ) -> Duration {
        let started = Instant::now();
        let mut pending: Vec<usize> = on.to_vec();
        while !pending.is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "instances {pending:?} never answered {want} to {path}"
            );
            let mut still = Vec::new();
            for &i in &pending {
                if self
                    .status(i, reqwest::Method::GET, path, token, None)
                    .await
                    != want
                {
                    still.push(i);
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        started.elapsed()
    }

    /// Sets, on instance `i`, the admin role's rule for the built-in `add` tool (`null` removes it).
    pub async fn set_add_rule(&self, i: usize, token: &str, decision: Value) {
        let rule = json!({ "role": "admin", "tool": "add", "decision": decision });
        let r = self
            .status(
                i,
                reqwest::Method::PUT,
                "/api/tool-policies",
                token,
                Some(rule),
            )
            .await;
        assert_eq!(r, StatusCode::OK);
    }

    /// A streamed chat turn on instance `i` whose model calls `add` (2 + 3), read up to its approval request
    /// (the response, what was read past it, and the approval id).
    pub async fn turn_calling_add(
        &self,
        i: usize,
        token: &str,
    ) -> (reqwest::Response, String, String) {
        let r = self
            .client
            .post(self.url(i, "/chat/session/new"))
            .bearer_auth(token)
            .json(&json!({ "title": "approval" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let session = json_of(r).await["session_id"].as_str().unwrap().to_string();
        let mut r = self
            .client
            .post(self.url(i, "/chat/message"))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .json(&json!({ "session_id": session, "message": r#"/call add {"a":2,"b":3}"# }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let mut buffer = String::new();
        let events = crate::policy::read_until(&mut r, &mut buffer, "approval_required").await;
        let approval = events
            .last()
            .and_then(|(event, data)| {
                (event == "approval_required").then(|| data["approval_id"].clone())
            })
            .and_then(|id| id.as_str().map(String::from))
            .unwrap_or_else(|| panic!("no approval was asked for on {i}: {events:?}"));
        (r, buffer, approval)
    }

    /// Logs in on `at`, logs out on `logout_on`, and returns how long until `others` refuse the token.
    pub async fn logout_to_refusal(
        &self,
        at: usize,
        logout_on: usize,
        others: &[usize],
    ) -> Duration {
        let token = self.login(at, "admin", ADMIN_PASSWORD).await;
        for &i in others {
            let ok = self
                .status(i, reqwest::Method::GET, "/api/me", &token, None)
                .await;
            assert_eq!(ok, StatusCode::OK, "the token works on {i} before logout");
        }
        let r = self
            .status(
                logout_on,
                reqwest::Method::POST,
                "/auth/logout",
                &token,
                None,
            )
            .await;
        assert_eq!(r, StatusCode::OK);
        self.time_until(others, "/api/me", &token, StatusCode::UNAUTHORIZED)
            .await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        drop_database_now(self.database.clone());
    }
}

/// A redis-server of the test's own on a free port, without persistence; `stop` and `start` keep the port.
pub struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start_new() -> OwnRedis {
        let mut redis = OwnRedis {
            port: free_port(),
            child: None,
        };
        redis.start();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts it (again) and waits until it answers PING.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("/usr/bin/redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/redis-server starts");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..200 {
            if let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on port {} did not answer", self.port);
    }

    /// Kills it (by pid) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many connections subscribe to `channel`.
    pub fn subscribers(&self, channel: &str) -> i64 {
        let client = redis::Client::open(self.url()).unwrap();
        let Ok(mut c) = client.get_connection() else {
            return 0;
        };
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query(&mut c)
            .unwrap_or_default();
        counts.first().map_or(0, |(_, n)| *n)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn shared_redis() -> Push {
    Push::Redis("redis://127.0.0.1:6379/".into())
}

/// The median of three timings: the machine is shared with builds, so one slow scheduling should not decide.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Logout on B refused on A and C; a role edit on C effective on A; a policy change on A effective on B — each
/// by push: the logout within `PUSH_BUDGET`, the edits within `EDIT_BUDGET` (medians of three measured rounds;
/// the poll alone would take a minute).
async fn changes_reach_the_other_instances_by_push(cluster: &Cluster) {
    // Login on A, use on B and C, logout on B: refused on A and C. The first round warms the instances' pools
    // (a fresh process opens its database connections on first use).
    cluster.logout_to_refusal(0, 1, &[0, 2]).await;
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(cluster.logout_to_refusal(0, 1, &[0, 2]).await);
    }
    assert!(
        median(times.clone()) < PUSH_BUDGET,
        "logout reached A and C in {times:?}"
    );

    // A role edit on C is effective on A (granted, taken back, granted again).
    let admin = cluster.login(0, "admin", ADMIN_PASSWORD).await;
    let set_role = |permissions: Value| json!({ "role": "team", "permissions": permissions });
    let post = reqwest::Method::POST;
    let r = cluster
        .status(
            2,
            post.clone(),
            "/api/permissions",
            &admin,
            Some(set_role(json!(["chat:use"]))),
        )
        .await;
    assert_eq!(r, StatusCode::OK);
    let r = cluster
        .status(
            2,
            post.clone(),
            "/api/users",
            &admin,
            Some(json!({ "username": "pat", "password": "pat-password-1", "role": "team" })),
        )
        .await;
    assert!(r.is_success(), "{r}");
    let pat = cluster.login(0, "pat", "pat-password-1").await;
    let r = cluster
        .status(0, reqwest::Method::GET, "/api/users", &pat, None)
        .await;
    assert_eq!(r, StatusCode::FORBIDDEN);
    let mut times = Vec::new();
    for granted in [true, false, true] {
        let permissions = if granted {
            json!(["chat:use", "users:manage"])
        } else {
            json!(["chat:use"])
        };
        let r = cluster
            .status(
                2,
                post.clone(),
                "/api/permissions",
                &admin,
                Some(set_role(permissions)),
            )
            .await;
        assert_eq!(r, StatusCode::OK);
        let want = if granted {
            StatusCode::OK
        } else {
            StatusCode::FORBIDDEN
        };
        times.push(cluster.time_until(&[0], "/api/users", &pat, want).await);
    }
    assert!(
        median(times.clone()) < EDIT_BUDGET,
        "the role edits reached A in {times:?}"
    );

    // A policy change on A is effective at B's next tool calls (denied, allowed, denied again).
    let add = "/api/servers/builtin/tools/add/execute";
    let call = || json!({ "parameters": { "a": 2, "b": 3 } });
    let r = cluster
        .status(1, post.clone(), add, &admin, Some(call()))
        .await;
    assert_eq!(r, StatusCode::OK);
    let mut times = Vec::new();
    for deny in [true, false, true] {
        let decision = if deny { json!("deny") } else { Value::Null };
        cluster.set_add_rule(0, &admin, decision).await;
        let started = Instant::now();
        while (cluster
            .status(1, post.clone(), add, &admin, Some(call()))
            .await
            == StatusCode::OK)
            == deny
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "B never applied the policy"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
    }
    assert!(
        median(times.clone()) < EDIT_BUDGET,
        "the policy reached B in {times:?}"
    );

    // An `ask` approval posted to C releases the turn waiting on A (approved, refused, approved). Another user's
    // decision finds nothing. The waiter is released by the pushed wake or, failing that, its 100 ms poll of the
    // row; the turn would otherwise wait five minutes.
    cluster.set_add_rule(0, &admin, json!("ask")).await;
    let mut times = Vec::new();
    for approve in [true, false, true] {
        let (mut turn, mut buffer, approval) = cluster.turn_calling_add(0, &admin).await;
        let decide = |token: &str| {
            cluster
                .client
                .post(cluster.url(2, &format!("/chat/approvals/{approval}")))
                .bearer_auth(token)
                .json(&json!({ "approve": approve }))
                .send()
        };
        let other = decide(&pat).await.unwrap();
        assert_eq!(
            other.status(),
            StatusCode::NOT_FOUND,
            "pat decided admin's call"
        );
        let started = Instant::now();
        let decided = decide(&admin).await.unwrap();
        assert_eq!(decided.status(), StatusCode::OK);
        let rest = crate::policy::read_until(&mut turn, &mut buffer, "done").await;
        times.push(started.elapsed());
        let done = &rest.last().expect("the turn ends").1;
        if approve {
            assert_eq!(done["content"], json!("add: 5"), "{rest:?}");
        } else {
            assert!(
                done["content"].as_str().unwrap().contains("refused"),
                "{done}"
            );
        }
    }
    assert!(
        median(times.clone()) < Duration::from_secs(1),
        "the approvals on C released A's turns in {times:?}"
    );
}

#[tokio::test]
async fn changes_reach_the_other_instances_by_redis_push() {
    let Some(cluster) = Cluster::start(3, shared_redis(), &[]).await else {
        return;
    };
    changes_reach_the_other_instances_by_push(&cluster).await;
}

#[tokio::test]
async fn changes_reach_the_other_instances_by_postgres_notify_without_redis() {
    let Some(cluster) = Cluster::start(3, Push::Notify, &[]).await else {
        return;
    };
    changes_reach_the_other_instances_by_push(&cluster).await;
}

/// Lists (and, with `call`, calls) the tools on instance `i` with the official Python SDK.
async fn sdk(
    python: &str,
    cluster: &Cluster,
    i: usize,
    token: &str,
    call: Option<(&str, Value)>,
) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mcp_client.py");
    let mut args = vec![
        script.to_string(),
        cluster.url(i, "/mcp"),
        token.to_string(),
    ];
    if let Some((tool, arguments)) = call {
        args.push(tool.to_string());
        args.push(arguments.to_string());
    }
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(python).args(&args).output(),
    )
    .await
    .expect("the SDK client finishes")
    .expect("the SDK client starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|_| {
        json!({ "error": format!("unreadable output: {stdout} {}", String::from_utf8_lossy(&out.stderr)) })
    })
}

#[tokio::test]
async fn an_mcp_server_added_on_one_instance_serves_mcp_calls_on_all() {
    let Some(python) = crate::helpers::mcp_python() else {
        return;
    };
    let Some(cluster) = Cluster::start(3, shared_redis(), &[]).await else {
        return;
    };
    let admin = cluster.login(0, "admin", ADMIN_PASSWORD).await;
    let listed = sdk(&python, &cluster, 2, &admin, None).await;
    assert!(!listed.to_string().contains("dyn__multiply"), "{listed}");

    // Added on B: C starts it too and lists its tools at /mcp (its stdio child takes a moment to start).
    let r = cluster
        .status(
            1,
            reqwest::Method::POST,
            "/api/mcp/servers",
            &admin,
            Some(json!({ "name": "dyn", "command": python, "args": [PEER] })),
        )
        .await;
    assert!(r.is_success(), "{r}");
    let started = Instant::now();
    loop {
        let listed = sdk(&python, &cluster, 2, &admin, None).await;
        if listed["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("dyn__multiply")))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "C never listed the server added on B: {listed}\n{}",
            cluster.log(2)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Calls spread over all three work.
    for round in 0..2 {
        for i in 0..3 {
            let a = i64::try_from(i + 2 * round).unwrap() + 2;
            let out = sdk(
                &python,
                &cluster,
                i,
                &admin,
                Some(("dyn__multiply", json!({ "a": a, "b": 7 }))),
            )
            .await;
            assert_eq!(
                out["call"]["structured"]["result"],
                json!(a * 7),
                "instance {i}: {out}\n{}",
                cluster.log(i)
            );
        }
    }

    // Removed on B: gone from A.
    let r = cluster
        .status(
            1,
            reqwest::Method::DELETE,
            "/api/mcp/servers/dyn",
            &admin,
            None,
        )
        .await;
    assert_eq!(r, StatusCode::OK);
    let started = Instant::now();
    loop {
        let r = cluster
            .status(
                0,
                reqwest::Method::POST,
                "/api/servers/dyn/tools/multiply/execute",
                &admin,
                Some(json!({ "parameters": { "a": 1, "b": 1 } })),
            )
            .await;
        if r == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "A still serves dyn: {r}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn with_redis_stopped_changes_arrive_by_polling_and_push_returns_with_redis() {
    let mut redis = OwnRedis::start_new();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let channel = format!("{prefix}:changes");
    let Some(cluster) = Cluster::start(
        3,
        Push::Redis(redis.url()),
        &[("SYNC_INTERVAL_MS", "300"), ("REDIS_PREFIX", &prefix)],
    )
    .await
    else {
        return;
    };
    // Pushed while Redis runs: at least four of five under 100 ms, after one round that warms the new instances'
    // pools (the 300 ms poll alone would do that about one time in twenty; one slow scheduling on a busy machine
    // is allowed for).
    wait_for_subscribers(&redis, &channel, 3).await;
    cluster.logout_to_refusal(0, 1, &[0, 2]).await;
    assert_pushed(&cluster).await;

    // Stopped: requests keep working, and a logout reaches the others by the poll.
    redis.stop();
    let token = cluster.login(0, "admin", ADMIN_PASSWORD).await;
    for i in 0..3 {
        let r = cluster
            .status(i, reqwest::Method::GET, "/api/me", &token, None)
            .await;
        assert_eq!(r, StatusCode::OK, "instance {i} serves with Redis stopped");
    }
    let elapsed = cluster.logout_to_refusal(0, 1, &[0, 2]).await;
    assert!(
        elapsed < Duration::from_secs(3),
        "the poll carried the logout in {elapsed:?}"
    );

    // Started again: the instances subscribe again by themselves and the push works again.
    redis.start();
    wait_for_subscribers(&redis, &channel, 3).await;
    assert_pushed(&cluster).await;
}

/// Five logouts on B, each refused on A and C: at least four within `PUSH_BUDGET`.
async fn assert_pushed(cluster: &Cluster) {
    let mut times = Vec::new();
    for _ in 0..5 {
        times.push(cluster.logout_to_refusal(0, 1, &[0, 2]).await);
    }
    let pushed = times.iter().filter(|t| **t < PUSH_BUDGET).count();
    assert!(pushed >= 4, "pushed in {times:?}");
}

async fn wait_for_subscribers(redis: &OwnRedis, channel: &str, want: i64) {
    let started = Instant::now();
    while redis.subscribers(channel) != want {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{want} instances never subscribed to {channel} (now {})",
            redis.subscribers(channel)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_login_limit_is_counted_across_three_instances() {
    let Some(cluster) = Cluster::start(3, shared_redis(), &[("LOGIN_IP_PER_MINUTE", "6")]).await
    else {
        return;
    };
    // Nine attempts from one address, spread over A, B, C in turn: the first six are counted (401), the rest
    // refused by the shared limit on whichever instance they land (429). Each instance alone saw only three.
    let mut statuses = Vec::new();
    for attempt in 0..9 {
        let r = cluster
            .client
            .post(cluster.url(attempt % 3, "/auth/login"))
            .json(&json!({ "username": "nobody-here", "password": "wrong password" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 401, 429, 429, 429]);
}
