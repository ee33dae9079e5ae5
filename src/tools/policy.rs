//! The tool policy: per role and tool, `allow`, `ask` (a person approves each call in the chat) or `deny`.
//! Patterns are exact tool names or prefixes ending in `*`; the most specific match wins (exact, then the
//! longest prefix); no match is `allow`. The same decision governs the agent, `/mcp` and the REST execute
//! route; outside a chat, where nobody can be asked, `ask` refuses.
//!
//! An `ask` rule may also ask for a *step-up*: approving the call then needs a fresh second-factor code from the
//! approver, bound to that one approval (see `approval::StepUpBinding`). The flag means nothing on `allow` or
//! `deny`, and `Catalog::set_rule` refuses it there.
//!
//! Rules live in `tool_policies` (their SQL in `tools::store`) and in memory; every change goes through
//! `Catalog::set_rule` (validate, store, bump the `policy` version, refresh the copy, tell the other instances,
//! audit). Other instances reload when told (`cluster::Change::Policy`) and on every poll when the version moved
//! (`Catalog::sync_policy`), so a lost message only delays the change.

use std::collections::HashMap;

use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::RwLock;

use crate::{
    cluster::{
        Bus, Change,
        versions::{self, Versioned},
    },
    store::Db,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Ask,
    Deny,
}

impl Decision {
    pub fn parse(text: &str) -> Option<Decision> {
        match text {
            "allow" => Some(Decision::Allow),
            "ask" => Some(Decision::Ask),
            "deny" => Some(Decision::Deny),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Ask => "ask",
            Decision::Deny => "deny",
        }
    }
}

/// One rule's effect: the decision and, for `ask`, whether approving needs a step-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub decision: Decision,
    pub step_up: bool,
}

impl Rule {
    /// What applies when no rule matches.
    pub const ALLOW: Rule = Rule {
        decision: Decision::Allow,
        step_up: false,
    };

    /// A rule without a step-up.
    pub fn plain(decision: Decision) -> Rule {
        Rule {
            decision,
            step_up: false,
        }
    }
}

pub struct Policy {
    rules: RwLock<HashMap<String, Vec<(String, Rule)>>>,
    /// The `policy` version the rules in memory were read at.
    version: AtomicI64,
    bus: Bus,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: RwLock::default(),
            version: AtomicI64::new(0),
            bus: Bus::none(),
        }
    }
}

impl Policy {
    /// The stored rules; changes made here are published on `bus`.
    pub async fn load(db: &Db, bus: Bus) -> sqlx::Result<Policy> {
        let policy = Policy {
            bus,
            ..Policy::default()
        };
        policy.reload(db).await?;
        Ok(policy)
    }

    /// Reads the rules again when another instance changed them since the last read.
    async fn sync(&self, db: &Db) -> sqlx::Result<bool> {
        let version = versions::find(db, Versioned::Policy).await?;
        if version == self.version.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.reload(db).await?;
        Ok(true)
    }

    /// The version is read before the rules: a change that lands between the two is read again next time.
    async fn reload(&self, db: &Db) -> sqlx::Result<()> {
        let version = versions::find(db, Versioned::Policy).await?;
        let rows = super::store::find_policies(db).await?;
        let mut rules: HashMap<String, Vec<(String, Rule)>> = HashMap::new();
        for (role, pattern, decision, step_up) in rows {
            if let Some(decision) = Decision::parse(&decision) {
                let step_up = decision == Decision::Ask && step_up != 0;
                rules
                    .entry(role)
                    .or_default()
                    .push((pattern, Rule { decision, step_up }));
            }
        }
        *self.rules.write() = rules;
        self.version.store(version, Ordering::SeqCst);
        Ok(())
    }

    /// The decision for `tool` under `role`.
    pub fn decide(&self, role: &str, tool: &str) -> Decision {
        self.rule(role, tool).decision
    }

    /// The rule that governs `tool` under `role` (the most specific match, else `allow`).
    pub fn rule(&self, role: &str, tool: &str) -> Rule {
        let rules = self.rules.read();
        let Some(list) = rules.get(role) else {
            return Rule::ALLOW;
        };
        if let Some((_, d)) = list.iter().find(|(p, _)| p == tool) {
            return *d;
        }
        list.iter()
            .filter_map(|(p, d)| {
                p.strip_suffix('*')
                    .filter(|prefix| tool.starts_with(prefix))
                    .map(|prefix| (prefix.len(), *d))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, d)| d)
            .unwrap_or(Rule::ALLOW)
    }

    /// Sets (or, with `None`, removes) the rule for a role and pattern; `Catalog::set_rule` is the flow around it.
    pub async fn set(
        &self,
        db: &Db,
        role: &str,
        pattern: &str,
        rule: Option<Rule>,
        now: i64,
    ) -> sqlx::Result<()> {
        match rule {
            Some(r) => {
                super::store::upsert_policy(db, role, pattern, r.decision.as_str(), r.step_up, now)
                    .await?
            }
            None => super::store::delete_policy(db, role, pattern).await?,
        }
        versions::bump(db, Versioned::Policy).await?;
        self.reload(db).await?;
        self.bus.publish(Change::Policy);
        Ok(())
    }

    /// Every rule, for the admin page.
    pub fn all(&self) -> Vec<(String, String, Rule)> {
        let mut out: Vec<_> = self
            .rules
            .read()
            .iter()
            .flat_map(|(role, list)| list.iter().map(move |(p, d)| (role.clone(), p.clone(), *d)))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }
}

/// Why a rule was not set.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A role name or tool pattern: letters, digits, `_ - . :` and `*`, 1 to 128 characters.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-*.:".contains(c))
}

impl super::Catalog {
    /// Picks up rules changed by another instance (told by the bus, or found by the poll); true when it reloaded.
    pub async fn sync_policy(&self) -> sqlx::Result<bool> {
        self.policy.sync(&self.db).await
    }

    /// Sets (or, with `None`, removes) the rule for `role` and `pattern` on behalf of `actor`, and records
    /// `tool.policy`. `role_exists` comes from the caller, which knows the roles (this module does not know auth).
    /// A step-up is only valid on `ask`.
    pub async fn set_rule(
        &self,
        actor: &crate::ids::UserId,
        role: &str,
        pattern: &str,
        rule: Option<Rule>,
        role_exists: bool,
    ) -> Result<(), RuleError> {
        if !is_name(role) || !is_name(pattern) {
            return Err(RuleError::Invalid(
                "role and tool must be names (letters, digits, _ - . : and a trailing *)".into(),
            ));
        }
        if !role_exists {
            return Err(RuleError::Invalid(format!("unknown role {role:?}")));
        }
        if rule.is_some_and(|r| r.step_up && r.decision != Decision::Ask) {
            return Err(RuleError::Invalid(
                "step_up is only valid with the ask decision".into(),
            ));
        }
        self.policy
            .set(&self.db, role, pattern, rule, self.clock.now_ms())
            .await
            .map_err(|e| RuleError::Internal(e.into()))?;
        self.audit.record(
            crate::audit::Event::new("tool.policy", "ok")
                .actor(actor)
                .subject(format!("{role}:{pattern}"))
                .detail(serde_json::json!({
                    "decision": rule.map(|r| r.decision),
                    "step_up": rule.is_some_and(|r| r.step_up),
                })),
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_rule_wins_and_no_rule_allows() {
        let p = Policy::default();
        p.rules.write().insert(
            "user".into(),
            vec![
                ("*".into(), Rule::plain(Decision::Ask)),
                ("up__*".into(), Rule::plain(Decision::Deny)),
                ("up__read".into(), Rule::plain(Decision::Allow)),
                (
                    "up__pay".into(),
                    Rule {
                        decision: Decision::Ask,
                        step_up: true,
                    },
                ),
            ],
        );
        assert_eq!(p.decide("user", "add"), Decision::Ask);
        assert_eq!(p.decide("user", "up__write"), Decision::Deny);
        assert_eq!(p.decide("user", "up__read"), Decision::Allow);
        assert_eq!(p.decide("admin", "up__write"), Decision::Allow);
        assert!(p.rule("user", "up__pay").step_up);
        assert!(!p.rule("user", "add").step_up);
    }
}
