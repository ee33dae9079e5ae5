//! The test harness: `spawn_app` starts the real server on 127.0.0.1:0 against a fresh SQLite file or a fresh
//! PostgreSQL database, with a clock the test controls. `db_tests!` runs a test on both databases.
//!
//! PostgreSQL: WARDEN_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) is used to
//! create and drop one database per test. Without a reachable server the PostgreSQL half is not run and a
//! line on standard error says so, unless WARDEN_REQUIRE_POSTGRES=1 (as in CI), where it fails.
//!
//! Requests go through the helpers on `TestApp` (`get_as`, `post_as`, `put_as`, `delete_as`), which take any
//! `Caller` (a bearer token, `Tokens` or a `BrowserSession`) and add its headers, so a test says who calls what
//! and not how the headers are spelled. Fixtures such as `user_with_conversation` build the usual starting points.

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Executor;
use tokio_util::sync::CancellationToken;
use warden::{app, clock::ManualClock, config::Config, state::AppState, store::Db};

/// What nearly every test file imports: `use crate::helpers::prelude::*;`.
pub mod prelude {
    pub use super::{
        ADMIN_PASSWORD, DbKind, TestApp, column, expect_error, expect_refused, header, history,
        json_of, new_session, send, send_streaming, spawn_app, spawn_app_with,
    };
    pub use crate::db_tests;
    pub use reqwest::StatusCode;
    pub use serde_json::{Value, json};
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// Declares each named `async fn(DbKind)` as two tests, `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::DbKind::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::postgres_available().await {
                        super::$name($crate::helpers::DbKind::Postgres).await
                    }
                }
            }
        )*
    };
}

/// The PostgreSQL server tests create their databases on (WARDEN_TEST_POSTGRES_URL).
pub fn postgres_admin_url() -> String {
    std::env::var("WARDEN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether the PostgreSQL half can run; fails when it is required and cannot.
pub async fn postgres_available() -> bool {
    static AVAILABLE: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    *AVAILABLE
        .get_or_init(|| async {
            sqlx::any::install_default_drivers();
            let ok = tokio::time::timeout(std::time::Duration::from_secs(5), sqlx::AnyPool::connect(&postgres_admin_url()))
                .await
                .is_ok_and(|r| r.is_ok());
            if !ok {
                if std::env::var("WARDEN_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("PostgreSQL is required (WARDEN_REQUIRE_POSTGRES=1) but {} is not reachable", postgres_admin_url());
                }
                // Written past the test harness's capture on purpose: this must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** PostgreSQL half NOT RUN: {} is not reachable (set WARDEN_TEST_POSTGRES_URL, or WARDEN_REQUIRE_POSTGRES=1 to fail) ***\n",
                    postgres_admin_url()
                );
            }
            ok
        })
        .await
}

/// The Python of the venv `.ci/run` makes (WARDEN_TEST_PYTHON) when it can import `modules` (a real peer:
/// the MCP or Telesign SDK, the Prometheus parser). Without them the test half that needs `peer` is not run and
/// says so on stderr, unless WARDEN_REQUIRE_PEERS=1 (as in CI), where it fails.
pub fn peer_python(peer: &str, modules: &str) -> Option<String> {
    let python = std::env::var("WARDEN_TEST_PYTHON")
        .unwrap_or_else(|_| "/root/.cache/warden-ci/venv/bin/python".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("WARDEN_REQUIRE_PEERS").is_ok_and(|v| v == "1") {
        panic!(
            "the {peer} is required (WARDEN_REQUIRE_PEERS=1) but {python} cannot import {modules}; run .ci/run"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "\n*** {peer} test NOT RUN: {python} cannot import {modules} (run .ci/run to install it) ***\n"
    );
    None
}

/// The Python with the official MCP SDK.
pub fn mcp_python() -> Option<String> {
    peer_python("MCP Python SDK", "mcp, httpx2")
}

/// Every log line the server wrote in this process (debug level and up).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.get_or_init(Default::default).lock().unwrap()).into_owned()
}

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct LogWriter(Arc<Mutex<Vec<u8>>>);
impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let buffer = LOGS.get_or_init(Default::default).clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn,warden=debug,tower_http=debug")
            .with_writer(move || LogWriter(buffer.clone()))
            .with_ansi(false)
            .try_init();
    });
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub kind: DbKind,
    settings: HashMap<String, String>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
    data_dir: Arc<tempfile::TempDir>,
    pg_database: Option<Arc<PgDatabase>>,
}

/// A PostgreSQL database made for one test and dropped when the test ends.
struct PgDatabase {
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        drop_database_now(self.name.clone());
    }
}

/// Runs `work` to completion on a short-lived thread with its own runtime: for cleanup in `Drop`, which runs
/// outside async (and may run inside a runtime, where blocking on this one would panic).
pub fn block_on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for cleanup")
            .block_on(work)
    })
    .join();
}

/// Drops the PostgreSQL database `name` (if it is there), ending its connections; for `Drop` impls.
pub fn drop_database_now(name: String) {
    block_on_own_thread(async move {
        if let Ok(pool) = sqlx::AnyPool::connect(&postgres_admin_url()).await {
            let _ = pool
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await;
            pool.close().await;
        }
    });
}

pub async fn spawn_app(kind: DbKind) -> TestApp {
    spawn_app_with(kind, &[]).await
}

/// Starts the app with the test defaults plus `extra` settings (environment-variable names and values).
pub async fn spawn_app_with(kind: DbKind, extra: &[(&str, &str)]) -> TestApp {
    init_logs();
    let data_dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings: HashMap<String, String> = [
        ("WARDEN_BIND", "127.0.0.1:0"),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("PASSWORD_HASH_CONCURRENCY", "2"),
        ("LOGIN_IP_PER_MINUTE", "1000"),
        ("WARDEN_PUBLIC_URL", "http://warden.test"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    settings.insert(
        "WARDEN_DATA_DIR".into(),
        data_dir.path().display().to_string(),
    );
    let pg_database = match kind {
        DbKind::Sqlite => None,
        DbKind::Postgres => {
            let name = format!("warden_test_{}", uuid::Uuid::new_v4().simple());
            let admin = sqlx::AnyPool::connect(&postgres_admin_url())
                .await
                .expect("PostgreSQL reachable");
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .await
                .unwrap();
            admin.close().await;
            let base = postgres_admin_url();
            let url = format!("{}/{}", &base[..base.rfind('/').unwrap()], name);
            settings.insert("DATABASE_URL".into(), url);
            Some(Arc::new(PgDatabase { name }))
        }
    };
    for (k, v) in extra {
        settings.insert(k.to_string(), v.to_string());
    }
    start(kind, settings, ManualClock::new(), data_dir, pg_database).await
}

/// Builds (without running) an app on `data_dir` with SQLite there, a bind on 127.0.0.1:0 and `extra`
/// settings: for tests of start-up itself, outside `spawn_app`'s defaults.
pub async fn build_in(data_dir: &std::path::Path, extra: &[(&str, &str)]) -> app::App {
    let data = data_dir.display().to_string();
    let mut settings: HashMap<String, String> = HashMap::from([
        ("WARDEN_DATA_DIR".to_string(), data),
        ("WARDEN_BIND".to_string(), "127.0.0.1:0".to_string()),
    ]);
    for (k, v) in extra {
        settings.insert(k.to_string(), v.to_string());
    }
    let config = Config::from_lookup(|k| settings.get(k).cloned()).expect("test config is valid");
    app::build(config, ManualClock::new())
        .await
        .expect("app builds")
}

async fn start(
    kind: DbKind,
    settings: HashMap<String, String>,
    clock: Arc<ManualClock>,
    data_dir: Arc<tempfile::TempDir>,
    pg_database: Option<Arc<PgDatabase>>,
) -> TestApp {
    let config = Config::from_lookup(|k| settings.get(k).cloned()).expect("test config is valid");
    let app = app::build(config, clock.clone()).await.expect("app builds");
    let base = format!("http://{}", app.addr);
    let state = app.state.clone();
    let shutdown = app.shutdown_handle();
    let server = tokio::spawn(async move { app.run().await.expect("server runs") });
    TestApp {
        base,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        clock,
        state,
        kind,
        settings,
        shutdown,
        server: Some(server),
        data_dir,
        pg_database,
    }
}

/// The result of `POST /auth/login` in token mode.
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

/// A browser session: the cookie header to send and the CSRF token.
pub struct BrowserSession {
    pub cookie: String,
    pub csrf: String,
    pub set_cookie: String,
}

/// Who makes a request: adds that caller's credentials to it.
pub trait Caller {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder;
}

impl<T: Caller + ?Sized> Caller for &T {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        (**self).authorize(request)
    }
}

/// A bearer token (access token, API token or service-client token).
impl Caller for str {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(self)
    }
}

impl Caller for String {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(self)
    }
}

/// A token-mode login: its access token.
impl Caller for Tokens {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(&self.access)
    }
}

/// A browser: its session cookie and, as the server wants on every state-changing request, the CSRF token.
impl Caller for BrowserSession {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        request
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
    }
}

/// No credentials at all.
impl Caller for () {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        request
    }
}

/// Both callers' headers on one request: a caller plus an extra header, or two credentials at once.
impl<A: Caller, B: Caller> Caller for (A, B) {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        self.1.authorize(self.0.authorize(request))
    }
}

/// Headers spelled by hand (a cookie without its CSRF token, a raw `authorization`, an `origin`), in order;
/// a name given twice is sent twice.
pub struct Headers(Vec<(&'static str, String)>);

/// One hand-spelled header as a `Caller`; `.and(..)` adds more.
pub fn header(name: &'static str, value: impl Into<String>) -> Headers {
    Headers(vec![(name, value.into())])
}

impl Headers {
    pub fn and(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.0.push((name, value.into()));
        self
    }
}

impl Caller for Headers {
    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        self.0.iter().fold(request, |request, (name, value)| {
            request.header(*name, value)
        })
    }
}

/// A user made through the admin API, logged in, with one conversation started.
pub struct UserWithConversation {
    pub tokens: Tokens,
    pub conversation: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// The name of this test's PostgreSQL database (None on SQLite).
    pub fn pg_database_name(&self) -> Option<&str> {
        self.pg_database.as_deref().map(|d| d.name.as_str())
    }

    /// Stops the server and starts a new one on the same database, data dir and clock.
    pub async fn restart(mut self) -> TestApp {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        let (kind, settings, clock) = (self.kind, self.settings.clone(), self.clock.clone());
        let (data_dir, pg) = (self.data_dir.clone(), self.pg_database.clone());
        drop(self);
        start(kind, settings, clock, data_dir, pg).await
    }

    /// Stops the server and starts a new one on the same database, data dir and clock, with `extra` settings
    /// changed (an empty value unsets one).
    pub async fn restart_with(mut self, extra: &[(&str, &str)]) -> TestApp {
        for (k, v) in extra {
            self.settings.insert(k.to_string(), v.to_string());
        }
        self.restart().await
    }

    /// Stops the server (the database and data dir stay) and waits until it has ended.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }

    /// The settings this app was started with, with `extra` changed: a config for a build of its own.
    pub fn config_with(&self, extra: &[(&str, &str)]) -> Config {
        let mut settings = self.settings.clone();
        for (k, v) in extra {
            settings.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|k| settings.get(k).cloned()).expect("test config is valid")
    }

    /// One setting this app was started with.
    pub fn setting(&self, name: &str) -> Option<&str> {
        self.settings.get(name).map(String::as_str)
    }

    /// The app's data dir.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// A second server on the same database and data dir (as behind a load balancer), running beside this one.
    pub async fn another_instance(&self) -> TestApp {
        let (data_dir, pg) = (self.data_dir.clone(), self.pg_database.clone());
        start(
            self.kind,
            self.settings.clone(),
            self.clock.clone(),
            data_dir,
            pg,
        )
        .await
    }

    /// Waits until the app's background loop has run its first analytics tick (retention purge, then a system
    /// sample), so a test that moves the clock is not raced by that purge.
    pub async fn analytics_settled(&self) {
        let settled = TestApp::eventually(|| async {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM system_metrics")
                .fetch_one(&self.db().pool)
                .await
                .unwrap();
            n > 0
        })
        .await;
        assert!(
            settled,
            "the background loop never stored its first system sample"
        );
    }

    /// Polls `check` every 100 ms for up to 5 s; true once it holds.
    pub async fn eventually<F: std::future::Future<Output = bool>>(
        mut check: impl FnMut() -> F,
    ) -> bool {
        for _ in 0..50 {
            if check().await {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.get_as(path, token).await
    }

    /// `GET path` with no credentials.
    pub async fn get(&self, path: &str) -> Response {
        send_request(self.client.get(self.url(path))).await
    }

    /// `POST path` with no credentials and a raw body (broken JSON, forms, bytes), with `content_type` if given.
    pub async fn post_body(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.client.post(self.url(path));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        send_request(request.body(body)).await
    }

    /// `POST path` with no credentials and no body.
    pub async fn post_empty(&self, path: &str) -> Response {
        send_request(self.client.post(self.url(path))).await
    }

    /// `POST path` as `who` with no body (logout and the like).
    pub async fn post_empty_as(&self, path: &str, who: &(impl Caller + ?Sized)) -> Response {
        send_request(who.authorize(self.client.post(self.url(path)))).await
    }

    /// Any method on `path` as `who`, with no body.
    pub async fn request_as(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &(impl Caller + ?Sized),
    ) -> Response {
        send_request(who.authorize(self.client.request(method, self.url(path)))).await
    }

    /// Any method on `path` as `who` with a raw body (its content type, if any, comes with `who`'s headers).
    pub async fn request_body_as(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &(impl Caller + ?Sized),
        body: impl Into<reqwest::Body>,
    ) -> Response {
        send_request(
            who.authorize(self.client.request(method, self.url(path)))
                .body(body),
        )
        .await
    }

    /// Any method on `path` as `who` with a JSON body.
    pub async fn json_as(
        &self,
        method: reqwest::Method,
        path: &str,
        who: &(impl Caller + ?Sized),
        body: impl serde::Serialize,
    ) -> Response {
        send_request(
            who.authorize(self.client.request(method, self.url(path)))
                .json(&body),
        )
        .await
    }

    /// `GET path` as `who`.
    pub async fn get_as(&self, path: &str, who: &(impl Caller + ?Sized)) -> Response {
        send_request(who.authorize(self.client.get(self.url(path)))).await
    }

    /// `POST path` as `who` with a JSON body.
    pub async fn post_as(
        &self,
        path: &str,
        who: &(impl Caller + ?Sized),
        body: impl serde::Serialize,
    ) -> Response {
        self.json_as(reqwest::Method::POST, path, who, body).await
    }

    /// `PUT path` as `who` with a JSON body.
    pub async fn put_as(
        &self,
        path: &str,
        who: &(impl Caller + ?Sized),
        body: impl serde::Serialize,
    ) -> Response {
        self.json_as(reqwest::Method::PUT, path, who, body).await
    }

    /// `DELETE path` as `who`.
    pub async fn delete_as(&self, path: &str, who: &(impl Caller + ?Sized)) -> Response {
        send_request(who.authorize(self.client.delete(self.url(path)))).await
    }

    /// The JSON body of `GET path` as `who`, whatever the status.
    pub async fn get_json(&self, path: &str, who: &(impl Caller + ?Sized)) -> Value {
        json_of(self.get_as(path, who).await).await
    }

    /// A new user with the `user` role (password `<username>-password`), logged in, with one conversation.
    pub async fn user_with_conversation(&self, username: &str) -> UserWithConversation {
        let password = format!("{username}-password");
        self.create_user(username, &password, "user").await;
        let tokens = self.login(username, &password).await;
        let conversation = new_session(self, &tokens.access).await;
        UserWithConversation {
            tokens,
            conversation,
        }
    }

    pub async fn login_raw(&self, username: &str, password: &str) -> Response {
        self.post(
            "/auth/login",
            json!({ "username": username, "password": password }),
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Tokens {
        let r = self.login_raw(username, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login of {username} failed");
        let body: Value = r.json().await.unwrap();
        Tokens {
            access: body["access_token"].as_str().unwrap().to_string(),
            refresh: body["refresh_token"].as_str().unwrap().to_string(),
            user_id: body["user_id"].as_str().unwrap().to_string(),
        }
    }

    pub async fn admin(&self) -> Tokens {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn login_cookie(&self, username: &str, password: &str) -> BrowserSession {
        let r = self
            .post(
                "/auth/login",
                json!({ "username": username, "password": password, "mode": "cookie" }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let set_cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        BrowserSession {
            cookie,
            csrf: body["csrf_token"].as_str().unwrap().to_string(),
            set_cookie,
        }
    }

    /// Creates a user through the admin API and returns its id.
    pub async fn create_user(&self, username: &str, password: &str, role: &str) -> String {
        let admin = self.admin().await;
        let r = self
            .post_as(
                "/api/users",
                &admin,
                json!({ "username": username, "password": password, "role": role }),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        body["data"]["user"]["id"].as_str().unwrap().to_string()
    }

    /// Every text value in every table, for "no secret is stored in clear" checks.
    pub async fn all_table_text(&self) -> String {
        self.state.audit.flush().await;
        self.state.tool_log.flush().await;
        self.state.analytics.flush().await;
        // Every table of the schema, so a table added later is searched too (but sqlx's own bookkeeping, whose
        // timestamp type the Any driver cannot read).
        let list = match self.db().backend {
            warden::store::Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name <> '_sqlx_migrations' ORDER BY name"
            }
            warden::store::Backend::Postgres => {
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
                 AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations' ORDER BY table_name"
            }
        };
        let tables: Vec<(String,)> = sqlx::query_as(list)
            .fetch_all(&self.db().pool)
            .await
            .unwrap();
        let tables: Vec<String> = tables.into_iter().map(|(t,)| t).collect();
        let mut out = String::new();
        for t in &tables {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {t}")))
                .fetch_all(&self.db().pool)
                .await
                .unwrap();
            for row in rows {
                use sqlx::{Column, Row};
                for (i, col) in row.columns().iter().enumerate() {
                    if let Ok(Some(v)) = row.try_get::<Option<String>, _>(i) {
                        out.push_str(&format!("{t}.{}={v}\n", col.name()));
                    }
                }
            }
        }
        out
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn send_request(request: RequestBuilder) -> Response {
    request.send().await.expect("the test server answers")
}

/// `method path` with a bearer token and an optional JSON body: for tables of routes walked in a loop.
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Response {
    let request = token.authorize(app.client.request(method, app.url(path)));
    send_request(match body {
        Some(body) => request.json(&body),
        None => request,
    })
    .await
}

/// The JSON body of a response (panics when it is not JSON).
pub async fn json_of(r: Response) -> Value {
    r.json().await.expect("the body is JSON")
}

/// One string field of every object in a JSON array (`column(&h["messages"], "role")`).
pub fn column<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item[field].as_str().expect("a string field"))
        .collect()
}

/// Asserts a status and the common error shape; returns the body.
pub async fn expect_error(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status, "unexpected status for {}", r.url());
    let body: Value = r.json().await.expect("error bodies are JSON");
    assert_eq!(body["success"], json!(false), "{body}");
    assert!(
        body["error"].is_string() && body["code"].is_string(),
        "{body}"
    );
    body
}

/// Asserts that `token` no longer (or never did) authenticate: `GET /api/me` answers 401 in the error shape.
pub async fn expect_refused(app: &TestApp, token: &str) {
    expect_error(
        app.get_bearer("/api/me", token).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

/// Starts a conversation; returns its id.
pub async fn new_session(app: &TestApp, token: &str) -> String {
    let r = app
        .post_as("/chat/session/new", token, json!({ "title": "Test" }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], json!(true));
    body["session_id"].as_str().unwrap().to_string()
}

/// One chat turn in a conversation.
pub async fn send(app: &TestApp, token: &str, session: &str, text: &str) -> reqwest::Response {
    app.post_as(
        "/chat/message",
        token,
        json!({ "session_id": session, "message": text }),
    )
    .await
}

/// The same turn as `send`, asking for server-sent events.
pub async fn send_streaming(
    app: &TestApp,
    token: &str,
    session: &str,
    text: &str,
) -> reqwest::Response {
    let request = app
        .client
        .post(app.url("/chat/message"))
        .header("accept", "text/event-stream")
        .json(&json!({ "session_id": session, "message": text }));
    send_request(token.authorize(request)).await
}

/// The history of a conversation as its owner sees it.
pub async fn history(app: &TestApp, token: &str, session: &str) -> Value {
    app.get_json(&format!("/chat/session/{session}/history"), token)
        .await
}
