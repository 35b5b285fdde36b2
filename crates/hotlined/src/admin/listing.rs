//! What the list endpoints share: paging (`page` from 1, `per_page` 1–1000, default 50) and
//! the appeal list's query — filters, free text, who sees what — which `GET
//! /api/v1/appeals` pages and exports ([`super::export`]) and the worklists page.
//!
//! Every bad filter value is 422 naming the field (`{"error", "field"}`); paging out of
//! range and unknown parameters are 400.

use appeals::{Page, SearchFilter, Status};
use chrono::{FixedOffset, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::Caller;
use super::appeals_api::instant;
use super::ApiError;
use crate::directory::Directory;

/// Default page size.
const PER_PAGE: u32 = 50;
/// Longest free-text query, in characters.
const MAX_Q: usize = 200;
/// Longest line, login or other exact-match value, in characters.
const MAX_VALUE: usize = 100;

/// A page of a list, as asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Paging {
    /// From 1.
    pub page: u64,
    pub per_page: u32,
}

impl Paging {
    /// `page` and `per_page` as given (defaults 1 and 50); 400 when out of range.
    pub fn of(page: Option<u64>, per_page: Option<u32>) -> Result<Self, ApiError> {
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(PER_PAGE);
        if page == 0 {
            return Err(ApiError::bad_request("page counts from 1"));
        }
        if !(1..=Page::MAX_LIMIT).contains(&per_page) {
            return Err(ApiError::bad_request(format!(
                "per_page must be 1 to {}",
                Page::MAX_LIMIT
            )));
        }
        Ok(Self { page, per_page })
    }

    /// The store's page.
    pub fn store(&self) -> Page {
        Page {
            offset: (self.page - 1).saturating_mul(u64::from(self.per_page)),
            limit: self.per_page,
        }
    }

    /// The answer: `{ key: items, "page", "per_page" }`, with `"total"` and `"pages"` when
    /// the total is known, plus `extra`'s fields.
    pub fn answer(&self, key: &str, items: Value, total: Option<u64>, extra: Value) -> Value {
        let mut v = json!({ key: items, "page": self.page, "per_page": self.per_page });
        if let Some(total) = total {
            v["total"] = json!(total);
            v["pages"] = json!(total.div_ceil(u64::from(self.per_page)));
        }
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    }
}

/// The query of `GET /api/v1/appeals`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealQuery {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    line: Option<String>,
    category: Option<String>,
    status: Option<String>,
    caller: Option<String>,
    service: Option<String>,
    district: Option<String>,
    organisation: Option<String>,
    assignee: Option<String>,
    operator: Option<String>,
    citizen_id: Option<String>,
    overdue: Option<String>,
    pub(super) page: Option<u64>,
    pub(super) per_page: Option<u32>,
    /// `json` (default), `csv` or `xlsx`.
    pub(super) format: Option<String>,
    /// Column headings and labels of an export: `ru` (default) or `en`.
    pub(super) lang: Option<String>,
}

/// `None` for an absent or empty parameter.
pub(super) fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One line of at most [`MAX_VALUE`] characters; 422 naming `field`.
fn value(field: &'static str, v: &Option<String>) -> Result<Option<String>, ApiError> {
    match given(v) {
        Some(s) if s.chars().count() > MAX_VALUE || s.chars().any(char::is_control) => {
            Err(ApiError::invalid(
                field,
                format!("{field}: at most {MAX_VALUE} characters on one line"),
            ))
        }
        other => Ok(other),
    }
}

/// A directory id that `known` finds; 422 naming `field` and where the ids are listed.
fn known(
    field: &'static str,
    v: &Option<String>,
    what: &str,
    list: &str,
    known: impl Fn(&str) -> bool,
) -> Result<Option<String>, ApiError> {
    match value(field, v)? {
        Some(id) if !known(&id) => Err(ApiError::invalid(
            field,
            format!("{field}: no {what} {id:?} (see GET /api/v1/{list})"),
        )),
        other => Ok(other),
    }
}

impl AppealQuery {
    /// The filter this query asks for, as `who` may have it: an operator gets the appeals
    /// they handled (another `operator` is 403) and their free text also looks in the
    /// citizens' cards; an organisation gets the applications routed to it (another
    /// `organisation` is 403) and its free text looks only in the appeals, never in cards
    /// it may not see. Dates are days at `tz` or RFC 3339 times.
    pub fn filter(
        &self,
        who: &Caller,
        d: &Directory,
        tz: FixedOffset,
    ) -> Result<SearchFilter, ApiError> {
        let date = |field: &'static str, v: &Option<String>, end: bool| {
            given(v)
                .map(|s| {
                    instant(field, &s, tz, end).map_err(|_| {
                        ApiError::invalid(
                            field,
                            format!("{field}: {s:?} is not YYYY-MM-DD or an RFC 3339 time"),
                        )
                    })
                })
                .transpose()
        };
        let from = date("from", &self.from, false)?;
        let to = date("to", &self.to, true)?;
        if let (Some(f), Some(t)) = (from, to) {
            if t <= f {
                return Err(ApiError::invalid("to", "to: must be after from"));
            }
        }
        let status = match given(&self.status) {
            None => None,
            Some(v) => Some(v.parse::<Status>().map_err(|_| {
                let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                ApiError::invalid(
                    "status",
                    format!("status: {v:?} is not one of {}", names.join(", ")),
                )
            })?),
        };
        let caller = match given(&self.caller) {
            Some(c) if !c.chars().all(|c| c.is_ascii_digit()) || c.len() > 20 => {
                return Err(ApiError::invalid(
                    "caller",
                    "caller: the digits of the number (1 to 20)",
                ))
            }
            other => other,
        };
        let citizen_id = given(&self.citizen_id)
            .map(|v| {
                uuid::Uuid::parse_str(&v).map_err(|_| {
                    ApiError::invalid(
                        "citizen_id",
                        format!("citizen_id: {v:?} is not a citizen id"),
                    )
                })
            })
            .transpose()?;
        let overdue = match given(&self.overdue).as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(ApiError::invalid(
                    "overdue",
                    format!("overdue: {v:?} is not true or false"),
                ))
            }
        };
        let text = match given(&self.q) {
            None => None,
            Some(q) if q.chars().count() > MAX_Q => {
                return Err(ApiError::invalid(
                    "q",
                    format!("q: at most {MAX_Q} characters"),
                ))
            }
            Some(q) if appeals::search_terms(&q).is_empty() => {
                return Err(ApiError::invalid(
                    "q",
                    "q: give at least one word (letters or digits)",
                ))
            }
            Some(q) => Some(q),
        };
        let mut f = SearchFilter {
            from,
            to,
            line: value("line", &self.line)?,
            category: value("category", &self.category)?,
            status,
            caller,
            service: known("service", &self.service, "service", "services", |v| {
                d.service(v).is_some()
            })?,
            district: known("district", &self.district, "district", "districts", |v| {
                d.district(v).is_some()
            })?,
            organisation: known(
                "organisation",
                &self.organisation,
                "organisation",
                "organisations",
                |v| d.organisation(v).is_some(),
            )?,
            assignee: value("assignee", &self.assignee)?,
            citizen_id,
            overdue_at: overdue.then(Utc::now),
            operator: value("operator", &self.operator)?,
            text,
            text_in_citizens: true,
        };
        if !who.sees_all() {
            match who.role {
                appeals::Role::Organisation => {
                    let own = who.organisation_id.clone().ok_or_else(|| {
                        ApiError::forbidden("this organisation account names no organisation")
                    })?;
                    if f.organisation.as_ref().is_some_and(|o| *o != own) {
                        return Err(ApiError::forbidden(
                            "an organisation sees only the applications routed to it",
                        ));
                    }
                    f.organisation = Some(own);
                    f.text_in_citizens = false;
                }
                _ => {
                    if f.operator.as_ref().is_some_and(|o| *o != who.id) {
                        return Err(ApiError::forbidden(
                            "an operator sees only the appeals they handled",
                        ));
                    }
                    f.operator = Some(who.id.clone());
                }
            }
        }
        Ok(f)
    }

    /// The names of the filters given (for the audit log: which, never their values).
    pub fn filters_given(&self) -> Vec<&'static str> {
        [
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
            ("line", &self.line),
            ("category", &self.category),
            ("status", &self.status),
            ("caller", &self.caller),
            ("service", &self.service),
            ("district", &self.district),
            ("organisation", &self.organisation),
            ("assignee", &self.assignee),
            ("operator", &self.operator),
            ("citizen_id", &self.citizen_id),
            ("overdue", &self.overdue),
        ]
        .into_iter()
        .filter(|(_, v)| given(v).is_some())
        .map(|(k, _)| k)
        .collect()
    }
}
