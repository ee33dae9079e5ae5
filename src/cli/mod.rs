//! The `warden` command: serve (the default), migrate, user, client, keys, doctor, telesign-mock.
//! The account commands (`user`, `client`) are in `accounts.rs`, `keys rotate` in `keys.rs`.

mod accounts;
mod keys;

use std::{process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};

use crate::{
    app,
    clock::{SharedClock, SystemClock},
    config::{Config, LogFormat},
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
    User(accounts::UserCommand),
    /// Manage service clients (OAuth2 client credentials).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the encryption key of secrets sealed at rest.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
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
    /// Fill a database with generated request rows and time the analytics dashboards over them.
    #[command(hide = true)]
    BenchAnalytics {
        /// The database to fill (created if it is a new SQLite file).
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Days the rows are spread over, ending now.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Time logout-to-refusal between two running instances (the push benchmark, bench/push.sh).
    #[command(hide = true)]
    BenchPush {
        /// The instance where each session logs in and out.
        #[arg(long)]
        origin: String,
        /// The instance that must refuse the token.
        #[arg(long)]
        other: String,
        /// The admin password (ADMIN_PASSWORD of the instances).
        #[arg(long, env = "ADMIN_PASSWORD")]
        password: String,
        #[arg(long, default_value_t = 200)]
        trials: usize,
    },
    /// Serve an instant OpenAI-compatible chat completion (the benchmark's language model).
    #[command(hide = true)]
    BenchLlm {
        #[arg(long, default_value = "127.0.0.1:18081")]
        bind: String,
    },
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
        Command::Keys(cmd) => keys::run(cmd, config).await,
        Command::User(cmd) => accounts::user(cmd, config, clock).await,
        Command::Client(ClientCommand::Create { name, role }) => {
            accounts::create_client(&config, clock, &name, &role).await
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
        Command::BenchAnalytics {
            database_url,
            rows,
            days,
        } => {
            crate::bench::analytics::run(&database_url, rows, days).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchBaseline { bind } => {
            crate::bench::baseline::run(&bind).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchPush {
            origin,
            other,
            password,
            trials,
        } => {
            crate::bench::push::run(&origin, &other, &password, trials).await?;
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
