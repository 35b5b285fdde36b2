//! Who may work the appeals, on the same database: personal accounts ([`User`], one of four
//! [`Role`]s), browser sessions, API tokens, login throttling and the append-only audit log
//! (migration `0005_access`).
//!
//! This module stores and finds; it never sees a password or a token in clear. The daemon
//! hashes passwords (argon2id) and hashes session ids and tokens (SHA-256) before they get
//! here. Every change to an account or a token is written in one transaction with the
//! audit row that records it, so there is never one without the other.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::db::{self, ms};
use crate::model::AppealId;
use crate::store::Store;
use crate::Error;

/// What a person does, and so what they may see and change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Answers calls; sees their own state, calls and the appeals they handled.
    Operator,
    /// Watches and steers the operational side: every appeal, the live state, reports.
    Supervisor,
    /// Runs the service: users, tokens, reloads, retention, the audit log.
    Admin,
    /// Staff of a partner organisation: only the applications routed to it.
    Organisation,
}

impl Role {
    /// Every role, in this order.
    pub const ALL: [Role; 4] = [
        Role::Operator,
        Role::Supervisor,
        Role::Admin,
        Role::Organisation,
    ];

    /// The stored and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Organisation => "organisation",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = crate::UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| crate::UnknownValue {
                what: "role",
                value: s.to_owned(),
            })
    }
}

/// An account, without its password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    /// The login.
    pub id: String,
    /// The name shown on screen and in lists.
    pub display_name: String,
    /// What they do.
    pub role: Role,
    /// The organisation of an `organisation` account.
    pub organisation_id: Option<String>,
    /// A disabled account cannot log in, and its sessions and tokens stop working.
    pub disabled: bool,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A new account.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The login.
    pub id: String,
    /// The name shown on screen.
    pub display_name: String,
    /// What they do.
    pub role: Role,
    /// For the organisation role.
    pub organisation_id: Option<String>,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// Changes to an account; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct UserChange {
    /// New display name.
    pub display_name: Option<String>,
    /// New role (with `organisation_id` for the organisation role).
    pub role: Option<Role>,
    /// New organisation (`Some(None)` clears it).
    pub organisation_id: Option<Option<String>>,
    /// New password hash; ends the account's sessions.
    pub password_hash: Option<String>,
    /// Disable (ends its sessions) or enable again.
    pub disabled: Option<bool>,
}

/// A live browser session with its account.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    /// Whose.
    pub user: User,
    /// The CSRF token state-changing requests must repeat.
    pub csrf: String,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// The last request seen (touched at most about once a minute).
    pub last_seen_at: DateTime<Utc>,
}

/// An API token as lists show it (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Names the token.
    pub id: Uuid,
    /// Whose; the token acts with this account's role.
    pub user_id: String,
    /// What it is for.
    pub name: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Who made it.
    pub created_by: String,
    /// When it was last used (touched at most about once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// Who: a user id, `admin-token`, `cli`, `system`, `partner`.
    pub actor: String,
    /// Their role, when they have one.
    pub role: Option<String>,
    /// The address the request came from.
    pub address: Option<String>,
    /// What: `login_ok`, `login_refused`, `appeal_changed`, `user_created`, …
    pub action: String,
    /// What it was done to: an appeal id, a user id, a token id.
    pub target: Option<String>,
    /// What changed (JSON object).
    pub details: serde_json::Value,
}

/// A stored audit line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRow {
    /// Its id (time-ordered).
    pub id: Uuid,
    /// The line.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which audit lines to list; every field that is set must match.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Exactly this action.
    pub action: Option<String>,
    /// Exactly this target.
    pub target: Option<String>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// Where a login throttle key stands after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// Failures counted since the last success or lock.
    pub failures: i64,
    /// Locked until then, when locked.
    pub locked_until: Option<DateTime<Utc>>,
}

/// What retention did in one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Masked {
    /// Appeals whose caller number was masked.
    pub appeals: u64,
    /// Callback rows whose number was masked.
    pub callbacks: u64,
}

const USER_COLUMNS: &str =
    "id, display_name, role, organisation_id, disabled, created_at, updated_at";

fn time(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

fn user_from_row(r: &AnyRow) -> Result<User, Error> {
    let role: String = r.try_get("role")?;
    Ok(User {
        id: r.try_get("id")?,
        display_name: r.try_get("display_name")?,
        role: role.parse().map_err(|_| Error::BadValue {
            column: "users.role",
            value: role,
        })?,
        organisation_id: r.try_get("organisation_id")?,
        disabled: r.try_get::<i64, _>("disabled")? != 0,
        created_at: time(r.try_get("created_at")?),
        updated_at: time(r.try_get("updated_at")?),
    })
}

fn token_from_row(r: &AnyRow) -> Result<TokenInfo, Error> {
    let id: String = r.try_get("id")?;
    Ok(TokenInfo {
        id: id.parse().map_err(|_| Error::BadValue {
            column: "api_tokens.id",
            value: id,
        })?,
        user_id: r.try_get("user_id")?,
        name: r.try_get("name")?,
        created_at: time(r.try_get("created_at")?),
        created_by: r.try_get("created_by")?,
        last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(time),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(time),
    })
}

/// Appends one audit line on `conn` (inside the caller's transaction when it has one).
async fn insert_audit(conn: &mut AnyConnection, e: &AuditEntry) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (id, at, actor, role, address, action, target, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(ms(e.at))
    .bind(e.actor.clone())
    .bind(e.role.clone())
    .bind(e.address.clone())
    .bind(e.action.clone())
    .bind(e.target.clone())
    .bind(e.details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// A caller number with all but its last two digits replaced by `*` (`+7*********67`);
/// an empty or already masked number stays as it is.
pub fn mask_number(n: &str) -> String {
    let digits = n.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    n.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + 2 <= digits && !(seen == 1 && n.starts_with('+')) {
                    return '*';
                }
            }
            c
        })
        .collect()
}

impl Store {
    /// Appends one line to the audit log.
    pub async fn audit(&self, e: &AuditEntry) -> Result<(), Error> {
        let mut conn = self.pool().acquire().await?;
        insert_audit(&mut conn, e).await?;
        Ok(())
    }

    /// Audit lines matching the filter, newest first.
    pub async fn audit_search(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, Error> {
        let mut sql = String::from(
            "SELECT id, at, actor, role, address, action, target, details FROM audit_log WHERE 1 = 1",
        );
        let mut texts: Vec<(usize, String)> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if let Some(t) = f.from {
            let i = next();
            sql.push_str(&format!(" AND at >= ${i}"));
            ints.push((i, ms(t)));
        }
        if let Some(t) = f.to {
            let i = next();
            sql.push_str(&format!(" AND at < ${i}"));
            ints.push((i, ms(t)));
        }
        for (col, v) in [
            ("actor", &f.actor),
            ("action", &f.action),
            ("target", &f.target),
        ] {
            if let Some(v) = v {
                let i = next();
                sql.push_str(&format!(" AND {col} = ${i}"));
                texts.push((i, v.clone()));
            }
        }
        let i = next();
        sql.push_str(&format!(" ORDER BY at DESC, id DESC LIMIT ${i}"));
        ints.push((i, i64::from(f.limit)));
        // bind in placeholder order
        let mut all: Vec<(usize, Result<String, i64>)> = texts
            .into_iter()
            .map(|(i, t)| (i, Ok(t)))
            .chain(ints.into_iter().map(|(i, v)| (i, Err(v))))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        let mut q = sqlx::query(&sql);
        for (_, v) in all {
            q = match v {
                Ok(t) => q.bind(t),
                Err(v) => q.bind(v),
            };
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let details: String = r.try_get("details")?;
                Ok(AuditRow {
                    id: id.parse().map_err(|_| Error::BadValue {
                        column: "audit_log.id",
                        value: id,
                    })?,
                    entry: AuditEntry {
                        at: time(r.try_get("at")?),
                        actor: r.try_get("actor")?,
                        role: r.try_get("role")?,
                        address: r.try_get("address")?,
                        action: r.try_get("action")?,
                        target: r.try_get("target")?,
                        details: serde_json::from_str(&details)
                            .unwrap_or(serde_json::Value::String(details)),
                    },
                })
            })
            .collect()
    }

    /// How many accounts exist, and how many of them are enabled admins.
    pub async fn user_counts(&self) -> Result<(i64, i64), Error> {
        let r = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN role = 'admin' AND disabled = 0 THEN 1 ELSE 0 END), 0) FROM users",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    }

    /// Every account, by login.
    pub async fn users(&self) -> Result<Vec<User>, Error> {
        sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(user_from_row)
            .collect()
    }

    /// One account with its password hash.
    pub async fn user_with_hash(&self, id: &str) -> Result<Option<(User, String)>, Error> {
        let Some(r) = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE id = $1"
        ))
        .bind(id.to_owned())
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some((user_from_row(&r)?, r.try_get("password_hash")?)))
    }

    /// One account.
    pub async fn user(&self, id: &str) -> Result<Option<User>, Error> {
        Ok(self.user_with_hash(id).await?.map(|(u, _)| u))
    }

    /// Makes an account and records it; [`Error::UserExists`] when the login is taken.
    pub async fn create_user(&self, u: &NewUser, audit: &AuditEntry) -> Result<User, Error> {
        let now = ms(audit.at);
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let done = sqlx::query(
            "INSERT INTO users (id, display_name, role, organisation_id, password_hash, disabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(u.id.clone())
        .bind(u.display_name.clone())
        .bind(u.role.as_str())
        .bind(u.organisation_id.clone())
        .bind(u.password_hash.clone())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::UserExists(u.id.clone()));
        }
        insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(User {
            id: u.id.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            organisation_id: u.organisation_id.clone(),
            disabled: false,
            created_at: time(now),
            updated_at: time(now),
        })
    }

    /// Changes an account and records it; a new password or disabling ends its sessions.
    /// [`Error::NoUser`] when there is no such account.
    pub async fn update_user(
        &self,
        id: &str,
        c: &UserChange,
        audit: &AuditEntry,
    ) -> Result<User, Error> {
        let now = ms(audit.at);
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let done = sqlx::query(
            "UPDATE users SET display_name = COALESCE($2, display_name), role = COALESCE($3, role), \
             organisation_id = CASE WHEN $4 = 1 THEN $5 ELSE organisation_id END, \
             password_hash = COALESCE($6, password_hash), disabled = COALESCE($7, disabled), \
             updated_at = $8 WHERE id = $1",
        )
        .bind(id.to_owned())
        .bind(c.display_name.clone())
        .bind(c.role.map(Role::as_str))
        .bind(i64::from(c.organisation_id.is_some()))
        .bind(c.organisation_id.clone().flatten())
        .bind(c.password_hash.clone())
        .bind(c.disabled.map(i64::from))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NoUser(id.to_owned()));
        }
        if c.password_hash.is_some() || c.disabled == Some(true) {
            sqlx::query(
                "UPDATE user_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL",
            )
            .bind(id.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_audit(&mut tx, audit).await?;
        let r = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.to_owned())
            .fetch_one(&mut *tx)
            .await?;
        let user = user_from_row(&r)?;
        tx.commit().await?;
        Ok(user)
    }

    /// Stores a new session (its id already hashed) for `user`.
    pub async fn create_session(
        &self,
        id_hash: &str,
        user: &str,
        csrf: &str,
        address: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO user_sessions (id_hash, user_id, csrf, address, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(id_hash.to_owned())
        .bind(user.to_owned())
        .bind(csrf.to_owned())
        .bind(address.map(str::to_owned))
        .bind(ms(at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The live session with this hashed id, whose account is enabled, that was used after
    /// `idle_since` and began after `created_since`; `None` otherwise.
    pub async fn session(
        &self,
        id_hash: &str,
        idle_since: DateTime<Utc>,
        created_since: DateTime<Utc>,
    ) -> Result<Option<SessionRecord>, Error> {
        let Some(r) = sqlx::query(
            "SELECT u.id, u.display_name, u.role, u.organisation_id, u.disabled, u.created_at, \
             u.updated_at, s.csrf, s.created_at AS s_created, s.last_seen_at \
             FROM user_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.ended_at IS NULL AND u.disabled = 0 \
             AND s.last_seen_at >= $2 AND s.created_at >= $3",
        )
        .bind(id_hash.to_owned())
        .bind(ms(idle_since))
        .bind(ms(created_since))
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        Ok(Some(SessionRecord {
            user: user_from_row(&r)?,
            csrf: r.try_get("csrf")?,
            created_at: time(r.try_get("s_created")?),
            last_seen_at: time(r.try_get("last_seen_at")?),
        }))
    }

    /// Marks a session as used now.
    pub async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), Error> {
        sqlx::query("UPDATE user_sessions SET last_seen_at = $2 WHERE id_hash = $1")
            .bind(id_hash.to_owned())
            .bind(ms(at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends a session (logout); true when it was live.
    pub async fn end_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE user_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL",
        )
        .bind(id_hash.to_owned())
        .bind(ms(at))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Stores a new API token (already hashed) for `user` and records it.
    pub async fn create_token(
        &self,
        user: &str,
        name: &str,
        token_hash: &str,
        audit: &AuditEntry,
    ) -> Result<TokenInfo, Error> {
        let id = Uuid::now_v7();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(user.to_owned())
        .bind(name.to_owned())
        .bind(token_hash.to_owned())
        .bind(ms(audit.at))
        .bind(audit.actor.clone())
        .execute(&mut *tx)
        .await?;
        let mut audit = audit.clone();
        audit.target = Some(id.to_string());
        insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(TokenInfo {
            id,
            user_id: user.to_owned(),
            name: name.to_owned(),
            created_at: audit.at,
            created_by: audit.actor,
            last_used_at: None,
            revoked_at: None,
        })
    }

    /// The account of a live (not revoked) token with this hash, when enabled.
    pub async fn token_user(&self, token_hash: &str) -> Result<Option<(TokenInfo, User)>, Error> {
        let Some(r) = sqlx::query(
            "SELECT u.id, u.display_name, u.role, u.organisation_id, u.disabled, u.created_at, \
             u.updated_at, t.id AS t_id, t.name, t.created_at AS t_created, t.created_by, \
             t.last_used_at, t.revoked_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND u.disabled = 0",
        )
        .bind(token_hash.to_owned())
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let user = user_from_row(&r)?;
        let id: String = r.try_get("t_id")?;
        let info = TokenInfo {
            id: id.parse().map_err(|_| Error::BadValue {
                column: "api_tokens.id",
                value: id,
            })?,
            user_id: user.id.clone(),
            name: r.try_get("name")?,
            created_at: time(r.try_get("t_created")?),
            created_by: r.try_get("created_by")?,
            last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(time),
            revoked_at: None,
        };
        Ok(Some((info, user)))
    }

    /// Marks a token as used now.
    pub async fn touch_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<(), Error> {
        sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(ms(at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A user's tokens (revoked ones too), oldest first.
    pub async fn tokens(&self, user: &str) -> Result<Vec<TokenInfo>, Error> {
        sqlx::query(
            "SELECT id, user_id, name, created_at, created_by, last_used_at, revoked_at \
             FROM api_tokens WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user.to_owned())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }

    /// Revokes a token and records it; `None` when there is no such token, the token
    /// otherwise (revoking twice changes nothing and records nothing).
    pub async fn revoke_token(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<Option<TokenInfo>, Error> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id.to_string())
        .bind(ms(audit.at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() > 0 {
            insert_audit(&mut tx, audit).await?;
        }
        let row = sqlx::query(
            "SELECT id, user_id, name, created_at, created_by, last_used_at, revoked_at \
             FROM api_tokens WHERE id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// The latest lock among `keys` that still holds at `now`.
    pub async fn locked_until(
        &self,
        keys: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let mut latest = None;
        for k in keys {
            let r = sqlx::query("SELECT locked_until FROM login_throttle WHERE key = $1")
                .bind((*k).to_owned())
                .fetch_optional(self.pool())
                .await?;
            if let Some(t) = r
                .map(|r| r.try_get::<Option<i64>, _>(0))
                .transpose()?
                .flatten()
                .map(time)
                .filter(|t| *t > now)
            {
                latest = latest.max(Some(t));
            }
        }
        Ok(latest)
    }

    /// Counts a failed login against `key`; at `threshold` failures the key is locked for
    /// `lock` from `now` and its count starts again.
    pub async fn login_failed(
        &self,
        key: &str,
        now: DateTime<Utc>,
        threshold: u32,
        lock: chrono::Duration,
    ) -> Result<Throttle, Error> {
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let r = sqlx::query(
            "INSERT INTO login_throttle (key, failures, locked_until, updated_at) VALUES ($1, 1, NULL, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = login_throttle.failures + 1, updated_at = $2 \
             RETURNING failures",
        )
        .bind(key.to_owned())
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await?;
        let failures: i64 = r.try_get(0)?;
        let mut out = Throttle {
            failures,
            locked_until: None,
        };
        if failures >= i64::from(threshold.max(1)) {
            let until = now + lock;
            sqlx::query("UPDATE login_throttle SET failures = 0, locked_until = $2 WHERE key = $1")
                .bind(key.to_owned())
                .bind(ms(until))
                .execute(&mut *tx)
                .await?;
            out.locked_until = Some(until);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Forgets the failures counted against `key` (a successful login).
    pub async fn login_succeeded(&self, key: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key.to_owned())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Appeals that arrived before `before` and still name a recording: (appeal, file).
    pub async fn recordings_before(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(AppealId, String)>, Error> {
        sqlx::query(
            "SELECT id, recording FROM appeals WHERE arrived_at < $1 AND recording IS NOT NULL \
             ORDER BY arrived_at",
        )
        .bind(ms(before))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            Ok((
                id.parse().map_err(|_| Error::BadValue {
                    column: "appeals.id",
                    value: id,
                })?,
                r.try_get(1)?,
            ))
        })
        .collect()
    }

    /// Forgets an appeal's recording (its file is gone).
    pub async fn clear_recording(&self, id: AppealId) -> Result<(), Error> {
        sqlx::query("UPDATE appeals SET recording = NULL, updated_at = $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(ms(Utc::now()))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The number as it stands in the JSON of an appeal's timeline (a callback attempt, a
    /// number keyed in) replaced by its masked form.
    async fn mask_in_events(&self, appeal: &str, number: &str, masked: &str) -> Result<(), Error> {
        if number.is_empty() {
            return Ok(());
        }
        sqlx::query("UPDATE appeal_events SET data = REPLACE(data, $2, $3) WHERE appeal_id = $1")
            .bind(appeal.to_owned())
            .bind(number.to_owned())
            .bind(masked.to_owned())
            .execute(self.pool())
            .await?;
        // what went to the partner (or was given up) keeps no number either; a message
        // still on its way is left whole
        sqlx::query(
            "UPDATE partner_outbox SET payload = REPLACE(payload, $2, $3) \
             WHERE appeal_id = $1 AND (sent_at IS NOT NULL OR failed_at IS NOT NULL)",
        )
        .bind(appeal.to_owned())
        .bind(number.to_owned())
        .bind(masked.to_owned())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Masks the caller number ([`mask_number`]) of every appeal that arrived before
    /// `before`, and the number of their callbacks, on the appeal, in its timeline and in
    /// the messages about it sent to the partner. Appeals masked by an earlier run (their
    /// number holds `*`) are not read again.
    pub async fn mask_callers_before(&self, before: DateTime<Utc>) -> Result<Masked, Error> {
        let mut out = Masked::default();
        let rows = sqlx::query(
            "SELECT id, caller_number FROM appeals \
             WHERE arrived_at < $1 AND caller_number <> '' AND caller_number NOT LIKE '%*%'",
        )
        .bind(ms(before))
        .fetch_all(self.pool())
        .await?;
        for r in &rows {
            let id: String = r.try_get(0)?;
            let number: String = r.try_get(1)?;
            let masked = mask_number(&number);
            if masked != number {
                sqlx::query("UPDATE appeals SET caller_number = $2 WHERE id = $1")
                    .bind(id.clone())
                    .bind(masked.clone())
                    .execute(self.pool())
                    .await?;
                self.mask_in_events(&id, &number, &masked).await?;
                out.appeals += 1;
            }
        }
        // the callbacks of those appeals, a number keyed in by a caller who gave none too
        let cbs = sqlx::query(
            "SELECT c.id, c.appeal_id, c.number FROM callbacks c \
             JOIN appeals a ON a.id = c.appeal_id \
             WHERE a.arrived_at < $1 AND c.number <> '' AND c.number NOT LIKE '%*%'",
        )
        .bind(ms(before))
        .fetch_all(self.pool())
        .await?;
        for c in &cbs {
            let cid: String = c.try_get(0)?;
            let appeal: String = c.try_get(1)?;
            let number: String = c.try_get(2)?;
            let masked = mask_number(&number);
            if masked != number {
                sqlx::query("UPDATE callbacks SET number = $2 WHERE id = $1")
                    .bind(cid)
                    .bind(masked.clone())
                    .execute(self.pool())
                    .await?;
                self.mask_in_events(&appeal, &number, &masked).await?;
                out.callbacks += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_but_the_last_two_digits() {
        assert_eq!(mask_number("+79131234567"), "+7********67");
        assert_eq!(mask_number("83833758787"), "*********87");
        assert_eq!(mask_number("+7********67"), "+7********67");
        assert_eq!(mask_number(""), "");
        assert_eq!(mask_number("12"), "12");
    }

    #[test]
    fn roles_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().ok(), Some(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
