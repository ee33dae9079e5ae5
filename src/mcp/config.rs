//! Which upstream servers to run: MCP_SERVERS_FILE (the `mcpServers` form desktop clients use), MCP_SERVER_URL,
//! and the names they may have.

use std::collections::HashMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::tools::SERVER_SEPARATOR as SEPARATOR;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Transport {
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
        #[serde(default)]
        env: HashMap<String, String>,
    },
    Http {
        url: String,
        #[serde(default)]
        headers: HashMap<String, String>,
    },
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub name: String,
    pub transport: Transport,
}

#[derive(Deserialize)]
struct ServersFile {
    #[serde(rename = "mcpServers")]
    mcp_servers: HashMap<String, Transport>,
}

/// The servers MCP_SERVERS_FILE and MCP_SERVER_URL name. Names are letters, digits, `-` and `_`.
pub fn load(
    file: Option<&std::path::Path>,
    url: Option<&str>,
) -> anyhow::Result<Vec<ServerConfig>> {
    let mut servers = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading MCP_SERVERS_FILE {}", path.display()))?;
        let parsed: ServersFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "MCP_SERVERS_FILE {} is not an mcpServers file",
                path.display()
            )
        })?;
        let mut names: Vec<_> = parsed.mcp_servers.into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, transport) in names {
            servers.push(ServerConfig { name, transport });
        }
    }
    if let Some(url) = url {
        servers.push(ServerConfig {
            name: "mcp".into(),
            transport: Transport::Http {
                url: url.into(),
                headers: HashMap::new(),
            },
        });
    }
    for s in &servers {
        validate_name(&s.name).map_err(anyhow::Error::msg)?;
    }
    Ok(servers)
}

/// Server names become tool-name prefixes: letters, digits, `-` and single `_`, at most 64.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.contains(SEPARATOR);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "MCP server name {name:?} must be letters, digits, '-' or single '_'"
        ))
    }
}
