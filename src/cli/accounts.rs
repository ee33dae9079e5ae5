//! `warden user ...` and `warden client create`: accounts managed from the shell, on the server's database.
//! Passwords are read from standard input or a prompt, never from the command line.

use std::{io::BufRead, process::ExitCode};

use anyhow::Context;
use clap::Subcommand;

use crate::{
    auth::{Auth, AuthParts, Settings, UserChange},
    clock::SharedClock,
    config::Config,
    ids::Actor,
    store::Db,
};

#[derive(Subcommand)]
pub(super) enum UserCommand {
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

/// `warden client create`: prints the new client's id and secret, once.
pub(super) async fn create_client(
    config: &Config,
    clock: SharedClock,
    name: &str,
    role: &str,
) -> anyhow::Result<ExitCode> {
    let auth = open_auth(config, clock).await?;
    let client = auth.create_client(name, role).await?;
    println!("client_id: {}", client.client_id);
    println!("client_secret: {}", client.client_secret);
    println!("(the secret is shown once; store it now)");
    Ok(ExitCode::SUCCESS)
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
        shared_limits: None,
        settings: Settings::from_config(config),
        audit,
        // A command exits at once, before a message could be sent: running servers find its changes by polling.
        bus: crate::cluster::Bus::none(),
    })
    .await
}

pub(super) async fn user(
    cmd: UserCommand,
    config: Config,
    clock: SharedClock,
) -> anyhow::Result<ExitCode> {
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
