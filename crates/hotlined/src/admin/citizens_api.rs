//! `/api/v1/citizens…`: citizens' cards (заявители).
//!
//! A card has a name, phone numbers (a call is linked to the card that has the caller's
//! number when exactly one does), an address with its district, a birth year, social
//! categories and flags (with an optional expiry) from the configuration's code lists,
//! the consent to data processing (who recorded it and when: the actor of the request that
//! set `consent: true`), and notes. `PATCH` names the `version` it was made on: a card
//! changed since is 409 and nothing is written. Unknown district, category or flag: 422
//! naming the field.

use appeals::{Citizen, CitizenFields, CitizenFilter, CitizenPatch, Consent, Flag, Page};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{Datelike, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::access::Caller;
use super::listing::{given, Paging};
use super::{audit, json_body, query_error, Actor, AdminState, ApiError};
use crate::directory::Directory;

/// Longest name, address and notes accepted, in characters.
const MAX_NAME: usize = 200;
const MAX_ADDRESS: usize = 500;
const MAX_NOTES: usize = 10_000;
/// Most phone numbers on one card.
const MAX_PHONES: usize = 10;

/// `Some(None)` for an explicit `null`, `Some(Some(v))` for a value; absent fields stay
/// `None` through `#[serde(default)]` (one helper, the store's).
pub(super) use appeals::nullable;

/// One line of text: trimmed, 1 to `max` characters, no control characters; else 422
/// naming `field`.
pub(super) fn line_text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "{field}: must be 1 to {max} characters on one line"
        )));
    }
    Ok(v.to_owned())
}

/// Free text up to `max` characters; 422 naming `field`.
pub(super) fn long_text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    if v.chars().count() > max {
        return Err(ApiError::unprocessable(format!(
            "{field}: longer than {max} characters"
        )));
    }
    Ok(v.to_owned())
}

/// A district id the directory knows; 422 naming `field`.
pub(super) fn district(d: &Directory, field: &str, v: &str) -> Result<String, ApiError> {
    match d.district(v) {
        Some(x) => Ok(x.id.clone()),
        None => Err(ApiError::unprocessable(format!(
            "{field}: no district {v:?} (see GET /api/v1/districts)"
        ))),
    }
}

fn phones(v: &[String]) -> Result<Vec<String>, ApiError> {
    if v.len() > MAX_PHONES {
        return Err(ApiError::unprocessable(format!(
            "phones: at most {MAX_PHONES} numbers"
        )));
    }
    v.iter()
        .map(|p| {
            let p = p.trim();
            let digits = p.chars().filter(char::is_ascii_digit).count();
            let ok = (3..=20).contains(&digits)
                && p.chars().enumerate().all(|(i, c)| {
                    c.is_ascii_digit() || " -()".contains(c) || (c == '+' && i == 0)
                });
            if ok {
                Ok(p.to_owned())
            } else {
                Err(ApiError::unprocessable(format!(
                    "phones: {p:?} is not a phone number (digits, a leading +, spaces, - and brackets)"
                )))
            }
        })
        .collect()
}

fn birth_year(y: i32) -> Result<i32, ApiError> {
    let now = Utc::now().year();
    if (1900..=now).contains(&y) {
        Ok(y)
    } else {
        Err(ApiError::unprocessable(format!(
            "birth_year: must be 1900 to {now}"
        )))
    }
}

fn categories(d: &Directory, v: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for c in v {
        if !d.has_category(c) {
            return Err(ApiError::unprocessable(format!(
                "categories: no social category {c:?} (see GET /api/v1/case-codes)"
            )));
        }
        if !out.contains(c) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

fn flags(d: &Directory, v: &[Flag]) -> Result<Vec<Flag>, ApiError> {
    for f in v {
        if !d.has_flag(&f.flag) {
            return Err(ApiError::unprocessable(format!(
                "flags: no flag {:?} (see GET /api/v1/case-codes)",
                f.flag
            )));
        }
    }
    Ok(v.to_vec())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCitizen {
    name: String,
    #[serde(default)]
    phones: Vec<String>,
    address: Option<String>,
    district: Option<String>,
    birth_year: Option<i32>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    flags: Vec<Flag>,
    #[serde(default)]
    consent: bool,
    notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    version: Option<i64>,
    name: Option<String>,
    phones: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    address: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    district: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    birth_year: Option<Option<i32>>,
    categories: Option<Vec<String>>,
    flags: Option<Vec<Flag>>,
    consent: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    notes: Option<Option<String>>,
}

fn citizen_id(p: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Uuid::parse_str(&id).map_err(|_| ApiError::bad_request(format!("{id:?} is not a citizen id")))
}

/// Citizen fields whose old and new values go into the audit log; the others (name,
/// numbers, address, birth year, categories, flags, notes) are recorded as changed only.
const CITIZEN_FIELDS_SHOWN: &[&str] = &["district", "consent"];

/// `POST /api/v1/citizens`: 201 with the card.
pub async fn create(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let n: NewCitizen = json_body(&b)?;
    let d = s.directory.get();
    let fields = CitizenFields {
        name: line_text("name", &n.name, MAX_NAME)?,
        phones: phones(&n.phones)?,
        address: n
            .address
            .map(|a| line_text("address", &a, MAX_ADDRESS))
            .transpose()?,
        district: n
            .district
            .map(|x| district(&d, "district", &x))
            .transpose()?,
        birth_year: n.birth_year.map(birth_year).transpose()?,
        categories: categories(&d, &n.categories)?,
        flags: flags(&d, &n.flags)?,
        consent: n.consent.then(|| Consent {
            by: actor.clone(),
            at: Utc::now(),
        }),
        notes: n
            .notes
            .map(|x| long_text("notes", &x, MAX_NOTES))
            .transpose()?,
    };
    let c = s.store()?.create_citizen(&fields).await?;
    let made = audit::changes(
        &Value::Null,
        &serde_json::to_value(&c).unwrap_or_default(),
        CITIZEN_FIELDS_SHOWN,
    );
    s.audit(who.audit("citizen_created", Some(c.id.to_string()), made.into()))
        .await;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    q: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    page: Option<u64>,
    per_page: Option<u32>,
}

/// Longest free-text query, in characters.
const MAX_Q: usize = 200;

/// `GET /api/v1/citizens[?q=…&name=…&phone=…]`: cards by name, paged like the appeals.
/// `q` is free text: every word, as a word's beginning in any case (ё = е), in the name,
/// address or notes («иван» finds «Иванова»); `name` is contained in the name as written;
/// `phone` is one of the card's numbers in any form. A bad `q` is 422 naming it.
pub async fn list(
    State(s): State<AdminState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let paging = Paging::of(q.page, q.per_page)?;
    let text = match given(&q.q) {
        Some(t) if t.chars().count() > MAX_Q || appeals::search_terms(&t).is_empty() => {
            return Err(ApiError::invalid(
                "q",
                format!("q: 1 to {MAX_Q} characters with at least one word (letters or digits)"),
            ))
        }
        other => other,
    };
    let filter = CitizenFilter {
        name: given(&q.name),
        phone: given(&q.phone),
        text,
    };
    let found = s.store()?.search_citizens(&filter, paging.store()).await?;
    Ok(Json(paging.answer("citizens", json!(found), None, json!({}))).into_response())
}

/// The card with its appeals, newest first (the latest [`Page::MAX_LIMIT`]).
async fn with_appeals(s: &AdminState, c: Citizen) -> Result<Response, ApiError> {
    let appeals = s
        .store()?
        .citizen_appeals(
            c.id,
            Page {
                offset: 0,
                limit: Page::MAX_LIMIT,
            },
        )
        .await?;
    let mut v = serde_json::to_value(&c)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    v["appeals"] = json!(appeals);
    Ok(Json(v).into_response())
}

/// `GET /api/v1/citizens/{id}`.
pub async fn one(
    State(s): State<AdminState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = citizen_id(id)?;
    match s.store()?.citizen(id).await? {
        Some(c) => with_appeals(&s, c).await,
        None => Err(ApiError::not_found(format!("no citizen {id}"))),
    }
}

/// `PATCH /api/v1/citizens/{id}`: the fields given change (`null` clears one); `version`
/// is required (422 naming it when missing).
pub async fn update(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    b: Bytes,
) -> Result<Response, ApiError> {
    let id = citizen_id(id)?;
    let c: Change = json_body(&b)?;
    let version = super::required_version(c.version, &format!("/api/v1/citizens/{id}"))?;
    let d = s.directory.get();
    let store = s.store()?;
    let Some(current) = store.citizen(id).await? else {
        return Err(ApiError::not_found(format!("no citizen {id}")));
    };
    let consent = match c.consent {
        None => None,
        Some(false) => Some(None),
        // already given: who and when stay as first recorded
        Some(true) if current.card.consent.is_some() => None,
        Some(true) => Some(Some(Consent {
            by: actor.clone(),
            at: Utc::now(),
        })),
    };
    let patch = CitizenPatch {
        name: c
            .name
            .map(|n| line_text("name", &n, MAX_NAME))
            .transpose()?,
        phones: c.phones.map(|p| phones(&p)).transpose()?,
        address: c
            .address
            .map(|a| a.map(|a| line_text("address", &a, MAX_ADDRESS)).transpose())
            .transpose()?,
        district: c
            .district
            .map(|x| x.map(|x| district(&d, "district", &x)).transpose())
            .transpose()?,
        birth_year: c
            .birth_year
            .map(|y| y.map(birth_year).transpose())
            .transpose()?,
        categories: c.categories.map(|v| categories(&d, &v)).transpose()?,
        flags: c.flags.map(|v| flags(&d, &v)).transpose()?,
        consent,
        notes: c
            .notes
            .map(|n| n.map(|n| long_text("notes", &n, MAX_NOTES)).transpose())
            .transpose()?,
    };
    let updated = store.update_citizen(id, version, &patch).await?;
    let changed = audit::changes(
        &serde_json::to_value(&current).unwrap_or_default(),
        &serde_json::to_value(&updated).unwrap_or_default(),
        CITIZEN_FIELDS_SHOWN,
    );
    if !changed.is_empty() {
        s.audit(who.audit("citizen_changed", Some(id.to_string()), changed.into()))
            .await;
    }
    with_appeals(&s, updated).await
}
