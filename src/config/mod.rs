//! Every setting, read once from the environment (and `.env`), validated, with secrets redacted.
//!
//! Layout: this file holds `Config` and its loading; `parse.rs` the value parsers, `findings.rs` what production
//! refuses, `sms.rs` the SMS and Telesign settings, `connections.rs` the database connection profile settings.
//!
//! `Config::from_lookup` takes a lookup function so tests build configs without touching the process
//! environment. `Config::findings` lists what production would refuse; `serve` refuses on any of them when
//! `ENVIRONMENT=production`, and `warden doctor` prints them. A `JWT_SECRET_KEY` that is set is checked at
//! load in every environment (a weak key would let anyone mint tokens); only an unset one is a finding.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use secrecy::SecretString;

mod connections;
mod findings;
mod parse;
mod sms;

pub use connections::{AllowedHost, ConnectionsConfig};
pub use findings::Finding;
use findings::strong_jwt_secret;
pub use parse::{IpNet, redact_url};
use parse::{bounded, list, number, parse_bool};
pub use sms::{SmsConfig, SmsProviderKind, TelesignConfig};

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant. Use the tools you are given when they help; \
answer plainly and say when you do not know.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// An external issuer whose tokens map to local users (access tokens only).
#[derive(Clone)]
pub struct JwksIssuer {
    pub url: String,
    pub issuer: String,
    pub audience: Option<String>,
}

/// The validated settings. Secrets are `SecretString` and the `Debug` output hides them.
#[derive(Clone)]
pub struct Config {
    pub environment: Environment,
    pub bind: SocketAddr,
    /// `METRICS_BIND`: when set, `/metrics` is served there without authentication and not on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// `None` means the embedded SQLite file under `data_dir`.
    pub database_url: Option<String>,
    pub jwt_secret: Option<SecretString>,
    /// Lifetime of a login session (refresh tokens and the browser cookie), hours.
    pub session_hours: u64,
    /// Lifetime of a bearer access token, minutes.
    pub access_token_minutes: u64,
    /// A cookie session or refresh family unused this long ends, minutes.
    pub session_idle_minutes: u64,
    /// `None`: Secure follows the environment (on in production).
    pub cookie_secure: Option<bool>,
    pub cookie_samesite: SameSite,
    pub admin_password: Option<SecretString>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    /// `iss` and `aud` of this server's own tokens.
    pub public_url: String,
    pub django_secret_key: Option<SecretString>,
    pub jwks_issuer: Option<JwksIssuer>,
    pub login_max_failures: u32,
    pub login_lock: Duration,
    pub login_ip_per_minute: u32,
    pub password_hash_concurrency: usize,
    pub max_body_bytes: usize,
    pub max_header_bytes: usize,
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers (and a kept-alive connection may sit idle) before the
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// Open connections one client address may hold; more are closed at once. Trusted proxies are exempt.
    pub max_connections_per_ip: usize,
    /// Request logs and page views (`src/analytics`): on by default.
    pub analytics_enabled: bool,
    /// Capacity of the request-log queue; a full queue drops rows (and counts them).
    pub analytics_queue: usize,
    pub analytics_request_log_days: i64,
    pub analytics_page_view_days: i64,
    /// Days system samples are kept (`ANALYTICS_METRICS_DAYS`, 7).
    pub analytics_metrics_days: i64,
    /// Raw request rows kept per second at most (`ANALYTICS_ROWS_PER_SECOND`, 1000); rollups count every request.
    pub analytics_rows_per_second: u32,
    // Settings of later features, read and validated here so one place documents them all.
    pub enable_tool_logging: bool,
    /// Size at which a tool-call log file is rotated to `NAME.1`.
    pub tool_log_max_bytes: u64,
    pub log_dir: PathBuf,
    pub mcp_server_url: Option<String>,
    pub mcp_servers_file: Option<PathBuf>,
    pub redis_url: Option<String>,
    /// What every Redis key and channel of this deployment starts with (`REDIS_PREFIX`, `warden`): instances
    /// that share one must agree; deployments (and tests) sharing one Redis keep apart by it.
    pub redis_prefix: String,
    /// How often other instances' changes are read from the database's watermarks (`SYNC_INTERVAL_MS`, 1000):
    /// the safety net under the push between instances.
    pub sync_interval: Duration,
    pub openai_api_key: Option<SecretString>,
    pub groq_api_key: Option<SecretString>,
    pub llm_api_url: Option<String>,
    pub llm_model: Option<String>,
    pub llm_provider: Option<String>,
    pub anthropic_api_key: Option<SecretString>,
    /// The agent's system prompt (the server's; clients cannot set it).
    pub agent_system_prompt: String,
    pub agent_max_steps: usize,
    pub agent_deadline: Duration,
    pub llm_timeout: Duration,
    pub llm_max_retries: u32,
    /// Messages of history sent to the model per turn.
    pub chat_history_window: usize,
    /// Tokens per user per UTC day; 0 is no limit.
    pub chat_daily_token_quota: i64,
    /// SMS, Telesign and second factors (`sms.rs`).
    pub sms: SmsConfig,
    /// Database connection profiles: query limits, allowed internal hosts, the SQLite folder (`connections.rs`).
    pub connections: ConnectionsConfig,
    /// `WARDEN_ENCRYPTION_KEY`: seals secrets at rest (`crate::seal`); unset in development, a generated key is
    /// kept in the data dir. Checked at load in every environment.
    pub encryption_key: Option<crate::seal::SealKey>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &Option<SecretString>| if s.is_some() { "<redacted>" } else { "<unset>" };
        f.debug_struct("Config")
            .field("environment", &self.environment)
            .field("bind", &self.bind)
            .field("metrics_bind", &self.metrics_bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("session_hours", &self.session_hours)
            .field("access_token_minutes", &self.access_token_minutes)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_samesite", &self.cookie_samesite)
            .field("admin_password", &redact(&self.admin_password))
            .field("public_url", &self.public_url)
            .field("django_secret_key", &redact(&self.django_secret_key))
            .field("encryption_key", &self.encryption_key)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Reads `.env` (if present) into the process environment, then the environment.
    pub fn from_env() -> anyhow::Result<Config> {
        // Only ./.env: dotenvy's default would also pick up a .env from any parent folder.
        if std::path::Path::new(".env").is_file() {
            dotenvy::from_path(".env").context("reading .env")?;
        }
        Config::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Config> {
        let get = |key: &str| {
            get(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let secret = |key: &str| get(key).map(SecretString::from);
        let environment = match get("ENVIRONMENT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("development") | Some("dev") | Some("local") | Some("test") => {
                Environment::Development
            }
            Some("production") | Some("prod") => Environment::Production,
            Some(other) => bail!("ENVIRONMENT must be development or production, not {other:?}"),
        };
        let bind: SocketAddr = get("WARDEN_BIND")
            .unwrap_or_else(|| "127.0.0.1:8000".into())
            .parse()
            .context("WARDEN_BIND must be an address like 127.0.0.1:8000")?;
        let metrics_bind: Option<SocketAddr> =
            get("METRICS_BIND")
                .map(|v| v.parse())
                .transpose()
                .context("METRICS_BIND must be an address like 127.0.0.1:9100")?;
        let cookie_samesite = match get("COOKIE_SAMESITE")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("lax") => SameSite::Lax,
            Some("strict") => SameSite::Strict,
            Some("none") => SameSite::None,
            Some(other) => bail!("COOKIE_SAMESITE must be lax, strict or none, not {other:?}"),
        };
        let log_format = match get("LOG_FORMAT").map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("pretty") | Some("text") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("LOG_FORMAT must be json or pretty, not {other:?}"),
        };
        if let Some(p) = get("LLM_PROVIDER")
            && ![
                "builtin",
                "openai",
                "groq",
                "ollama",
                "vllm",
                "litellm",
                "openai-compatible",
                "anthropic",
            ]
            .contains(&p.to_ascii_lowercase().as_str())
        {
            bail!(
                "LLM_PROVIDER must be builtin, openai, groq, ollama, vllm, litellm, openai-compatible or anthropic, not {p:?}"
            );
        }
        let trusted_proxies = list(get("TRUSTED_PROXIES"))
            .iter()
            .map(|s| IpNet::parse(s))
            .collect::<Result<_, _>>()?;
        let jwks_issuer = match (get("EXTERNAL_JWKS_URL"), get("EXTERNAL_JWKS_ISSUER")) {
            (Some(url), Some(issuer)) => Some(JwksIssuer {
                url,
                issuer,
                audience: get("EXTERNAL_JWKS_AUDIENCE"),
            }),
            (None, None) => None,
            _ => bail!("EXTERNAL_JWKS_URL and EXTERNAL_JWKS_ISSUER go together"),
        };
        let log_level = get("LOG_LEVEL")
            .unwrap_or_else(|| "info".into())
            .to_ascii_lowercase();
        if !["trace", "debug", "info", "warn", "error"].contains(&log_level.as_str()) {
            bail!("LOG_LEVEL must be trace, debug, info, warn or error, not {log_level:?}");
        }
        let cors_origins = list(get("CORS_ORIGINS"));
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| !(o.starts_with("http://") || o.starts_with("https://")) || o.ends_with('/'))
        {
            bail!(
                "CORS_ORIGINS entries must be origins like https://app.example.com (no path), not {bad:?}"
            );
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(Config {
            environment,
            bind,
            metrics_bind,
            data_dir: get("WARDEN_DATA_DIR")
                .unwrap_or_else(|| "./data".into())
                .into(),
            database_url: get("DATABASE_URL"),
            jwt_secret: secret("JWT_SECRET_KEY")
                .map(|s| strong_jwt_secret(s).map_err(|e| anyhow::anyhow!("JWT_SECRET_KEY {e}")))
                .transpose()?,
            session_hours: bounded(&get, "JWT_EXPIRY_HOURS", 24, 1, 24 * 365)?,
            access_token_minutes: bounded(&get, "ACCESS_TOKEN_EXPIRE_MINUTES", 15, 1, 24 * 60)?,
            session_idle_minutes: bounded(&get, "SESSION_IDLE_MINUTES", 30, 1, 24 * 60 * 365)?,
            cookie_secure: get("COOKIE_SECURE")
                .map(|v| parse_bool("COOKIE_SECURE", &v))
                .transpose()?,
            cookie_samesite,
            admin_password: secret("ADMIN_PASSWORD"),
            log_level,
            log_format,
            trusted_proxies,
            cors_origins,
            public_url: public_url(get("WARDEN_PUBLIC_URL"), &bind)?,
            django_secret_key: secret("DJANGO_SECRET_KEY"),
            jwks_issuer,
            login_max_failures: bounded(&get, "LOGIN_MAX_FAILURES", 5, 1, 100)?,
            login_lock: Duration::from_secs(bounded(&get, "LOGIN_LOCK_SECONDS", 300, 1, 86_400)?),
            login_ip_per_minute: bounded(&get, "LOGIN_IP_PER_MINUTE", 30, 1, u32::MAX)?,
            password_hash_concurrency: number(
                &get,
                "PASSWORD_HASH_CONCURRENCY",
                (cores / 2).max(1),
            )?
            .max(1),
            max_body_bytes: number(&get, "MAX_BODY_BYTES", 1024 * 1024)?,
            max_header_bytes: number(&get, "MAX_HEADER_BYTES", 16 * 1024)?,
            request_timeout: Duration::from_secs(number(&get, "REQUEST_TIMEOUT_SECONDS", 30)?),
            header_read_timeout: Duration::from_secs(bounded(
                &get,
                "HEADER_READ_TIMEOUT_SECONDS",
                10,
                1,
                300,
            )?),
            max_connections_per_ip: bounded(&get, "MAX_CONNECTIONS_PER_IP", 256, 1, 1_000_000)?,
            analytics_enabled: get("ANALYTICS_ENABLED")
                .map(|v| parse_bool("ANALYTICS_ENABLED", &v))
                .transpose()?
                .unwrap_or(true),
            analytics_queue: bounded(&get, "ANALYTICS_QUEUE", 8192, 1, 1_000_000)?,
            analytics_request_log_days: bounded(&get, "ANALYTICS_REQUEST_LOG_DAYS", 30, 1, 3650)?,
            analytics_page_view_days: bounded(&get, "ANALYTICS_PAGE_VIEW_DAYS", 90, 1, 3650)?,
            analytics_metrics_days: bounded(&get, "ANALYTICS_METRICS_DAYS", 7, 1, 3650)?,
            analytics_rows_per_second: bounded(
                &get,
                "ANALYTICS_ROWS_PER_SECOND",
                1000,
                1,
                1_000_000,
            )?,
            enable_tool_logging: get("ENABLE_TOOL_LOGGING")
                .map(|v| parse_bool("ENABLE_TOOL_LOGGING", &v))
                .transpose()?
                .unwrap_or(true),
            tool_log_max_bytes: bounded(
                &get,
                "TOOL_LOG_MAX_BYTES",
                10 * 1024 * 1024,
                1024,
                u64::MAX,
            )?,
            log_dir: get("WARDEN_LOG_DIR")
                .unwrap_or_else(|| "./logs".into())
                .into(),
            mcp_server_url: get("MCP_SERVER_URL"),
            mcp_servers_file: get("MCP_SERVERS_FILE").map(PathBuf::from),
            redis_url: get("REDIS_URL"),
            redis_prefix: redis_prefix(get("REDIS_PREFIX"))?,
            sync_interval: Duration::from_millis(bounded(
                &get,
                "SYNC_INTERVAL_MS",
                1000,
                50,
                600_000,
            )?),
            openai_api_key: secret("OPENAI_API_KEY"),
            groq_api_key: secret("GROQ_API_KEY"),
            llm_api_url: get("LLM_API_URL"),
            llm_model: get("LLM_MODEL"),
            llm_provider: get("LLM_PROVIDER").map(|p| p.to_ascii_lowercase()),
            anthropic_api_key: secret("ANTHROPIC_API_KEY"),
            agent_system_prompt: get("AGENT_SYSTEM_PROMPT")
                .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
            agent_max_steps: bounded(&get, "AGENT_MAX_STEPS", 8, 1, 64)?,
            agent_deadline: Duration::from_secs(bounded(
                &get,
                "AGENT_DEADLINE_SECONDS",
                120,
                1,
                3600,
            )?),
            llm_timeout: Duration::from_secs(bounded(&get, "LLM_TIMEOUT_SECONDS", 60, 1, 600)?),
            llm_max_retries: bounded(&get, "LLM_MAX_RETRIES", 2, 0, 10)?,
            chat_history_window: bounded(&get, "CHAT_HISTORY_WINDOW", 40, 1, 10_000)?,
            chat_daily_token_quota: bounded(&get, "CHAT_DAILY_TOKEN_QUOTA", 0, 0, i64::MAX)?,
            sms: SmsConfig::from_lookup(&get, environment)?,
            connections: ConnectionsConfig::from_lookup(&get)?,
            encryption_key: get("WARDEN_ENCRYPTION_KEY")
                .map(|k| {
                    crate::seal::SealKey::parse(&k)
                        .map_err(|e| anyhow::anyhow!("WARDEN_ENCRYPTION_KEY {e}"))
                })
                .transpose()?,
        })
    }

    pub fn is_production(&self) -> bool {
        self.environment == Environment::Production
    }

    /// Secure cookies: on in production unless turned off (which production then refuses); SameSite=None forces it.
    pub fn cookie_secure(&self) -> bool {
        self.cookie_secure.unwrap_or(self.is_production()) || self.cookie_samesite == SameSite::None
    }

    /// The cookie carrying the browser session: `__Host-` prefixed whenever it is Secure.
    pub fn session_cookie_name(&self) -> &'static str {
        if self.cookie_secure() {
            "__Host-auth_token"
        } else {
            "auth_token"
        }
    }

    /// The SQLite file used when no DATABASE_URL is set.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("warden.db").display()
            ),
        }
    }
}

/// `WARDEN_PUBLIC_URL` (default `http://{bind}`) without its trailing `/`. It goes into response headers (the
/// `/mcp` challenge) and metadata, so it must be an absolute http(s) URL of printable ASCII with a host.
fn public_url(value: Option<String>, bind: &SocketAddr) -> anyhow::Result<String> {
    let url = value
        .unwrap_or_else(|| format!("http://{bind}"))
        .trim_end_matches('/')
        .to_string();
    let host = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let printable_ascii = url.bytes().all(|b| b.is_ascii_graphic());
    match host {
        Some(rest) if printable_ascii && !rest.is_empty() && !rest.starts_with('/') => Ok(url),
        _ => bail!(
            "WARDEN_PUBLIC_URL must be an absolute http:// or https:// URL of ASCII characters \
             (e.g. https://warden.example.com), not {url:?}"
        ),
    }
}

/// `REDIS_PREFIX`: letters, digits, `_`, `-`, `.` and `:`, at most 64 (it is spliced into key names).
fn redis_prefix(value: Option<String>) -> anyhow::Result<String> {
    let prefix = value.unwrap_or_else(|| "warden".into());
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(allowed) {
        anyhow::bail!("REDIS_PREFIX must be 1 to 64 letters, digits or _ - . :");
    }
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn development_needs_no_settings() {
        let c = config(&[]).unwrap();
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert!(!c.cookie_secure());
        assert_eq!(c.session_cookie_name(), "auth_token");
    }

    #[test]
    fn production_secure_cookies_use_the_host_prefix() {
        let c = config(&[("ENVIRONMENT", "production")]).unwrap();
        assert!(c.cookie_secure());
        assert_eq!(c.session_cookie_name(), "__Host-auth_token");
    }

    #[test]
    fn the_public_url_must_be_an_absolute_ascii_http_url() {
        for bad in [
            "https://wärden.example",
            "warden.example.com",
            "ftp://warden.example.com",
            "https://",
            "https:///path",
            "https://warden example",
            "https://warden.example/\u{7f}",
        ] {
            let e = config(&[("WARDEN_PUBLIC_URL", bad)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("WARDEN_PUBLIC_URL"), "{bad:?}: {e}");
        }
        let c = config(&[("WARDEN_PUBLIC_URL", "https://warden.example.com:8443/base/")]).unwrap();
        assert_eq!(c.public_url, "https://warden.example.com:8443/base");
        assert_eq!(config(&[]).unwrap().public_url, "http://127.0.0.1:8000");
    }

    #[test]
    fn samesite_none_forces_secure() {
        let c = config(&[("COOKIE_SAMESITE", "none"), ("COOKIE_SECURE", "false")]).unwrap();
        assert!(c.cookie_secure());
    }

    #[test]
    fn findings_name_each_variable() {
        let c = config(&[
            ("ENVIRONMENT", "production"),
            ("COOKIE_SECURE", "false"),
            ("ADMIN_PASSWORD", "admin"),
        ])
        .unwrap();
        let vars: Vec<_> = c.findings().iter().map(|f| f.variable).collect();
        assert!(vars.contains(&"JWT_SECRET_KEY"));
        assert!(vars.contains(&"COOKIE_SECURE"));
        assert!(vars.contains(&"ADMIN_PASSWORD"));
    }

    #[test]
    fn an_explicit_jwt_secret_must_be_strong_in_development_too() {
        for (key, words) in [
            ("secret", "is 6 bytes long"),
            ("0123456789abcdef0123456789abcde", "is 31 bytes long"),
            ("your-secret-key-change-in-production", "known default"),
        ] {
            for environment in ["development", "production"] {
                let err = config(&[("ENVIRONMENT", environment), ("JWT_SECRET_KEY", key)])
                    .expect_err("a weak key is refused");
                let err = format!("{err:#}");
                assert!(
                    err.starts_with("JWT_SECRET_KEY ") && err.contains(words),
                    "{err}"
                );
                assert!(!err.contains(key), "the key itself is not echoed: {err}");
            }
        }
        let strong = config(&[("JWT_SECRET_KEY", "0123456789abcdef0123456789abcdef")]).unwrap();
        assert!(strong.jwt_secret.is_some());
        assert!(config(&[]).unwrap().jwt_secret.is_none());
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        assert!(config(&[("COOKIE_SAMESITE", "sometimes")]).is_err());
        assert!(config(&[("JWT_EXPIRY_HOURS", "ten")]).is_err());
        assert!(config(&[("TRUSTED_PROXIES", "10.0.0.0/99")]).is_err());
        assert!(config(&[("LOG_LEVEL", "verbose")]).is_err());
        assert!(config(&[("LOGIN_IP_PER_MINUTE", "0")]).is_err());
        assert!(config(&[("JWT_EXPIRY_HOURS", "99999999999")]).is_err());
        assert!(config(&[("CORS_ORIGINS", "app.example.com")]).is_err());
        assert!(config(&[("HEADER_READ_TIMEOUT_SECONDS", "0")]).is_err());
        assert!(config(&[("MAX_CONNECTIONS_PER_IP", "0")]).is_err());
        assert_eq!(
            config(&[("LOG_FORMAT", "JSON")]).unwrap().log_format,
            LogFormat::Json
        );
    }

    #[test]
    fn trusted_proxy_networks_match_addresses() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(
            IpNet::parse("127.0.0.1")
                .unwrap()
                .contains("::ffff:127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn database_urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:pw@h/db"),
            "postgres://u:<redacted>@h/db"
        );
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
