//! The `warden` command: serve (the default), migrate, user, client, doctor, telesign-mock.
//! Passwords are read from standard input or a prompt, never from the command line.

use std::{io::BufRead, process::ExitCode, sync::Arc};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    app,
    auth::{Auth, AuthParts, Settings, UserChange},
    clock::{SharedClock, SystemClock},
    config::{Config, LogFormat},
    ids::Actor,
    store::Db,
};

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "Self-hosted backend for using AI agents and their tools safely"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage service clients (OAuth2 client credentials).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Check the configuration and print what production would refuse.
    Doctor,
    /// Serve a local Telesign (the REST endpoints Warden uses, verifying signatures) until Ctrl-C; prints
    /// `listening on http://ADDR`. Point TELESIGN_API_URL and TELESIGN_INTELLIGENCE_URL at it.
    TelesignMock {
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        #[arg(long, env = "TELESIGN_CUSTOMER_ID")]
        customer_id: String,
        #[arg(long, env = "TELESIGN_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Milliseconds between a send and its delivery receipt.
        #[arg(long, default_value_t = 50)]
        callback_delay_ms: u64,
    },
    /// Serve a bare constant handler (the benchmark's baseline).
    #[command(hide = true)]
    BenchBaseline {
        #[arg(long, default_value = "127.0.0.1:18080")]
        bind: String,
    },
    /// Serve a minimal MCP server with an `add` tool at /mcp (the benchmark's upstream).
    #[command(hide = true)]
    BenchMcpUpstream {
        #[arg(long, default_value = "127.0.0.1:18082")]
        bind: String,
    },
    /// Serve an instant OpenAI-compatible chat completion (the benchmark's language model).
    #[command(hide = true)]
    BenchLlm {
        #[arg(long, default_value = "127.0.0.1:18081")]
        bind: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input or a prompt.
    Create {
        username: String,
        #[arg(long, default_value = "user")]
        role: String,
        /// Link an external identity, as ISSUER:SUBJECT (e.g. django:42 or https://id.example.com:alice);
        /// ISSUER must be a configured issuer.
        #[arg(long)]
        external: Option<String>,
    },
    /// List users.
    List,
    /// Set a user's password (read from standard input or a prompt); their sessions end.
    SetPassword { username: String },
    /// Set a user's role; their sessions end.
    SetRole { username: String, role: String },
    /// Disable a user; their sessions end.
    Disable { username: String },
    /// Link an external identity to an existing user, as ISSUER:SUBJECT (e.g. django:42 or
    /// https://id.example.com:alice); ISSUER must be a configured issuer.
    Link { username: String, external: String },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Create a service client; prints its id and secret once.
    Create {
        name: String,
        #[arg(long, default_value = "user")]
        role: String,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warden: configuration error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warden: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| {
            tracing_subscriber::EnvFilter::try_new(format!("warn,warden={}", config.log_level))
        })
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    let clock: SharedClock = Arc::new(SystemClock);
    match command {
        Command::Serve => serve(config, clock).await,
        Command::Migrate => {
            let db = Db::connect(&config.effective_database_url()).await?;
            let applied = db.migrate().await?;
            println!("migrations applied: {applied:?}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor => Ok(doctor(&config)),
        Command::User(cmd) => user(cmd, config, clock).await,
        Command::Client(ClientCommand::Create { name, role }) => {
            let auth = open_auth(&config, clock).await?;
            let client = auth.create_client(&name, &role).await?;
            println!("client_id: {}", client.client_id);
            println!("client_secret: {}", client.client_secret);
            println!("(the secret is shown once; store it now)");
            Ok(ExitCode::SUCCESS)
        }
        Command::TelesignMock {
            bind,
            customer_id,
            api_key,
            callback_delay_ms,
        } => telesign_mock(bind, customer_id, api_key, callback_delay_ms).await,
        Command::BenchMcpUpstream { bind } => {
            crate::bench::mcp_upstream::run(&bind).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchLlm { bind } => {
            crate::bench::llm::run(&bind).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchBaseline { bind } => {
            crate::bench::baseline::run(&bind).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: Config, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let app = app::build(config, clock).await?;
    if let Some(password) = &app.generated_admin_password {
        // Printed once, on the terminal only, never through the log.
        println!("Created the admin account. Username: admin  Password: {password}");
        println!("Store it now; it is not shown again. Set ADMIN_PASSWORD to choose it yourself.");
    }
    tracing::info!(address = %app.addr, database = ?app.state.db.backend, "warden serving on http://{}", app.addr);
    let stop = app.shutdown_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    app.run().await?;
    Ok(ExitCode::SUCCESS)
}

async fn telesign_mock(
    bind: String,
    customer_id: String,
    api_key: String,
    callback_delay_ms: u64,
) -> anyhow::Result<ExitCode> {
    use crate::sms::telesign::mock;
    let handle = mock::start(mock::MockSettings {
        bind,
        customer_id,
        api_key,
        callback_delay: std::time::Duration::from_millis(callback_delay_ms),
    })
    .await?;
    println!("listening on {}", handle.url());
    shutdown_signal().await;
    handle.stop();
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn doctor(config: &Config) -> ExitCode {
    println!("environment: {:?}", config.environment);
    println!(
        "database: {}",
        crate::config::redact_url(&config.effective_database_url())
    );
    println!("bind: {}  public url: {}", config.bind, config.public_url);
    let findings = config.findings();
    if findings.is_empty() {
        println!("ok: production would start with these settings");
        return ExitCode::SUCCESS;
    }
    println!("production would refuse to start:");
    for f in &findings {
        println!("  - {f}");
    }
    if config.is_production() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn open_auth(config: &Config, clock: SharedClock) -> anyhow::Result<Auth> {
    // The CLI shares the server's database, so its changes and revocations reach running servers (which poll
    // for them). It issues no tokens, so it needs no signing key: a throwaway one is used.
    let db = Db::connect(&config.effective_database_url()).await?;
    db.migrate().await?;
    let audit = crate::audit::Audit::start(db.clone(), clock.clone());
    Auth::new(AuthParts {
        db,
        clock,
        secret: rand::random::<[u8; 32]>().to_vec(),
        issuer: config.public_url.clone(),
        django_secret: None,
        jwks: None,
        hash_concurrency: 1,
        ip_per_minute: u32::MAX,
        settings: Settings::from_config(config),
        audit,
    })
    .await
}

async fn user(cmd: UserCommand, config: Config, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let auth = open_auth(&config, clock).await?;
    let issuers = configured_issuers(&config);
    match cmd {
        UserCommand::Create {
            username,
            role,
            external,
        } => {
            // Checked first, so a refused identity leaves no account behind.
            let identity = external
                .as_deref()
                .map(|text| parse_identity(text, &issuers))
                .transpose()?;
            let password = read_password("Password for the new user: ")?;
            let row = auth
                .create_user(&username, password, &role, None, None)
                .await?;
            if let Some((issuer, subject)) = identity {
                auth.link_external(issuer, subject, row.id.as_str()).await?;
            }
            println!(
                "created user {} ({}) with role {}",
                row.username, row.id, row.role
            );
        }
        UserCommand::Link { username, external } => {
            let (issuer, subject) = parse_identity(&external, &issuers)?;
            let row = auth.find_user_by_name(&username).await?;
            auth.link_external(issuer, subject, row.id.as_str()).await?;
            println!(
                "{} is now linked to issuer {issuer}, subject {subject}",
                row.username
            );
        }
        UserCommand::List => {
            println!(
                "{:<38} {:<24} {:<10} {:<8} {:<7} logins",
                "id", "username", "role", "kind", "active"
            );
            for u in auth.list_users().await? {
                println!(
                    "{:<38} {:<24} {:<10} {:<8} {:<7} {}",
                    u.id, u.username, u.role, u.kind, u.is_active, u.login_count
                );
            }
        }
        UserCommand::SetPassword { username } => {
            let row = auth.find_user_by_name(&username).await?;
            let password = read_password("New password: ")?;
            auth.set_password(None, row.id.as_str(), password, None)
                .await?;
            println!(
                "password changed for {}; their sessions have ended",
                row.username
            );
        }
        UserCommand::SetRole { username, role } => {
            let row = auth.find_user_by_name(&username).await?;
            auth.update_user(
                &Actor::Cli,
                row.id.as_str(),
                UserChange {
                    role: Some(role.clone()),
                    ..Default::default()
                },
            )
            .await?;
            println!(
                "{} now has role {role}; their sessions have ended",
                row.username
            );
        }
        UserCommand::Disable { username } => {
            let row = auth.find_user_by_name(&username).await?;
            auth.update_user(
                &Actor::Cli,
                row.id.as_str(),
                UserChange {
                    is_active: Some(false),
                    ..Default::default()
                },
            )
            .await?;
            println!("{} is disabled; their sessions have ended", row.username);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The issuers whose tokens this server accepts; an identity linked for any other could never sign in.
fn configured_issuers(config: &Config) -> Vec<&str> {
    let mut issuers = Vec::new();
    if let Some(jwks) = &config.jwks_issuer {
        issuers.push(jwks.issuer.as_str());
    }
    if config.django_secret_key.is_some() {
        issuers.push(crate::auth::DJANGO_ISSUER);
    }
    issuers
}

/// Splits ISSUER:SUBJECT where ISSUER is one of `issuers`. Issuers are often URLs (`https://host:port/...`) and
/// subjects may hold colons, so no one colon can be the separator: the issuer is the configured one the text
/// starts with, and text that two issuers could start is refused as ambiguous.
fn parse_identity<'a>(text: &'a str, issuers: &[&'a str]) -> anyhow::Result<(&'a str, &'a str)> {
    let mut matches = issuers.iter().filter_map(|issuer| {
        let subject = text.strip_prefix(issuer)?.strip_prefix(':')?;
        Some((*issuer, subject))
    });
    let Some((issuer, subject)) = matches.next() else {
        let known = if issuers.is_empty() {
            "none is configured (set EXTERNAL_JWKS_ISSUER, or DJANGO_SECRET_KEY for django)"
                .to_string()
        } else {
            format!("configured: {}", issuers.join(", "))
        };
        anyhow::bail!(
            "the issuer of {text:?} is not a configured issuer (ISSUER:SUBJECT); {known}"
        );
    };
    anyhow::ensure!(
        matches.next().is_none(),
        "{text:?} is ambiguous: more than one configured issuer could start it"
    );
    anyhow::ensure!(
        !subject.is_empty(),
        "{text:?} has no subject after {issuer}:"
    );
    Ok((issuer, subject))
}

/// From a prompt on a terminal, else the first line of standard input.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).context("reading the password");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::parse_identity;

    #[test]
    fn an_identity_splits_after_the_configured_issuer_it_starts_with() {
        let issuers = ["https://id.example.com:8443/realms/main", "django"];
        assert_eq!(
            parse_identity("https://id.example.com:8443/realms/main:a:b", &issuers).unwrap(),
            ("https://id.example.com:8443/realms/main", "a:b")
        );
        assert_eq!(
            parse_identity("django:42", &issuers).unwrap(),
            ("django", "42")
        );
        assert!(parse_identity("https:alice", &issuers).is_err());
        assert!(parse_identity("django:", &issuers).is_err());
        assert!(parse_identity("djangox:1", &issuers).is_err());
        assert!(parse_identity("a:b:c", &["a", "a:b"]).is_err(), "ambiguous");
    }
}
