//! The stored form of a server added at run time: its transport as JSON with each env and header value sealed
//! (`crate::seal`) for `mcp_servers`/<name>/`env.<NAME>` or `headers.<NAME>`, and `"sealed": "v1"` marking
//! the row sealed. Command, args and url stay readable. Rows written before sealing (no marker) are read as
//! clear and sealed at start (`check_and_seal`, run by `app::build` before any value is read).

use serde_json::{Map, Value};

use super::{config::Transport, store};
use crate::{
    seal::{Binding, OpenError, SealKey},
    store::Db,
};

const TABLE: &str = "mcp_servers";
const MARKER: &str = "sealed";
const SEALED_FIELDS: [&str; 2] = ["env", "headers"];

/// Why a stored config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("stored config is not a transport: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// The stored text of `transport` for server `name`, its env and header values sealed under `key`.
pub fn seal_transport(key: &SealKey, name: &str, transport: &Transport) -> String {
    let mut value = serde_json::to_value(transport).expect("a transport serialises");
    let object = value.as_object_mut().expect("a transport is an object");
    for field in SEALED_FIELDS {
        if let Some(Value::Object(map)) = object.get_mut(field) {
            for (k, v) in map.iter_mut() {
                if let Value::String(plain) = v {
                    let at = format!("{field}.{k}");
                    *v = Value::String(key.seal(binding(name, &at), plain));
                }
            }
        }
    }
    object.insert(MARKER.into(), Value::String("v1".into()));
    value.to_string()
}

/// Whether a stored text is in the sealed form (else it predates sealing).
pub fn is_sealed(text: &str) -> bool {
    serde_json::from_str::<Map<String, Value>>(text).is_ok_and(|o| o.contains_key(MARKER))
}

/// The transport of a stored text (sealed or clear); a sealed value that does not open under `key` is an error.
pub fn open_transport(key: &SealKey, name: &str, text: &str) -> Result<Transport, StoredError> {
    let mut object: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| StoredError::Unreadable(e.to_string()))?;
    if object.remove(MARKER).is_some() {
        for field in SEALED_FIELDS {
            if let Some(Value::Object(map)) = object.get_mut(field) {
                for (k, v) in map.iter_mut() {
                    if let Value::String(sealed) = v {
                        let at = format!("{field}.{k}");
                        *v = Value::String(key.open(binding(name, &at), sealed)?);
                    }
                }
            }
        }
    }
    serde_json::from_value(Value::Object(object))
        .map_err(|e| StoredError::Unreadable(e.to_string()))
}

/// The number of sealed values a transport has (env or header entries).
fn sealed_values(transport: &Transport) -> usize {
    match transport {
        Transport::Stdio { env, .. } => env.len(),
        Transport::Http { headers, .. } => headers.len(),
    }
}

fn binding<'a>(name: &'a str, field: &'a str) -> Binding<'a> {
    Binding {
        table: TABLE,
        row: name,
        field,
    }
}

/// Why the stored servers' secrets could not be checked, sealed or re-sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// A sealed value of this server does not open: sealed under another key (at start: the configured key is
    /// wrong), or altered.
    #[error("the secrets of MCP server {server:?} do not open: {source}")]
    WrongKey { server: String, source: OpenError },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// At start: checks that `key` opens the sealed rows (refusing, before any write, if one was sealed under
/// another key), then seals the rows still in clear in one transaction. Returns how many rows it sealed. A
/// row that is damaged (not a transport, or altered) is left as it is; reading it at start logs and skips it.
pub async fn check_and_seal(db: &Db, key: &SealKey) -> Result<usize, SealingError> {
    let mut tx = db.writer().begin().await?;
    let rows = store::find_servers_in(&mut tx).await?;
    let mut clear = Vec::new();
    for (name, text) in rows {
        if is_sealed(&text) {
            match open_transport(key, &name, &text) {
                Err(StoredError::Open(e @ OpenError::WrongKey { .. })) => {
                    return Err(SealingError::WrongKey {
                        server: name,
                        source: e,
                    });
                }
                _ => continue,
            }
        }
        if let Ok(transport) = open_transport(key, &name, &text) {
            clear.push((name, text, transport));
        }
    }
    let mut sealed = 0;
    for (name, text, transport) in clear {
        let new = seal_transport(key, &name, &transport);
        if store::update_config(&mut tx, &name, &text, &new).await? {
            sealed += 1;
        }
    }
    tx.commit().await?;
    Ok(sealed)
}

/// Re-seals every sealed value of the stored servers from `old` to `new` inside `tx`; returns how many values
/// it re-sealed. Any value `old` does not open stops it (the caller rolls back).
pub async fn reseal(
    tx: &mut sqlx::AnyConnection,
    old: &SealKey,
    new: &SealKey,
) -> Result<usize, SealingError> {
    let mut count = 0;
    for (name, text) in store::find_servers_in(tx).await? {
        let transport = match open_transport(old, &name, &text) {
            Ok(t) => t,
            Err(StoredError::Open(source)) => {
                return Err(SealingError::WrongKey {
                    server: name,
                    source,
                });
            }
            // Not a transport: nothing of it can be used or re-sealed; left as it is.
            Err(StoredError::Unreadable(_)) => continue,
        };
        let sealed = seal_transport(new, &name, &transport);
        if store::update_config(tx, &name, &text, &sealed).await? {
            count += sealed_values(&transport);
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn http() -> Transport {
        Transport::Http {
            url: "http://127.0.0.1:9/mcp".into(),
            headers: HashMap::from([("Authorization".into(), "Bearer s3cr3t".into())]),
        }
    }

    #[test]
    fn a_sealed_transport_hides_its_values_and_opens_to_the_original() {
        let key = SealKey::generate();
        let text = seal_transport(&key, "web", &http());
        assert!(is_sealed(&text) && !text.contains("s3cr3t") && text.contains("127.0.0.1:9"));
        let Transport::Http { headers, .. } = open_transport(&key, "web", &text).unwrap() else {
            panic!("an http transport")
        };
        assert_eq!(headers["Authorization"], "Bearer s3cr3t");
        // Another row's name does not open it.
        assert!(matches!(
            open_transport(&key, "other", &text),
            Err(StoredError::Open(OpenError::Tampered))
        ));
    }

    #[test]
    fn a_clear_row_reads_as_it_was() {
        let key = SealKey::generate();
        let text = serde_json::to_string(&http()).unwrap();
        assert!(!is_sealed(&text));
        assert!(open_transport(&key, "web", &text).is_ok());
    }
}
