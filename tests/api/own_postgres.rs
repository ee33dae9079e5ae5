//! A PostgreSQL cluster of a test's own, for tests that stop or restart the database: `initdb` in a temporary
//! folder (as the `postgres` OS user: initdb refuses root), trust authentication, listening on a free 127.0.0.1
//! port with its unix socket in that folder. The shared server other tests use is never touched. Dropped, it is
//! stopped (`pg_ctl stop -m immediate`) and its folder removed, also when the test panics.

use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct OwnPostgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl OwnPostgres {
    /// Makes and starts a new cluster; panics (failing the test) if that cannot be done.
    pub async fn start_new() -> OwnPostgres {
        let dir = tempfile::Builder::new()
            .prefix("warden-pg-")
            .tempdir()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = OwnPostgres { dir, port };
        run_sync(Command::new("chown").args(["postgres:postgres", &pg.root()]));
        pg.as_postgres(&[
            &format!("{BIN}/initdb"),
            "--pgdata",
            &pg.data(),
            "--auth",
            "trust",
            "--username",
            "postgres",
            "--no-sync",
        ])
        .await;
        pg.start().await;
        pg
    }

    /// postgres://postgres@127.0.0.1:PORT/postgres
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the cluster and waits until it accepts connections.
    pub async fn start(&self) {
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "60",
            "-l",
            &self.log(),
            "-o",
            &self.options(),
        ])
        .await;
    }

    /// Stops the cluster (fast: open connections are ended, nothing is lost).
    pub async fn stop(&self) {
        self.pg_ctl(&["stop", "-w", "-m", "fast"]).await;
    }

    /// `pg_ctl restart -m fast`: stops and starts again on the same port and data.
    pub async fn restart(&self) {
        self.pg_ctl(&[
            "restart",
            "-w",
            "-t",
            "60",
            "-m",
            "fast",
            "-l",
            &self.log(),
            "-o",
            &self.options(),
        ])
        .await;
    }

    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn data(&self) -> String {
        format!("{}/data", self.root())
    }

    fn log(&self) -> String {
        format!("{}/postgres.log", self.root())
    }

    fn options(&self) -> String {
        format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=50",
            self.port,
            self.root()
        )
    }

    async fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = format!("{BIN}/pg_ctl");
        let mut all = vec![pg_ctl.as_str(), "-D"];
        let data = self.data();
        all.push(&data);
        all.extend_from_slice(args);
        self.as_postgres(&all).await;
    }

    /// Runs a command as the `postgres` OS user; panics with its output (and the server log) if it fails.
    async fn as_postgres(&self, command: &[&str]) {
        let out = tokio::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(command)
            .current_dir(self.dir.path())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{command:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }
}

fn run_sync(command: &mut Command) {
    let status = command.status().unwrap();
    assert!(status.success(), "{command:?} failed");
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        // Immediate: nothing of this cluster is kept, and a test that panicked must not wait on it.
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args([
                &format!("{BIN}/pg_ctl"),
                "-D",
                &self.data(),
                "stop",
                "-m",
                "immediate",
                "-w",
            ])
            .output();
        // The folder (owned by postgres) goes with the TempDir.
    }
}
