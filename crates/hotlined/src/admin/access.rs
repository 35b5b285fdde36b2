//! The one middleware every admin route goes through ([`guard`]): it finds the route's line
//! in [`super::permissions::TABLE`], tells who is calling (a session cookie, a personal API
//! token, or the shared legacy `admin.token`), refuses with 401 (nobody) or 403 (not for
//! this role, or a cookie request without its CSRF token), and hands the handler a
//! [`Caller`] and the [`Actor`] for timelines.
//!
//! Also here: the audit helper every handler records through ([`AdminState::audit`]).

use std::net::SocketAddr;

use appeals::{AuditEntry, Role, SessionRecord};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::permissions::{self, Grant, Rule};
use super::{bearer_in, constant_time_eq, partner_api, unauthorized, Actor, AdminState, ApiError};
use crate::accounts::secret_hash;
use crate::web::cookies;

/// The actor name of the shared legacy token.
pub const LEGACY_ACTOR: &str = "admin-token";

/// How the caller proved who they are.
#[derive(Clone, Debug)]
pub enum Via {
    /// A browser session: its hashed id and the CSRF token its forms and scripts repeat.
    Session {
        /// The session's CSRF token.
        csrf: String,
    },
    /// A personal API token.
    Token(uuid::Uuid),
    /// The shared `admin.token` of the configuration.
    LegacyToken,
}

/// Who is calling, and what the route's line lets them do.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The account (`admin-token` for the legacy token).
    pub id: String,
    /// The name to show.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// For the organisation role.
    pub organisation_id: Option<String>,
    /// What this route's line gives the role.
    pub grant: Grant,
    /// How they proved it.
    pub via: Via,
    /// The request's source address.
    pub address: Option<String>,
}

impl Caller {
    /// True when the route lets them see everything, false when only their own.
    pub fn sees_all(&self) -> bool {
        self.grant == Grant::All
    }

    /// An audit line by this caller.
    pub fn audit(&self, action: &str, target: Option<String>, details: Value) -> AuditEntry {
        AuditEntry {
            at: Utc::now(),
            actor: self.id.clone(),
            role: Some(self.role.as_str().to_owned()),
            address: self.address.clone(),
            action: action.to_owned(),
            target,
            details,
        }
    }
}

/// The request's source address, when the server was started with connection info.
pub fn address_of(req: &Request) -> Option<String> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// How often a session's or token's "last used" time is written at most.
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

impl AdminState {
    /// Records an audit line; a failure to write it is logged (the change it records is
    /// already made).
    pub async fn audit(&self, e: AuditEntry) {
        match self.store() {
            Ok(store) => {
                if let Err(err) = store.audit(&e).await {
                    tracing::error!(error = %err, action = %e.action, "audit line not written");
                }
            }
            Err(_) => {
                tracing::error!(action = %e.action, "audit line not written: no database")
            }
        }
    }

    /// The live session named by the request's cookie: (hashed id, session).
    pub async fn session_of(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, SessionRecord)>, ApiError> {
        let Some(value) = cookies::session_cookie(headers) else {
            return Ok(None);
        };
        let store = self.store()?;
        let id_hash = secret_hash(&value);
        let now = Utc::now();
        let idle = now - self.access.session_idle;
        let max = now - self.access.session_max;
        let Some(session) = store.session(&id_hash, idle, max).await? else {
            return Ok(None);
        };
        if now - session.last_seen_at >= TOUCH_EVERY {
            store.touch_session(&id_hash, now).await?;
        }
        Ok(Some((id_hash, session)))
    }

    /// Who the request comes from, if anyone: bearer first, then the session cookie.
    /// `Err` is the answer to give (401 for a token that is not valid, 503 without a
    /// database).
    async fn identify(
        &self,
        headers: &HeaderMap,
        address: Option<String>,
        grant_for: Rule,
    ) -> Result<Option<Caller>, Box<Response>> {
        let make = |id: String, display_name: String, role: Role, org, via| {
            permissions::grant(grant_for, role).map(|grant| Caller {
                id,
                display_name,
                role,
                organisation_id: org,
                grant,
                via,
                address: address.clone(),
            })
        };
        // a caller the rule has no grant for: 403 below, with their identity known
        let known = |c: Option<Caller>, role: Role| match c {
            Some(c) => Ok(Some(c)),
            None => Err(Box::new(forbidden(role))),
        };
        if let Some(t) = bearer_in(headers) {
            if !self.token.is_empty() && constant_time_eq(t.as_bytes(), self.token.as_bytes()) {
                let c = make(
                    LEGACY_ACTOR.into(),
                    "admin.token".into(),
                    Role::Admin,
                    None,
                    Via::LegacyToken,
                );
                return known(c, Role::Admin);
            }
            let store = self.store().map_err(|e| Box::new(e.into_response()))?;
            let found = store
                .token_user(&secret_hash(t))
                .await
                .map_err(|e| Box::new(ApiError::from(e).into_response()))?;
            let Some((info, user)) = found else {
                return Err(Box::new(unauthorized(
                    Some("invalid_token"),
                    "the bearer token is not valid",
                )));
            };
            let now = Utc::now();
            if info
                .last_used_at
                .is_none_or(|t: DateTime<Utc>| now - t >= TOUCH_EVERY)
            {
                let _ = store.touch_token(info.id, now).await;
            }
            let role = user.role;
            let c = make(
                user.id,
                user.display_name,
                role,
                user.organisation_id,
                Via::Token(info.id),
            );
            return known(c, role);
        }
        match self
            .session_of(headers)
            .await
            .map_err(|e| Box::new(e.into_response()))?
        {
            None => Ok(None),
            Some((_, s)) => {
                let role = s.user.role;
                let c = make(
                    s.user.id,
                    s.user.display_name,
                    role,
                    s.user.organisation_id,
                    Via::Session { csrf: s.csrf },
                );
                known(c, role)
            }
        }
    }
}

fn forbidden(role: Role) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("the {role} role may not use this route"),
    )
    .into_response()
}

/// The header a cookie-authenticated request that changes something repeats its session's
/// CSRF token in (pages send it as the form field `csrf`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The middleware: the route's rule, who is calling, CSRF, then the handler.
pub async fn guard(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    let method = if req.method() == Method::HEAD {
        "GET".to_owned()
    } else {
        req.method().as_str().to_owned()
    };
    let pattern = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let Some(rule) = permissions::rule(&method, &pattern) else {
        tracing::error!(%method, route = %pattern, "no permission defined for this route: refused");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "no permission is defined for this route",
        )
        .into_response();
    };
    match rule {
        Rule::Open | Rule::Page => next.run(req).await,
        Rule::Partner => partner_api::authenticate(State(s), req, next).await,
        Rule::Roles(_) => {
            let headers = req.headers().clone();
            let address = address_of(&req);
            let caller = match s.identify(&headers, address, rule).await {
                Ok(Some(c)) => c,
                Ok(None) => {
                    return unauthorized(None, "log in, or give a bearer token");
                }
                Err(answer) => return *answer,
            };
            if let Via::Session { csrf, .. } = &caller.via {
                let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
                let given = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !safe && !constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "a request made with the session cookie must repeat its CSRF token in X-CSRF-Token",
                    )
                    .into_response();
                }
            }
            req.extensions_mut().insert(Actor(caller.id.clone()));
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
    }
}
