//! Accounts and roles: people and service clients, their passwords, roles and role permissions, links to
//! external identities, and the first admin.
//!
//! Invariants:
//! - Usernames are unique by canonical form and by confusable skeleton; the database enforces it and a
//!   clash of either answers the same `AlreadyExists`, so neither can be told apart.
//! - Every change that alters what an account may do ends its sessions (role change, disabling, password
//!   change, deletion) and drops it from the cache, so the hot path sees the change at once.
//! - The admin role keeps `*`; nobody changes their own role, disables or deletes themselves.

use serde_json::json;

use super::{
    ADMIN_ROLE, AccountKind, Auth, AuthError, Client, Principal,
    error::StoreContext,
    password::{self, Password, Verdict},
    permissions, random_token, store,
    username::{self, Username},
};
use crate::{
    audit::Event,
    ids::{Actor, UserId},
    store::Db,
};

impl Auth {
    pub async fn create_client(&self, name: &str, role: &str) -> Result<Client, AuthError> {
        let secret = random_token();
        let user = self
            .insert_account(
                name,
                &password::sha256_hash(&secret),
                role,
                AccountKind::Service,
                None,
                None,
            )
            .await?;
        self.audit
            .record(Event::new("client.create", "ok").subject(&user.id));
        Ok(Client {
            client_id: user.id.into_string(),
            client_secret: secret,
        })
    }

    async fn insert_account(
        &self,
        raw_username: &str,
        password_hash: &str,
        role: &str,
        kind: AccountKind,
        email: Option<&str>,
        full_name: Option<&str>,
    ) -> Result<store::UserRow, AuthError> {
        let username = Username::parse(raw_username).map_err(AuthError::InvalidInput)?;
        if !store::is_role(&self.db.pool, role)
            .await
            .context("auth store: is_role")?
        {
            return Err(AuthError::InvalidInput(format!("unknown role {role:?}")));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let new = store::NewUser {
            id: &id,
            username: username.display(),
            username_canonical: username.canonical(),
            username_skeleton: &username.skeleton(),
            kind,
            password_hash,
            role,
            email,
            full_name,
            now: self.now(),
        };
        match store::insert_user(self.db.writer(), &new).await {
            // The same name or a lookalike of one (its skeleton): one answer, so neither can be told apart.
            Err(e) if Db::is_unique_violation(&e) => {
                return Err(AuthError::AlreadyExists("username already exists".into()));
            }
            other => other?,
        }
        store::find_user(&self.db.pool, &id)
            .await
            .context("auth store: find_user")?
            .ok_or(AuthError::NotFound)
    }

    pub async fn create_user(
        &self,
        raw_username: &str,
        raw_password: String,
        role: &str,
        email: Option<&str>,
        full_name: Option<&str>,
    ) -> Result<store::UserRow, AuthError> {
        self.create_user_by(None, raw_username, raw_password, role, email, full_name)
            .await
    }

    /// [`Auth::create_user`], recording who created the user (an admin through the API) in the audit.
    pub async fn create_user_by(
        &self,
        actor: Option<&Actor>,
        raw_username: &str,
        raw_password: String,
        role: &str,
        email: Option<&str>,
        full_name: Option<&str>,
    ) -> Result<store::UserRow, AuthError> {
        Username::parse(raw_username).map_err(AuthError::InvalidInput)?;
        let password = Password::parse_new(raw_password).map_err(AuthError::InvalidInput)?;
        let hash = self.hasher.hash(&password).await?;
        let row = self
            .insert_account(
                raw_username,
                &hash,
                role,
                AccountKind::Person,
                email,
                full_name,
            )
            .await?;
        let mut event = Event::new("user.create", "ok")
            .subject(&row.id)
            .detail(json!({"role": role}));
        if let Some(a) = actor {
            event = event.actor(a.as_str());
        }
        self.audit.record(event);
        Ok(row)
    }

    pub async fn find_user(&self, id: &str) -> Result<store::UserRow, AuthError> {
        store::find_user(&self.db.pool, id)
            .await
            .context("auth store: find_user")?
            .ok_or(AuthError::NotFound)
    }

    pub async fn find_user_by_name(&self, raw_username: &str) -> Result<store::UserRow, AuthError> {
        store::find_user_by_canonical(&self.db.pool, &username::canonical(raw_username))
            .await
            .context("auth store: find_user_by_canonical")?
            .ok_or(AuthError::NotFound)
    }

    pub async fn list_users(&self) -> Result<Vec<store::UserRow>, AuthError> {
        store::find_all_users(&self.db.pool)
            .await
            .context("auth store: find_all_users")
    }

    /// One page of the users matching an admin's search, and how many match in all.
    pub async fn search_users(&self, search: &UserSearch) -> Result<UserPage, AuthError> {
        let q = search.q.as_deref().map(str::to_lowercase);
        let (users, total) = store::find_users_page(
            &self.db.pool,
            &store::UserQuery {
                q: q.as_deref(),
                role: search.role.as_deref(),
                active: search.active,
                limit: i64::from(search.limit),
                offset: i64::from(search.offset),
            },
        )
        .await
        .context("auth store: find_users_page")?;
        Ok(UserPage { users, total })
    }

    /// Changes profile fields, role or active flag. A role change or disabling ends every session of the user.
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: &str,
        change: UserChange,
    ) -> Result<store::UserRow, AuthError> {
        let current = self.find_user(id).await?;
        let role = change.role.unwrap_or_else(|| current.role.clone());
        if role != current.role
            && !store::is_role(&self.db.pool, &role)
                .await
                .context("auth store: is_role")?
        {
            return Err(AuthError::InvalidInput(format!("unknown role {role:?}")));
        }
        let active = change.is_active.unwrap_or(current.is_active);
        if actor.is_user(id) && (!active || role != current.role) {
            return Err(AuthError::NotAllowed(
                "you cannot change your own role or disable yourself".into(),
            ));
        }
        let email = change.email.or(current.email.clone());
        let full_name = change.full_name.or(current.full_name.clone());
        store::update_profile(
            self.db.writer(),
            id,
            email.as_deref(),
            full_name.as_deref(),
            &role,
            active,
            self.now(),
        )
        .await
        .context("auth store: update_profile")?;
        self.changed_accounts(Some(id));
        let disabled = !active && current.is_active;
        if role != current.role || disabled {
            let reason = if disabled { "disabled" } else { "role_change" };
            self.revoke_user_sessions(id, None, reason).await?;
        }
        let event = |name: &str| {
            Event::new(name.to_string(), "ok")
                .actor(actor.as_str())
                .subject(id)
        };
        if role != current.role {
            self.audit.record(
                event("user.role_change").detail(json!({"from": current.role, "role": role})),
            );
        }
        if disabled {
            self.audit.record(event("user.disabled"));
        }
        if active && !current.is_active {
            self.audit.record(event("user.enabled"));
        }
        let mut fields = Vec::new();
        if email != current.email {
            fields.push("email");
        }
        if full_name != current.full_name {
            fields.push("full_name");
        }
        if !fields.is_empty() {
            self.audit
                .record(event("user.update").detail(json!({"fields": fields})));
        }
        self.find_user(id).await
    }

    /// Sets a password (admin or the CLI). Ends every session of the user except `keep`.
    pub async fn set_password(
        &self,
        actor: Option<&str>,
        id: &str,
        raw_password: String,
        keep: Option<&str>,
    ) -> Result<(), AuthError> {
        let password = Password::parse_new(raw_password).map_err(AuthError::InvalidInput)?;
        let hash = self.hasher.hash(&password).await?;
        if !store::update_password_hash(self.db.writer(), id, &hash, self.now())
            .await
            .context("auth store: update_password_hash")?
        {
            return Err(AuthError::NotFound);
        }
        self.revoke_user_sessions(id, keep, "password_change")
            .await?;
        let mut event = Event::new("user.password_change", "ok").subject(id);
        if let Some(a) = actor {
            event = event.actor(a);
        }
        self.audit.record(event);
        Ok(())
    }

    /// The caller changes their own password: the current one must match; other sessions end.
    pub async fn change_own_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
    ) -> Result<(), AuthError> {
        let row = self.find_user(principal.account.id.as_str()).await?;
        let current = Password::parse(current).map_err(|_| AuthError::InvalidCredentials)?;
        match self
            .hasher
            .verify(&current, Some(&row.password_hash))
            .await?
        {
            Verdict::Match { .. } => {}
            Verdict::Mismatch => return Err(AuthError::InvalidCredentials),
        }
        self.set_password(
            Some(row.id.as_str()),
            row.id.as_str(),
            new,
            Some(principal.session_id.as_str()),
        )
        .await
    }

    /// Deletes a user; refuses admins and oneself.
    pub async fn delete_user(&self, actor: &Actor, id: &str) -> Result<(), AuthError> {
        let row = self.find_user(id).await?;
        if actor.is_user(row.id.as_str()) {
            return Err(AuthError::NotAllowed("you cannot delete yourself".into()));
        }
        if row.role == ADMIN_ROLE {
            return Err(AuthError::NotAllowed(
                "admin users cannot be deleted".into(),
            ));
        }
        self.revoke_user_sessions(id, None, "deleted").await?;
        store::delete_user(self.db.writer(), id)
            .await
            .context("auth store: delete_user")?;
        self.changed_accounts(Some(id));
        self.audit.record(
            Event::new("user.delete", "ok")
                .actor(actor.as_str())
                .subject(id),
        );
        Ok(())
    }

    pub async fn roles(&self) -> Result<Vec<RolePermissions>, AuthError> {
        let mut out = Vec::new();
        for (name, description, require_mfa) in store::find_all_roles(&self.db.pool)
            .await
            .context("auth store: find_all_roles")?
        {
            let permissions = store::find_role_permissions(&self.db.pool, &name)
                .await
                .context("auth store: find_role_permissions")?;
            out.push(RolePermissions {
                name,
                description,
                permissions,
                require_mfa: require_mfa != 0,
            });
        }
        Ok(out)
    }

    /// Creates a role or replaces its permissions (and, when given, whether it requires a second factor);
    /// cached accounts pick the change up at once.
    pub async fn set_role_permissions(
        &self,
        actor: &str,
        role: &str,
        description: &str,
        permissions: Vec<String>,
        require_mfa: Option<bool>,
    ) -> Result<(), AuthError> {
        let valid_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        };
        let valid_permission = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":_-*.".contains(c))
        };
        if !valid_name(role) {
            return Err(AuthError::InvalidInput(
                "role must be 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        if let Some(bad) = permissions.iter().find(|p| !valid_permission(p)) {
            return Err(AuthError::InvalidInput(format!(
                "invalid permission {bad:?}"
            )));
        }
        if role == ADMIN_ROLE && !permissions.iter().any(|p| p == permissions::ALL) {
            return Err(AuthError::NotAllowed(
                "the admin role keeps the '*' permission".into(),
            ));
        }
        store::replace_role_permissions(
            self.db.writer(),
            role,
            description,
            &permissions,
            require_mfa,
            self.now(),
        )
        .await
        .context("auth store: replace_role_permissions")?;
        self.changed_accounts(None);
        self.audit.record(
            Event::new("role.permissions", "ok")
                .actor(actor)
                .subject(role)
                .detail(json!({"permissions": permissions, "require_mfa": require_mfa})),
        );
        Ok(())
    }

    /// Records whether a user has a confirmed second factor (the mfa service calls this after every enrolment
    /// or removal), so the cached account — and the per-role requirement — see it at once.
    pub async fn set_second_factor_enrolled(
        &self,
        user_id: &UserId,
        enrolled: bool,
    ) -> Result<(), AuthError> {
        store::update_mfa_enrolled(self.db.writer(), user_id.as_str(), enrolled, self.now())
            .await
            .context("auth store: update_mfa_enrolled")?;
        self.changed_accounts(Some(user_id.as_str()));
        Ok(())
    }

    /// Links an external issuer's subject to a local user.
    pub async fn link_external(
        &self,
        issuer: &str,
        subject: &str,
        user_id: &str,
    ) -> Result<(), AuthError> {
        match store::insert_external_identity(self.db.writer(), issuer, subject, user_id).await {
            Err(e) if Db::is_unique_violation(&e) => Err(AuthError::AlreadyExists(
                "that external identity is already linked".into(),
            )),
            other => Ok(other?),
        }
    }

    /// Creates the `admin` account on first start. Returns the generated password when none was configured.
    pub async fn bootstrap_admin(
        &self,
        configured: Option<String>,
    ) -> Result<Option<String>, AuthError> {
        if store::count_active_admins(&self.db.pool)
            .await
            .context("auth store: count_active_admins")?
            > 0
        {
            return Ok(None);
        }
        let (password, generated) = match configured {
            Some(p) => (p, false),
            None => (random_token()[..24].to_string(), true),
        };
        match self
            .create_user(
                "admin",
                password.clone(),
                ADMIN_ROLE,
                None,
                Some("Administrator"),
            )
            .await
        {
            Ok(_) => {}
            // An `admin` user exists but is not an active admin: leave it to the operator.
            Err(AuthError::AlreadyExists(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
        Ok(generated.then_some(password))
    }
}

/// Gives accounts made before usernames had skeletons (migration 0006) theirs. Where an older account already
/// holds the skeleton, the newer one keeps none and can still sign in: logged for the operator to resolve.
pub(super) async fn backfill_username_skeletons(db: &Db) -> anyhow::Result<()> {
    for (id, canonical) in store::find_users_without_skeleton(&db.pool)
        .await
        .context("auth store: find_users_without_skeleton")?
    {
        match store::update_skeleton(db.writer(), &id, &username::skeleton(&canonical)).await {
            Ok(()) => {}
            Err(e) if Db::is_unique_violation(&e) => tracing::warn!(
                user = %id,
                "username looks like an older account's (same confusable skeleton); rename or remove one of them"
            ),
            Err(e) => return Err(anyhow::Error::new(e).context("setting a username skeleton")),
        }
    }
    Ok(())
}

#[derive(Default)]
pub struct UserChange {
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub role: Option<String>,
    pub is_active: Option<bool>,
}

/// An admin's user search, parsed at the edge: `limit` is 1 to [`MAX_USER_PAGE`].
pub struct UserSearch {
    /// Matched case-insensitively as a substring of the username, email or full name.
    pub q: Option<String>,
    pub role: Option<String>,
    pub active: Option<bool>,
    pub limit: u32,
    pub offset: u32,
}

/// The largest page of users one search answers.
pub const MAX_USER_PAGE: u32 = 200;

/// One page of a user search and how many users match in all.
pub struct UserPage {
    pub users: Vec<store::UserRow>,
    pub total: i64,
}

pub struct RolePermissions {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    /// Members must enrol a second factor before using anything else.
    pub require_mfa: bool,
}
