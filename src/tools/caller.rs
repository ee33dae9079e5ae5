//! Who calls a tool, as far as the catalog needs to know: the user, the login session, the role (for the tool
//! policy) and the permission patterns (for `tools:call:<name>`). Built where the authenticated principal is
//! known (http handlers, chat, the `/mcp` adapter), so this module needs nothing from `auth`.

use crate::ids::{SessionId, UserId};

/// The narrow view of an authenticated caller that the catalog filters on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// The login session whose credential made the call: one session's calls can be traced and revoked together.
    pub session_id: SessionId,
    pub role: String,
    /// Permission patterns as the account holds them: exact, `*`, or a prefix ending in `*`.
    pub permissions: Vec<String>,
}

impl Caller {
    /// True when one of the caller's patterns grants `wanted`.
    pub fn has_permission(&self, wanted: &str) -> bool {
        // The same rule as `auth::permission_matches`; kept here so the catalog does not import auth.
        self.permissions.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => wanted.starts_with(prefix),
            None => p == wanted,
        })
    }

    /// True when the caller holds the permission for `tool` (`tools:call:<tool>`). The policy is checked apart.
    pub fn can_call(&self, tool: &str) -> bool {
        self.has_permission(&super::permission_for(tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(permissions: &[&str]) -> Caller {
        Caller {
            user_id: "u".into(),
            session_id: "s".into(),
            role: "user".into(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_caller_may_call_what_an_exact_or_prefix_pattern_grants() {
        assert!(caller(&["*"]).can_call("add"));
        assert!(caller(&["tools:call:*"]).can_call("up__read"));
        assert!(caller(&["tools:call:up__*"]).can_call("up__read"));
        assert!(caller(&["tools:call:add"]).can_call("add"));
        assert!(!caller(&["tools:call:add"]).can_call("add2"));
        assert!(!caller(&["tools:call:up__*"]).can_call("add"));
        assert!(!caller(&["chat:use"]).can_call("add"));
    }
}
