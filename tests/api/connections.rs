//! Database connection profiles (issue 10 item 7, seed 004) against the real PostgreSQL and MariaDB on this
//! machine and SQLite files: save, test, list (never a password), tables, columns, rows and read-only queries;
//! writing and multi-statement queries refused; the timeout and the row limit; sealed passwords that survive
//! `warden keys rotate`; the host rules and the SQLite folder rule; another user's profiles are 404 everywhere.
//!
//! Each test makes its own target database (and, on MariaDB, its own user) and drops it at the end.

use std::time::{Duration, Instant};

use sqlx::{Connection, Executor};

use crate::cli::warden_command;
use crate::helpers::{block_on_own_thread, drop_database_now, postgres_admin_url, prelude::*};

db_tests!(
    postgres_profiles_list_describe_read_and_query,
    mariadb_profiles_list_describe_read_and_query,
    sqlite_profiles_list_describe_read_and_query,
    writing_and_multi_statement_queries_are_refused_on_every_engine,
    a_slow_statement_stops_at_the_timeout,
    the_row_limit_cuts_and_says_so,
    passwords_are_sealed_never_returned_and_survive_keys_rotate,
    a_wrong_password_is_reported_without_echoing_it,
    internal_hosts_are_refused_unless_allowed,
    sqlite_profiles_open_only_files_inside_the_configured_folder,
    another_users_profiles_are_404_everywhere_and_the_tools_too,
    a_role_without_connections_use_is_refused,
);

const ALLOW_LOOPBACK: (&str, &str) = ("CONNECTION_ALLOWED_HOSTS", "127.0.0.1");
const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/";

/// A PostgreSQL database for one test, with a table `t` of three rows; dropped at the end.
struct TargetPg {
    name: String,
}

impl TargetPg {
    async fn create() -> TargetPg {
        let name = format!("wconn_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&postgres_admin_url())
            .await
            .expect("PostgreSQL reachable");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .unwrap();
        admin.close().await.unwrap();
        let base = postgres_admin_url();
        let url = format!("{}/{}", &base[..base.rfind('/').unwrap()], name);
        let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score DOUBLE PRECISION, ok BOOLEAN, \
             price NUMERIC(6,2)); \
             INSERT INTO t VALUES (1, 'one', 1.5, true, 9.99), (2, 'two', NULL, false, 0), (3, 'three', 3.25, NULL, 1); \
             CREATE SEQUENCE s;",
        )
        .execute(&mut c)
        .await
        .unwrap();
        c.close().await.unwrap();
        TargetPg { name }
    }

    fn profile(&self, name: &str) -> Value {
        json!({ "name": name, "host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "",
                "database": self.name, "database_type": "postgresql" })
    }
}

impl Drop for TargetPg {
    fn drop(&mut self) {
        drop_database_now(self.name.clone());
    }
}

/// A MariaDB database and a user of its own (password required) for one test; both dropped at the end.
struct TargetMaria {
    name: String,
    password: String,
}

impl TargetMaria {
    async fn create() -> TargetMaria {
        let name = format!("wconn_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let password = format!("Pw-{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::MySqlConnection::connect(MARIADB_ADMIN)
            .await
            .expect("MariaDB reachable at 127.0.0.1:3306");
        for sql in [
            format!("CREATE DATABASE `{name}`"),
            format!("CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'"),
            format!("GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'127.0.0.1'"),
            format!(
                "CREATE TABLE `{name}`.t (id INT PRIMARY KEY, name VARCHAR(20), score DOUBLE, ok BOOLEAN, \
                 price DECIMAL(6,2))"
            ),
            format!(
                "INSERT INTO `{name}`.t VALUES (1, 'one', 1.5, true, 9.99), (2, 'two', NULL, false, 0), \
                 (3, 'three', 3.25, NULL, 1)"
            ),
        ] {
            c.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
        }
        c.close().await.unwrap();
        TargetMaria { name, password }
    }

    fn profile(&self, name: &str) -> Value {
        json!({ "name": name, "host": "127.0.0.1", "port": "3306", "user": self.name,
                "password": self.password, "database": self.name, "database_type": "mariadb" })
    }

    async fn table_exists(&self) -> bool {
        let mut c = sqlx::MySqlConnection::connect(MARIADB_ADMIN).await.unwrap();
        let n: (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
        )
        .bind(&self.name)
        .fetch_one(&mut c)
        .await
        .unwrap();
        n.0 == 1
    }
}

impl Drop for TargetMaria {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on_own_thread(async move {
            if let Ok(mut c) = sqlx::MySqlConnection::connect(MARIADB_ADMIN).await {
                let _ = c
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS `{name}`"
                    )))
                    .await;
                let _ = c
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP USER IF EXISTS '{name}'@'127.0.0.1'"
                    )))
                    .await;
            }
        });
    }
}

/// A folder for SQLite profiles holding `data.db` with the same table `t`.
async fn sqlite_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut c = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL, ok BOOLEAN, price NUMERIC); \
         INSERT INTO t VALUES (1, 'one', 1.5, 1, 9.99), (2, 'two', NULL, 0, 0), (3, 'three', 3.25, NULL, 1);",
    )
    .execute(&mut c)
    .await
    .unwrap();
    c.close().await.unwrap();
    dir
}

fn sqlite_profile(name: &str, path: &str) -> Value {
    json!({ "name": name, "database": path, "database_type": "sqlite" })
}

/// Saves a profile; its id.
async fn save(app: &TestApp, token: &str, profile: Value) -> String {
    let r = app.post_as("/api/save-connection", token, profile).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body = json_of(r).await;
    body["connection"]["id"].as_str().unwrap().to_string()
}

async fn query(app: &TestApp, token: &str, id: &str, sql: &str) -> reqwest::Response {
    app.post_as(
        "/api/analytics-query",
        token,
        json!({ "connection_id": id, "query": sql }),
    )
    .await
}

/// The same walk on every engine: test, list, tables, columns, rows, a query with typed values.
async fn walk(app: &TestApp, token: &str, profile: Value, version_word: &str) -> String {
    let r = app
        .post_as("/api/test-connection", token, profile.clone())
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let tested = json_of(r).await;
    assert!(
        tested["server_version"]
            .as_str()
            .unwrap()
            .contains(version_word),
        "{tested}"
    );
    let id = save(app, token, profile.clone()).await;
    let r = app
        .post_as(
            "/api/test-connection",
            token,
            json!({ "connection_id": id }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);

    let list = app.get_json("/api/get-connections", token).await;
    assert_eq!(list["count"], json!(1), "{list}");
    let listed = &list["connections"][0];
    assert_eq!(listed["id"], json!(id));
    if let Some(p) = profile["password"].as_str().filter(|p| !p.is_empty()) {
        assert!(!list.to_string().contains(p), "{list}");
        assert_eq!(listed["has_password"], json!(true));
        assert_eq!(listed["password"], json!("********"));
    }

    let tables = json_of(
        app.post_as("/api/list-tables", token, json!({ "connection_id": id }))
            .await,
    )
    .await;
    assert_eq!(column(&tables["tables"], "name"), ["t"], "{tables}");

    let columns = json_of(
        app.post_as(
            "/api/describe-columns",
            token,
            json!({ "connection_id": id, "table": "t" }),
        )
        .await,
    )
    .await;
    assert_eq!(
        column(&columns["columns"], "name"),
        ["id", "name", "score", "ok", "price"],
        "{columns}"
    );
    let r = app
        .post_as(
            "/api/describe-columns",
            token,
            json!({ "connection_id": id, "table": "nope\"; DROP TABLE t; --" }),
        )
        .await;
    expect_error(r, StatusCode::NOT_FOUND).await;

    let rows = json_of(
        app.post_as(
            "/api/get-table-rows",
            token,
            json!({ "connection_id": id, "table": "t", "limit": 2 }),
        )
        .await,
    )
    .await;
    assert_eq!(rows["row_count"], json!(2), "{rows}");
    assert_eq!(rows["rows"][0]["name"], json!("one"));

    let r = query(
        app,
        token,
        &id,
        "SELECT id, name, score, price FROM t WHERE id >= 2 ORDER BY id;",
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let result = json_of(r).await;
    assert_eq!(result["row_count"], json!(2), "{result}");
    assert_eq!(result["truncated"], json!(false));
    assert!(result["execution_time"].as_f64().unwrap() >= 0.0);
    assert_eq!(
        result["sql"],
        json!("SELECT id, name, score, price FROM t WHERE id >= 2 ORDER BY id")
    );
    assert_eq!(result["rows"][0]["id"], json!(2));
    assert_eq!(result["rows"][0]["name"], json!("two"));
    assert_eq!(result["rows"][0]["score"], Value::Null);
    assert_eq!(result["rows"][1]["score"], json!(3.25));
    assert!(result["rows"][1]["price"].is_string() || result["rows"][1]["price"].is_number());
    id
}

async fn postgres_profiles_list_describe_read_and_query(kind: DbKind) {
    let target = TargetPg::create().await;
    let app = spawn_app_with(kind, &[ALLOW_LOOPBACK]).await;
    let admin = app.admin().await;
    let id = walk(&app, &admin.access, target.profile("pg"), "").await;
    let result =
        json_of(query(&app, &admin.access, &id, "SELECT ok FROM t ORDER BY id").await).await;
    assert_eq!(
        result["rows"],
        json!([{ "ok": true }, { "ok": false }, { "ok": null }])
    );
    // Delete, then it is gone.
    let r = app
        .delete_as(&format!("/api/delete-connection/{id}"), &admin.access)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let list = app.get_json("/api/get-connections", &admin.access).await;
    assert_eq!(list["count"], json!(0));
    let events = app.all_table_text().await;
    assert!(events.contains("connection.save") && events.contains("connection.delete"));
}

async fn mariadb_profiles_list_describe_read_and_query(kind: DbKind) {
    let target = TargetMaria::create().await;
    let app = spawn_app_with(kind, &[ALLOW_LOOPBACK]).await;
    let admin = app.admin().await;
    let id = walk(&app, &admin.access, target.profile("maria"), "MariaDB").await;
    let result =
        json_of(query(&app, &admin.access, &id, "SELECT ok FROM t ORDER BY id").await).await;
    assert_eq!(
        result["rows"],
        json!([{ "ok": true }, { "ok": false }, { "ok": null }])
    );
    let shown = query(&app, &admin.access, &id, "SHOW TABLES").await;
    assert_eq!(shown.status(), StatusCode::OK);
    let described = query(&app, &admin.access, &id, "DESCRIBE t").await;
    assert_eq!(described.status(), StatusCode::OK);
}

async fn sqlite_profiles_list_describe_read_and_query(kind: DbKind) {
    let dir = sqlite_folder().await;
    let app = spawn_app_with(
        kind,
        &[("CONNECTION_SQLITE_DIR", dir.path().to_str().unwrap())],
    )
    .await;
    let admin = app.admin().await;
    walk(
        &app,
        &admin.access,
        sqlite_profile("lite", "data.db"),
        "SQLite",
    )
    .await;
}

async fn writing_and_multi_statement_queries_are_refused_on_every_engine(kind: DbKind) {
    let pg = TargetPg::create().await;
    let maria = TargetMaria::create().await;
    let dir = sqlite_folder().await;
    let app = spawn_app_with(
        kind,
        &[
            ALLOW_LOOPBACK,
            ("CONNECTION_SQLITE_DIR", dir.path().to_str().unwrap()),
        ],
    )
    .await;
    let admin = app.admin().await;
    let token = admin.access.as_str();
    let ids = [
        save(&app, token, pg.profile("pg")).await,
        save(&app, token, maria.profile("maria")).await,
        save(&app, token, sqlite_profile("lite", "data.db")).await,
    ];
    let marker = std::env::temp_dir().join(format!("warden-copy-{}", uuid::Uuid::new_v4()));
    let marker_text = marker.display().to_string();
    let refused = [
        "INSERT INTO t VALUES (9, 'nine', 9, true, 9)".to_string(),
        "UPDATE t SET name = 'x'".into(),
        "DROP TABLE t".into(),
        format!("COPY (SELECT 1) TO PROGRAM 'touch {marker_text}'"),
        "SELECT 1; DROP TABLE t".into(),
        "SELECT 1;\nDROP TABLE t;".into(),
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d".into(),
        "SET statement_timeout = 0".into(),
        "ATTACH DATABASE '/tmp/x.db' AS x".into(),
    ];
    for id in &ids {
        for sql in &refused {
            let body = expect_error(
                query(&app, token, id, sql).await,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
            assert_eq!(body["code"], json!("statement_refused"), "{sql}: {body}");
        }
        // The table is still there with its three rows.
        let r = json_of(query(&app, token, id, "SELECT COUNT(*) AS n FROM t").await).await;
        assert_eq!(r["rows"][0]["n"], json!(3), "{r}");
    }
    assert!(!marker.exists(), "COPY TO PROGRAM ran");
    assert!(maria.table_exists().await);
    // The read-only transaction is the second line: a SELECT that writes (a sequence) fails on the server.
    let body = expect_error(
        query(&app, token, &ids[0], "SELECT nextval('s')").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["code"], json!("query_error"), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
}

async fn a_slow_statement_stops_at_the_timeout(kind: DbKind) {
    let pg = TargetPg::create().await;
    let maria = TargetMaria::create().await;
    let dir = sqlite_folder().await;
    let app = spawn_app_with(
        kind,
        &[
            ALLOW_LOOPBACK,
            ("CONNECTION_STATEMENT_TIMEOUT_MS", "1000"),
            ("CONNECTION_SQLITE_DIR", dir.path().to_str().unwrap()),
        ],
    )
    .await;
    let admin = app.admin().await;
    let token = admin.access.as_str();
    for (profile, sql) in [
        (pg.profile("pg"), "SELECT pg_sleep(30)"),
        (maria.profile("maria"), "SELECT SLEEP(30)"),
        (
            sqlite_profile("lite", "data.db"),
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c",
        ),
    ] {
        let id = save(&app, token, profile).await;
        let started = Instant::now();
        let body = expect_error(
            query(&app, token, &id, sql).await,
            StatusCode::GATEWAY_TIMEOUT,
        )
        .await;
        assert_eq!(body["code"], json!("db_timeout"), "{sql}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("Timed out"),
            "{body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{sql} took {:?}",
            started.elapsed()
        );
    }
}

async fn the_row_limit_cuts_and_says_so(kind: DbKind) {
    let pg = TargetPg::create().await;
    let app = spawn_app_with(kind, &[ALLOW_LOOPBACK, ("CONNECTION_MAX_ROWS", "5")]).await;
    let admin = app.admin().await;
    let id = save(&app, &admin.access, pg.profile("pg")).await;
    let r = json_of(
        query(
            &app,
            &admin.access,
            &id,
            "SELECT g AS n FROM generate_series(1, 20) g",
        )
        .await,
    )
    .await;
    assert_eq!(r["row_count"], json!(5), "{r}");
    assert_eq!(r["truncated"], json!(true));
    assert_eq!(r["rows"][4]["n"], json!(5));
    let r = json_of(
        query(
            &app,
            &admin.access,
            &id,
            "SELECT g FROM generate_series(1, 5) g",
        )
        .await,
    )
    .await;
    assert_eq!(
        (r["row_count"].clone(), r["truncated"].clone()),
        (json!(5), json!(false))
    );
    let r = json_of(
        app.post_as(
            "/api/get-table-rows",
            &admin.access,
            json!({ "connection_id": id, "table": "t", "limit": 1000 }),
        )
        .await,
    )
    .await;
    assert_eq!(r["row_count"], json!(3), "{r}");
}

async fn passwords_are_sealed_never_returned_and_survive_keys_rotate(kind: DbKind) {
    // Arrange
    let maria = TargetMaria::create().await;
    let mut app = spawn_app_with(kind, &[ALLOW_LOOPBACK]).await;
    let admin = app.admin().await;
    app.create_user("rita", "rita-password", "user").await;
    let rita = app.login("rita", "rita-password").await;
    let id = save(&app, &rita.access, maria.profile("maria")).await;

    // Assert: nowhere in the app's database, nor in any reply (an admin's included).
    let text = app.all_table_text().await;
    assert!(
        !text.contains(&maria.password),
        "the password is stored in clear"
    );
    assert!(text.contains("connections.password_sealed=v1:"), "{text}");
    for (path, who) in [
        ("/api/get-connections", rita.access.as_str()),
        ("/api/get-connections", admin.access.as_str()),
        ("/api/audit?limit=500", admin.access.as_str()),
    ] {
        let body = app.get_json(path, who).await;
        assert!(
            !body.to_string().contains(&maria.password),
            "{path}: {body}"
        );
    }
    let admin_view = app.get_json("/api/get-connections", &admin.access).await;
    assert_eq!(
        admin_view["count"],
        json!(0),
        "an admin sees only their own"
    );

    // Act: rotate the key with the server stopped.
    app.stop().await;
    let old_key = std::fs::read_to_string(app.data_dir().join("encryption_key")).unwrap();
    let mut command = warden_command(app.data_dir());
    if let Some(url) = app.setting("DATABASE_URL") {
        command.env("DATABASE_URL", url);
    }
    let out = command.args(["keys", "rotate"]).output().unwrap();
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("re-sealed 1 database connection passwords"),
        "{printed}"
    );
    // A start with the old key is refused: it no longer opens the stored passwords.
    let refused = warden::app::build(
        app.config_with(&[("WARDEN_ENCRYPTION_KEY", old_key.trim())]),
        warden::clock::ManualClock::new(),
    )
    .await;
    let err = refused.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(err.contains("connection passwords"), "{err}");
    let app = app.restart().await;

    // Assert: the profile still connects.
    let rita = app.login("rita", "rita-password").await;
    let r = app
        .post_as(
            "/api/test-connection",
            &rita.access,
            json!({ "connection_id": id }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

async fn a_wrong_password_is_reported_without_echoing_it(kind: DbKind) {
    let maria = TargetMaria::create().await;
    let app = spawn_app_with(kind, &[ALLOW_LOOPBACK]).await;
    let admin = app.admin().await;
    let wrong = "Wrong-Pa55word-Zq9";
    let mut profile = maria.profile("maria");
    profile["password"] = json!(wrong);
    let body = expect_error(
        app.post_as("/api/test-connection", &admin.access, profile.clone())
            .await,
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert_eq!(body["code"], json!("db_auth_failed"), "{body}");
    assert!(!body.to_string().contains(wrong), "{body}");
    assert!(!body.to_string().contains(&maria.password), "{body}");
    // A missing database and a closed port have their own short messages.
    let mut missing = maria.profile("maria");
    missing["database"] = json!("no_such_database_here");
    let body = expect_error(
        app.post_as("/api/test-connection", &admin.access, missing)
            .await,
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert_eq!(body["code"], json!("db_not_found"), "{body}");
    let mut closed = maria.profile("maria");
    closed["port"] = json!(1);
    let body = expect_error(
        app.post_as("/api/test-connection", &admin.access, closed)
            .await,
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert_eq!(body["code"], json!("db_unreachable"), "{body}");
    assert!(!body.to_string().contains(&maria.password), "{body}");
}

async fn internal_hosts_are_refused_unless_allowed(kind: DbKind) {
    let pg = TargetPg::create().await;
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    for host in ["127.0.0.1", "10.1.2.3", "::ffff:127.0.0.1", "localhost"] {
        let mut profile = pg.profile(host);
        profile["host"] = json!(host);
        for path in ["/api/save-connection", "/api/test-connection"] {
            let body = expect_error(
                app.post_as(path, &admin.access, profile.clone()).await,
                StatusCode::FORBIDDEN,
            )
            .await;
            assert_eq!(body["code"], json!("host_not_allowed"), "{host}: {body}");
            assert!(
                body["error"].as_str().unwrap().contains(host),
                "{host}: {body}"
            );
        }
    }
    let list = app.get_json("/api/get-connections", &admin.access).await;
    assert_eq!(list["count"], json!(0));
    drop(app);

    // Allowed by address: 127.0.0.1 (and its IPv4-mapped form) connects; 10.1.2.3 still does not.
    let app = spawn_app_with(kind, &[ALLOW_LOOPBACK]).await;
    let admin = app.admin().await;
    for host in ["127.0.0.1", "::ffff:127.0.0.1"] {
        let mut profile = pg.profile(host);
        profile["host"] = json!(host);
        let r = app
            .post_as("/api/test-connection", &admin.access, profile)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{host}");
    }
    let mut profile = pg.profile("private");
    profile["host"] = json!("10.1.2.3");
    expect_error(
        app.post_as("/api/save-connection", &admin.access, profile)
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    drop(app);

    // Allowed by name: `localhost` as written.
    let app = spawn_app_with(kind, &[("CONNECTION_ALLOWED_HOSTS", "localhost")]).await;
    let admin = app.admin().await;
    let mut profile = pg.profile("named");
    profile["host"] = json!("localhost");
    let r = app
        .post_as("/api/test-connection", &admin.access, profile)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

async fn sqlite_profiles_open_only_files_inside_the_configured_folder(kind: DbKind) {
    // Unset: SQLite profiles are refused with a clear message.
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let body = expect_error(
        app.post_as(
            "/api/save-connection",
            &admin.access,
            sqlite_profile("lite", "/etc/passwd"),
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(body["code"], json!("sqlite_not_allowed"));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("CONNECTION_SQLITE_DIR")
    );
    drop(app);

    let dir = sqlite_folder().await;
    let app = spawn_app_with(
        kind,
        &[("CONNECTION_SQLITE_DIR", dir.path().to_str().unwrap())],
    )
    .await;
    let admin = app.admin().await;
    // A database outside the folder (by its path, by `..` and by a symbolic link), Warden's own database, a
    // missing file: all refused.
    let outside = sqlite_folder().await;
    let outside_db = outside.path().join("data.db");
    std::os::unix::fs::symlink(&outside_db, dir.path().join("link.db")).unwrap();
    let absolute = outside_db.display().to_string();
    let escape = format!(
        "../{}/data.db",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    assert!(
        dir.path().join(&escape).exists(),
        "the escape path leads to a real file"
    );
    let own = app.data_dir().join("warden.db").display().to_string();
    for path in [
        absolute.as_str(),
        escape.as_str(),
        "link.db",
        own.as_str(),
        "missing.db",
        "/etc/passwd",
    ] {
        let body = expect_error(
            app.post_as(
                "/api/save-connection",
                &admin.access,
                sqlite_profile("lite", path),
            )
            .await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert_eq!(body["code"], json!("sqlite_not_allowed"), "{path}: {body}");
    }
    assert!(
        !dir.path().join("missing.db").exists(),
        "a file was created"
    );
    // A file inside works, by a relative or an absolute path.
    let inside = dir.path().join("data.db").display().to_string();
    let id = save(&app, &admin.access, sqlite_profile("abs", &inside)).await;
    let r = json_of(query(&app, &admin.access, &id, "SELECT COUNT(*) AS n FROM t").await).await;
    assert_eq!(r["rows"][0]["n"], json!(3), "{r}");
}

async fn another_users_profiles_are_404_everywhere_and_the_tools_too(kind: DbKind) {
    let pg = TargetPg::create().await;
    let app = spawn_app_with(kind, &[ALLOW_LOOPBACK]).await;
    app.create_user("olga", "olga-password", "user").await;
    app.create_user("mallory", "mallory-password", "user").await;
    let olga = app.login("olga", "olga-password").await;
    let mallory = app.login("mallory", "mallory-password").await;
    let id = save(&app, &olga.access, pg.profile("pg")).await;

    for (path, body) in [
        ("/api/list-tables", json!({ "connection_id": id })),
        (
            "/api/describe-columns",
            json!({ "connection_id": id, "table": "t" }),
        ),
        (
            "/api/get-table-rows",
            json!({ "connection_id": id, "table": "t" }),
        ),
        (
            "/api/analytics-query",
            json!({ "connection_id": id, "query": "SELECT 1" }),
        ),
        ("/api/test-connection", json!({ "connection_id": id })),
    ] {
        let body = expect_error(
            app.post_as(path, &mallory.access, body).await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(body["error"], json!("Connection not found"), "{path}");
    }
    expect_error(
        app.delete_as(&format!("/api/delete-connection/{id}"), &mallory.access)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let list = app.get_json("/api/get-connections", &mallory.access).await;
    assert_eq!(list["count"], json!(0));

    // The db_query tool: the owner's call runs; another user's is refused as not found.
    let call = |token: String| {
        let app = &app;
        let id = id.clone();
        async move {
            json_of(
                app.post_as(
                    "/api/servers/builtin/tools/db_query/execute",
                    &token,
                    json!({ "parameters": { "connection_id": id, "query": "SELECT name FROM t WHERE id = 1" } }),
                )
                .await,
            )
            .await
        }
    };
    let own = call(olga.access.clone()).await;
    assert_eq!(own["success"], json!(true), "{own}");
    assert_eq!(own["result"]["rows"], json!([{ "name": "one" }]), "{own}");
    let foreign = call(mallory.access.clone()).await;
    assert_eq!(foreign["success"], json!(false), "{foreign}");
    assert_eq!(foreign["error"], json!("Connection not found"), "{foreign}");
    // Through the builtin agent in a chat as well.
    let sid = new_session(&app, &mallory.access).await;
    let r = json_of(
        send(
            &app,
            &mallory.access,
            &sid,
            &format!(r#"/call db_query {{"connection_id":"{id}","query":"SELECT 1"}}"#),
        )
        .await,
    )
    .await;
    assert!(
        r["content"]
            .as_str()
            .unwrap()
            .contains("Connection not found"),
        "{r}"
    );
    // The owner's profile is untouched.
    let list = app.get_json("/api/get-connections", &olga.access).await;
    assert_eq!(list["count"], json!(1));
}

async fn a_role_without_connections_use_is_refused(kind: DbKind) {
    let app = spawn_app(kind).await;
    let admin = app.admin().await;
    let r = app
        .post_as(
            "/api/permissions",
            &admin.access,
            json!({ "role": "chatter", "permissions": ["chat:use", "tools:call:*"] }),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.create_user("cora", "cora-password", "chatter").await;
    let cora = app.login("cora", "cora-password").await;
    let body = expect_error(
        app.get_as("/api/get-connections", &cora.access).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(body["error"].as_str().unwrap().contains("connections:use"));
    // Nor does the catalog offer the tools.
    let tools = app.get_json("/tools", &cora.access).await;
    assert!(!tools.to_string().contains("db_query"), "{tools}");
    // The seeded user role holds it.
    app.create_user("uma", "uma-password", "user").await;
    let uma = app.login("uma", "uma-password").await;
    let r = app.get_as("/api/get-connections", &uma.access).await;
    assert_eq!(r.status(), StatusCode::OK);
}
