//! Every permission name the server checks, in one place.
//!
//! A role holds a list of permission patterns: an exact name, `*` for everything, or a prefix ending in `*`
//! (`tools:call:*`). Routes ask for the names below (`http::extract`'s markers use these constants); roles may
//! also hold names not listed here, for features to come.
//!
//! Tool permissions are `tools:call:<tool name>` ([`TOOL_CALL_PREFIX`]). The catalog builds them itself
//! (`tools::permission_for`), because `tools` must not import `auth`; a unit test in `http::users` checks that
//! the two agree.

/// Everything: the admin role holds it and keeps it.
pub const ALL: &str = "*";
/// Administer users, roles and their permissions.
pub const USERS_MANAGE: &str = "users:manage";
/// Read analytics.
pub const ANALYTICS_READ: &str = "analytics:read";
/// Chat with the agent and see the tool catalog.
pub const CHAT_USE: &str = "chat:use";
/// Add, remove and configure upstream MCP servers and tool policy.
pub const MCP_MANAGE: &str = "mcp:manage";
/// Send SMS and verification codes, and read one's own SMS transactions.
pub const SMS_SEND: &str = "sms:send";
/// Look numbers up (PhoneID) and assess their fraud risk.
pub const SMS_LOOKUP: &str = "sms:lookup";
/// Read every user's SMS transactions and the log's summary.
pub const SMS_READ_ALL: &str = "sms:read-all";
/// Keep database connection profiles of one's own and query them read-only (routes and agent tools).
pub const CONNECTIONS_USE: &str = "connections:use";
/// Read every user's tool calls, not only one's own.
pub const TOOL_CALLS_READ_ALL: &str = "tool-calls:read-all";
/// See tool-call arguments and results of other users' calls (an auditor's permission).
pub const TOOL_CALLS_READ_BODIES: &str = "tool-calls:read-bodies";
/// Scrape `GET /metrics`.
pub const METRICS_READ: &str = "metrics:read";
/// Read the audit trail (`GET /api/audit`).
pub const AUDIT_READ: &str = "audit:read";
/// Keep and run one's own saved tests (`/api/tests`); a run still needs the tool's own permission.
pub const TESTS_USE: &str = "tests:use";
/// Prefix of the permission to see and call one tool: `tools:call:<tool name>`.
pub const TOOL_CALL_PREFIX: &str = "tools:call:";
/// Call every tool.
pub const TOOLS_CALL_ALL: &str = "tools:call:*";

/// Permissions the server checks today, as `GET /api/permissions` lists them.
pub const KNOWN_PERMISSIONS: &[&str] = &[
    ALL,
    USERS_MANAGE,
    ANALYTICS_READ,
    CHAT_USE,
    TOOLS_CALL_ALL,
    MCP_MANAGE,
    SMS_SEND,
    SMS_LOOKUP,
    SMS_READ_ALL,
    CONNECTIONS_USE,
    TOOL_CALLS_READ_ALL,
    TOOL_CALLS_READ_BODIES,
    METRICS_READ,
    AUDIT_READ,
    TESTS_USE,
];

/// Whether a held pattern grants `wanted`: exact, `*` for everything, or a prefix ending in `*`.
pub fn permission_matches(pattern: &str, wanted: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => wanted.starts_with(prefix),
        None => pattern == wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_patterns() {
        assert!(permission_matches("*", "users:manage"));
        assert!(permission_matches(
            "tools:call:*",
            "tools:call:github__search"
        ));
        assert!(!permission_matches("tools:call:*", "tools:list"));
        assert!(permission_matches("chat:use", "chat:use"));
        assert!(!permission_matches("chat:use", "chat:use:extra"));
    }

    #[test]
    fn the_tool_wildcard_is_the_tool_prefix_plus_a_star() {
        assert_eq!(TOOLS_CALL_ALL, format!("{TOOL_CALL_PREFIX}*"));
        assert!(permission_matches(
            TOOLS_CALL_ALL,
            &format!("{TOOL_CALL_PREFIX}time")
        ));
    }

    #[test]
    fn known_permissions_are_listed_once() {
        let mut names = KNOWN_PERMISSIONS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN_PERMISSIONS.len());
        assert!(KNOWN_PERMISSIONS.contains(&TOOL_CALLS_READ_ALL));
    }

    #[test]
    fn the_tool_call_permissions_agree_with_the_catalogs_names() {
        // `tools` names them itself, because it must not import `auth`.
        assert_eq!(
            TOOL_CALLS_READ_ALL,
            crate::tools::calls::READ_ALL_TOOL_CALLS
        );
        assert_eq!(
            TOOL_CALLS_READ_BODIES,
            crate::tools::calls::READ_TOOL_CALL_BODIES
        );
    }
}
