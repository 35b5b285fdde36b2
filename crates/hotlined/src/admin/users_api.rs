//! Accounts through the API: `GET /api/v1/me` (anyone signed in), and for admins the users,
//! their API tokens, the audit log and a retention run now.
//!
//! Input is checked whole before anything is written: malformed JSON is 400, a field that
//! breaks a rule (login, display name, role, organisation, a weak password) is 422 with
//! `"field"` naming it. Passwords and tokens never come back, never reach a log; a new
//! token is shown once, in the answer that made it.

use appeals::{AuditFilter, NewUser, Role, UserChange};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::access::Caller;
use super::appeals_api::instant;
use super::{AdminState, ApiError};
use crate::accounts::{self, FieldError};

/// `GET /api/v1/me`: who the session or token belongs to.
pub async fn me(Extension(who): Extension<Caller>) -> Response {
    let (via, token_id) = match who.via {
        super::access::Via::Session { .. } => ("session", None),
        super::access::Via::Token(id) => ("token", Some(id)),
        super::access::Via::LegacyToken => ("legacy_token", None),
    };
    Json(json!({
        "id": who.id,
        "role": who.role,
        "display_name": who.display_name,
        "organisation_id": who.organisation_id,
        "via": via,
        "token_id": token_id,
    }))
    .into_response()
}

fn body<T: serde::de::DeserializeOwned>(b: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}

fn user_id(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(id)
}

/// The account, or 404.
async fn existing(store: &appeals::Store, id: &str) -> Result<appeals::User, ApiError> {
    store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {id:?}")))
}

/// `GET /api/v1/users`.
pub async fn list(State(s): State<AdminState>) -> Result<Response, ApiError> {
    let users = s.store()?.users().await?;
    Ok(Json(json!({ "users": users })).into_response())
}

/// `GET /api/v1/users/{id}`.
pub async fn one(
    State(s): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    Ok(Json(existing(s.store()?, &id).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    login: String,
    display_name: String,
    role: String,
    #[serde(default)]
    organisation_id: Option<String>,
    password: String,
}

async fn hash(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || accounts::hash_password(&password))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "password not hashed"))
}

/// `POST /api/v1/users` `{ login, display_name, role, organisation_id?, password }`: 201
/// with the account; 409 when the login is taken.
pub async fn create(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let b: NewUserBody = body(&b)?;
    let role = accounts::parse_role(&b.role).map_err(ApiError::field)?;
    let name = b.display_name.trim().to_owned();
    let org = b
        .organisation_id
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty());
    accounts::check_new_user(&b.login, &name, role, org, &b.password, &s.directory.get())
        .map_err(ApiError::field)?;
    let store = s.store()?;
    let u = NewUser {
        id: b.login.clone(),
        display_name: name,
        role,
        organisation_id: org.map(str::to_owned),
        password_hash: hash(b.password).await?,
    };
    let audit = who.audit(
        "user_created",
        Some(u.id.clone()),
        json!({ "role": role, "display_name": u.display_name, "organisation_id": u.organisation_id }),
    );
    let user = store.create_user(&u, &audit).await?;
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserChangeBody {
    display_name: Option<String>,
    role: Option<String>,
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    organisation_id: Option<Option<String>>,
    password: Option<String>,
    disabled: Option<bool>,
}

/// `Option<Option<T>>` from JSON: absent = `None`, `null` = `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// `PATCH /api/v1/users/{id}` `{ display_name?, role?, organisation_id?, password?,
/// disabled? }`: a new password or disabling ends the account's sessions. The last enabled
/// admin cannot be disabled or given another role (409).
pub async fn update(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let b: UserChangeBody = body(&b)?;
    let store = s.store()?;
    let current = existing(store, &id).await?;
    let role = b
        .role
        .as_deref()
        .map(accounts::parse_role)
        .transpose()
        .map_err(ApiError::field)?;
    let name = b.display_name.as_deref().map(str::trim).map(str::to_owned);
    if let Some(n) = &name {
        accounts::check_display_name(n).map_err(ApiError::field)?;
    }
    let org = b.organisation_id.map(|o| {
        o.map(|o| o.trim().to_owned())
            .filter(|o: &String| !o.is_empty())
    });
    let new_role = role.unwrap_or(current.role);
    let new_org = match &org {
        Some(o) => o.clone(),
        // a role away from organisation drops its organisation
        None if new_role != Role::Organisation => None,
        None => current.organisation_id.clone(),
    };
    accounts::check_organisation(new_role, new_org.as_deref(), &s.directory.get())
        .map_err(ApiError::field)?;
    if let Some(p) = &b.password {
        accounts::check_password(&id, p).map_err(ApiError::field)?;
    }
    let loses_admin = current.role == Role::Admin
        && !current.disabled
        && (new_role != Role::Admin || b.disabled == Some(true));
    if loses_admin && store.user_counts().await?.1 <= 1 {
        return Err(ApiError::conflict(
            "this is the last enabled admin: make another admin first",
        ));
    }
    let mut details = serde_json::Map::new();
    if let Some(n) = &name {
        details.insert("display_name".into(), json!(n));
    }
    if role.is_some() {
        details.insert(
            "role".into(),
            json!({ "from": current.role, "to": new_role }),
        );
    }
    if new_org != current.organisation_id {
        details.insert("organisation_id".into(), json!(new_org));
    }
    if b.password.is_some() {
        details.insert("password".into(), json!("changed"));
    }
    if let Some(d) = b.disabled {
        details.insert("disabled".into(), json!(d));
    }
    if details.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give display_name, role, organisation_id, password or disabled",
        ));
    }
    let password_hash = match b.password {
        Some(p) => Some(hash(p).await?),
        None => None,
    };
    let change = UserChange {
        display_name: name,
        role,
        organisation_id: (new_org != current.organisation_id).then_some(new_org),
        password_hash,
        disabled: b.disabled,
    };
    let audit = who.audit("user_changed", Some(id.clone()), details.into());
    let user = store.update_user(&id, &change, &audit).await?;
    Ok(Json(user).into_response())
}

/// `GET /api/v1/users/{id}/tokens`: the account's tokens (never the tokens themselves).
pub async fn tokens(
    State(s): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let store = s.store()?;
    existing(store, &id).await?;
    Ok(Json(json!({ "tokens": store.tokens(&id).await? })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    name: String,
}

/// Longest token name.
const MAX_TOKEN_NAME: usize = 100;

/// `POST /api/v1/users/{id}/tokens` `{ name }`: 201 with `token` — shown this once; only
/// its hash is kept. The token acts with the account's role.
pub async fn create_token(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let id = user_id(id)?;
    let b: NewTokenBody = body(&b)?;
    let name = b.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_TOKEN_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::field(FieldError {
            field: "name",
            message: format!("1 to {MAX_TOKEN_NAME} characters on one line"),
        }));
    }
    let store = s.store()?;
    existing(store, &id).await?;
    let token = accounts::new_api_token();
    let audit = who.audit("token_created", None, json!({ "user": id, "name": name }));
    let info = store
        .create_token(&id, name, &accounts::secret_hash(&token), &audit)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": token, "info": info })),
    )
        .into_response())
}

/// `DELETE /api/v1/tokens/{id}`: revokes the token at once; 404 for no such token.
pub async fn revoke_token(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let raw = user_id(id)?;
    let id: uuid::Uuid = raw
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{raw:?} is not a token id")))?;
    let audit = who.audit("token_revoked", Some(id.to_string()), json!({}));
    match s.store()?.revoke_token(id, &audit).await? {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(ApiError::not_found(format!("no token {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    limit: Option<u32>,
    format: Option<String>,
}

/// One CSV field, quoted when it must be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `GET /api/v1/audit?from=&to=&actor=&action=&target=&limit=&format=json|csv`: newest
/// first (`limit` 1–10000, default 500). `Accept: text/csv` or `format=csv` gives CSV.
/// Reading the log as CSV is an export, and is itself recorded.
pub async fn audit(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1 to 10000"));
    }
    let given = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let filter = AuditFilter {
        from: given(q.from)
            .map(|v| instant("from", &v, s.reports.tz, false))
            .transpose()?,
        to: given(q.to)
            .map(|v| instant("to", &v, s.reports.tz, true))
            .transpose()?,
        actor: given(q.actor),
        action: given(q.action),
        target: given(q.target),
        limit,
    };
    let csv = match given(q.format).as_deref() {
        Some("csv") => true,
        Some("json") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format={other:?}: expected json or csv"
            )))
        }
        None => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/csv")),
    };
    let rows = s.store()?.audit_search(&filter).await?;
    if !csv {
        return Ok(Json(json!({ "audit": rows })).into_response());
    }
    s.audit(who.audit(
        "export",
        None,
        json!({ "what": "audit", "format": "csv", "rows": rows.len() }),
    ))
    .await;
    let mut out = String::from("id,at,actor,role,address,action,target,details\r\n");
    for r in &rows {
        let e = &r.entry;
        let fields = [
            r.id.to_string(),
            e.at.to_rfc3339(),
            e.actor.clone(),
            e.role.clone().unwrap_or_default(),
            e.address.clone().unwrap_or_default(),
            e.action.clone(),
            e.target.clone().unwrap_or_default(),
            e.details.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

/// `POST /api/v1/retention/run`: runs retention now (as the daily run does) and answers
/// what it did; recorded in the audit log like every run.
pub async fn retention_run(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
) -> Result<Response, ApiError> {
    let store = s.store()?;
    let done = crate::retention::run(store, &s.access, Utc::now(), &who.id).await?;
    Ok(Json(done).into_response())
}
