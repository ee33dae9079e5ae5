//! Database connection profile settings (`src/connections`): the read-only query limits, the hosts a profile
//! may reach besides public addresses, and the one folder SQLite profiles may open files in.

use std::{path::PathBuf, time::Duration};

use anyhow::bail;

use super::{
    IpNet,
    parse::{bounded, list},
};

/// One entry of `CONNECTION_ALLOWED_HOSTS`: a host name (matched against the host as the user gave it) or an
/// address or network (matched against every address the host resolves to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowedHost {
    Name(String),
    Net(IpNet),
}

#[derive(Clone, Debug)]
pub struct ConnectionsConfig {
    /// The longest one statement may run (`CONNECTION_STATEMENT_TIMEOUT_MS`).
    pub statement_timeout: Duration,
    /// Rows a query answers at most (`CONNECTION_MAX_ROWS`); more are cut and the reply says so.
    pub max_rows: usize,
    /// The longest a connection may take to open.
    pub connect_timeout: Duration,
    /// Hosts allowed although they resolve to loopback, private or other internal addresses.
    pub allowed_hosts: Vec<AllowedHost>,
    /// The folder SQLite profiles must point into (`CONNECTION_SQLITE_DIR`); unset refuses SQLite profiles.
    pub sqlite_dir: Option<PathBuf>,
}

impl ConnectionsConfig {
    pub(super) fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ConnectionsConfig> {
        let allowed_hosts = list(get("CONNECTION_ALLOWED_HOSTS"))
            .into_iter()
            .map(|entry| parse_allowed(&entry))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(ConnectionsConfig {
            statement_timeout: Duration::from_millis(bounded(
                get,
                "CONNECTION_STATEMENT_TIMEOUT_MS",
                5000,
                100,
                600_000,
            )?),
            max_rows: bounded(get, "CONNECTION_MAX_ROWS", 1000, 1, 100_000)?,
            connect_timeout: Duration::from_secs(5),
            allowed_hosts,
            sqlite_dir: get("CONNECTION_SQLITE_DIR").map(PathBuf::from),
        })
    }
}

fn parse_allowed(entry: &str) -> anyhow::Result<AllowedHost> {
    if let Ok(net) = IpNet::parse(entry) {
        return Ok(AllowedHost::Net(net));
    }
    let name = entry.trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && !name.contains('/')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid {
        bail!(
            "CONNECTION_ALLOWED_HOSTS lists host names, IP addresses or networks (10.0.0.0/8), not {entry:?}"
        );
    }
    Ok(AllowedHost::Name(name))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> anyhow::Result<ConnectionsConfig> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        ConnectionsConfig::from_lookup(&|k: &str| map.get(k).map(|v| v.to_string()))
    }

    #[test]
    fn defaults_allow_no_internal_host_and_no_sqlite() {
        let c = config(&[]).unwrap();
        assert_eq!(c.statement_timeout, Duration::from_millis(5000));
        assert_eq!(c.max_rows, 1000);
        assert!(c.allowed_hosts.is_empty() && c.sqlite_dir.is_none());
    }

    #[test]
    fn allowed_hosts_are_names_addresses_or_networks() {
        let c = config(&[(
            "CONNECTION_ALLOWED_HOSTS",
            "DB.internal., 127.0.0.1, 10.0.0.0/8",
        )])
        .unwrap();
        assert_eq!(c.allowed_hosts[0], AllowedHost::Name("db.internal".into()));
        assert!(matches!(c.allowed_hosts[1], AllowedHost::Net(_)));
        assert!(matches!(c.allowed_hosts[2], AllowedHost::Net(_)));
        assert!(config(&[("CONNECTION_ALLOWED_HOSTS", "10.0.0.0/99")]).is_err());
        assert!(config(&[("CONNECTION_ALLOWED_HOSTS", "a b")]).is_err());
        assert!(config(&[("CONNECTION_MAX_ROWS", "0")]).is_err());
    }
}
