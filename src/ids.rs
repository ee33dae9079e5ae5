//! The ids the services pass between each other, as types: a user id cannot be handed where a session id is
//! wanted, and a chat conversation (the wire's `session_id`) cannot be mixed up with the login session.
//!
//! Invariants:
//! - Each id is a plain string underneath: it is stored, bound and serialised unchanged (`#[sqlx(transparent)]`,
//!   `#[serde(transparent)]`), so no table and no wire format changes.
//! - This module is at the bottom of the crate: it imports nothing from it, so every layer can name an id.

use std::fmt;

/// Declares a string newtype id with the accessors and conversions every id shares.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as stored and sent.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        // Same `Hash`/`Eq` as the inner string, so maps keyed by an id can be looked up with a `&str`.
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A user account (person or service client): `users.id`.
    UserId
);
string_id!(
    /// A login session: `sessions.id`, named by every credential (cookie, bearer, service token).
    SessionId
);
string_id!(
    /// A chat conversation. The wire calls it `session_id` (the seed clients do); inside the code it is a
    /// conversation, never to be confused with the login `SessionId`.
    ConversationId
);
string_id!(
    /// A pending or decided tool-call approval.
    ApprovalId
);

/// Who made a change, as the audit trail records it: a signed-in user or the operator at the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    User(UserId),
    /// The `warden` command line: whoever can run it on the host is trusted as the operator.
    Cli,
}

impl Actor {
    /// The `actor_id` written to the audit trail: the user's id, or `"cli"`.
    pub fn as_str(&self) -> &str {
        match self {
            Actor::User(id) => id.as_str(),
            Actor::Cli => "cli",
        }
    }

    /// True when the actor is the user `id` (a user may not demote, disable or delete themself).
    pub fn is_user(&self, id: &str) -> bool {
        matches!(self, Actor::User(me) if me == id)
    }
}

impl From<UserId> for Actor {
    fn from(id: UserId) -> Self {
        Actor::User(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_serde_as_plain_strings() {
        let id = ConversationId::from("0193-abc");
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(json, serde_json::json!("0193-abc"));
        let back: ConversationId = serde_json::from_value(json).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.as_str(), "0193-abc");
        assert_eq!(back.to_string(), "0193-abc");
    }

    #[test]
    fn an_id_inside_a_struct_serialises_as_its_text() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Row {
            user_id: UserId,
            session_id: SessionId,
        }
        let row = Row {
            user_id: "u1".into(),
            session_id: "s1".into(),
        };
        let json = serde_json::to_string(&row).unwrap();
        assert_eq!(json, r#"{"user_id":"u1","session_id":"s1"}"#);
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), row);
    }

    #[test]
    fn the_cli_actor_is_recorded_as_cli_and_is_no_user() {
        assert_eq!(Actor::Cli.as_str(), "cli");
        assert!(!Actor::Cli.is_user("cli"));
        let me = Actor::User(UserId::from("u1"));
        assert_eq!(me.as_str(), "u1");
        assert!(me.is_user("u1"));
        assert!(!me.is_user("u2"));
    }
}
