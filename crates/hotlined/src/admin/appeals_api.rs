//! `/api/v1/appeals…` and `/api/v1/reports/daily`.
//!
//! The follow-up workflow a PATCH may move an appeal along is [`Status::can_become`]:
//! `new → in_progress | declined`; `in_progress → forwarded | pending | done | declined`;
//! `forwarded → in_progress` (returned) `| pending | done | declined`; `pending →
//! in_progress | forwarded | done | declined`; `done | declined → in_progress` (reopened).
//! Setting the status an appeal already has changes nothing and is not recorded. Anything
//! else is refused with 409 naming what is allowed; a status that does not exist is 422.
//!
//! The case fields (issue 12): citizen, service, address, district, destination
//! organisation, assignee, due date, pending date, disposition, resolution. Ids are checked
//! against the directory (422 naming the field). When a service is set its due date follows
//! (arrival + the service's days) unless one is given; the destination organisation is
//! suggested from the service and the district while none is set; a citizen brings their
//! address and district to an appeal that has none. A PATCH names the `version` it was made
//! on (required: 422 naming `version` without one): a changed appeal is 409 and nothing is
//! written.

use appeals::{AppealId, Status, Total};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::access::Caller;
use super::citizens_api::{district, line_text, long_text, nullable};
use super::listing::{self, AppealQuery, Paging};
use super::{export, json_body, query_error, Actor, AdminState, ApiError};
use crate::web::chrome::Lang;

/// The statuses an appeal in `from` may move to, for messages.
pub(super) fn allowed_next(from: Status) -> String {
    from.moves()
        .map(Status::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statuses, for messages.
fn status_names() -> String {
    Status::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Longest notes accepted, in characters.
const MAX_NOTES: usize = 10_000;
/// Longest destination organisation accepted, in characters.
const MAX_ORG: usize = 200;

pub(super) fn path_id(p: Result<Path<String>, PathRejection>) -> Result<AppealId, ApiError> {
    let Path(id) = p.map_err(|e| ApiError::bad_request(e.body_text()))?;
    id.parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not an appeal id")))
}

/// `None` for an absent or empty parameter.
fn given(v: Option<String>) -> Option<String> {
    listing::given(&v)
}

/// An instant from RFC 3339 (`2026-11-23T10:00:00+07:00`), or a day (`2026-11-23`) at the
/// report offset: its start for `from`, the start of the next day for `to`, so `to=DAY`
/// includes that day.
pub(super) fn instant(
    name: &str,
    s: &str,
    tz: FixedOffset,
    end: bool,
) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        ApiError::bad_request(format!(
            "{name}={s:?}: expected YYYY-MM-DD or an RFC 3339 time"
        ))
    })?;
    let (start, next) = appeals::report::day_bounds(day, tz);
    Ok(if end { next } else { start })
}

/// 403 unless the caller may see every appeal, or this one is theirs: an operator's when
/// they handled it, an organisation's when it is the appeal's destination organisation.
pub(crate) fn may_see(who: &Caller, a: &appeals::Appeal) -> Result<(), ApiError> {
    if who.sees_all() {
        return Ok(());
    }
    let (mine, whose) = match who.role {
        appeals::Role::Organisation => (
            who.organisation_id.is_some() && a.case.organisation == who.organisation_id,
            "an organisation sees the applications routed to it",
        ),
        _ => (
            a.operator.as_deref() == Some(who.id.as_str()),
            "an operator sees the appeals they handled",
        ),
    };
    if mine {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "appeal {} is not yours: {whose}",
            a.id
        )))
    }
}

/// The fields of the appeal PATCH an organisation may send: the status of its work, the
/// resolution and a comment (the notes), with the version.
const ORGANISATION_MAY_CHANGE: &str = "status (in_progress, done, declined), resolution, notes";

/// The statuses an organisation may set on an application routed to it.
const ORGANISATION_STATUSES: &[Status] = &[Status::InProgress, Status::Done, Status::Declined];

/// Appeal fields whose old and new values go into the audit log; the others (notes,
/// address, resolution: personal data) are recorded as changed, without their text.
const APPEAL_FIELDS_SHOWN: &[&str] = &[
    "status",
    "destination_org",
    "citizen_id",
    "service",
    "district",
    "organisation",
    "assignee",
    "due_at",
    "pending_until",
    "disposition",
];

/// The appeal, when the caller may see it (404 / 403 otherwise).
async fn visible(
    s: &AdminState,
    who: &Caller,
    id: AppealId,
) -> Result<appeals::AppealWithEvents, ApiError> {
    match s.store()?.get(id).await? {
        Some(a) => {
            may_see(who, &a.appeal)?;
            Ok(a)
        }
        None => Err(ApiError::not_found(format!("no appeal {id}"))),
    }
}

/// `GET /api/v1/appeals`: newest first, paged (`page` from 1, `per_page` 1–1000, default 50),
/// with `total` counted up to [`Total::cap_for`] the page (`total_exact: false`: more);
/// filters (see [`AppealQuery`]): `q` (free text), `from`, `to`, `line`, `category`,
/// `status`, `caller` (digits), `service`, `district`, `organisation`, `assignee`,
/// `operator`, `citizen_id` and `overdue=true`. A bad filter value is 422 naming the field.
/// An operator gets the appeals they handled, an organisation the applications routed to
/// it. `format=csv|xlsx` (with `lang=ru|en`) exports every appeal found instead (at most
/// [`export::EXPORT_MAX`], else 422), audited.
pub async fn list(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    q: Result<Query<AppealQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let d = s.directory.get();
    let tz = s.reports.tz;
    let filter = q.filter(&who, &d, tz)?;
    let export = match given(q.format.clone()).as_deref() {
        None | Some("json") => None,
        Some("csv") => Some(export::Format::Csv),
        Some("xlsx") => Some(export::Format::Xlsx),
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("format: {other:?} is not json, csv or xlsx"),
            ))
        }
    };
    let lang = match given(q.lang.clone()).as_deref() {
        None | Some("ru") => Lang::Ru,
        Some("en") => Lang::En,
        Some(other) => {
            return Err(ApiError::invalid(
                "lang",
                format!("lang: {other:?} is not ru or en"),
            ))
        }
    };
    let Some(format) = export else {
        let store = s.store()?;
        let paging = Paging::of(q.page, q.per_page)?;
        let page = paging.store();
        let total = store.count_at_most(&filter, Total::cap_for(page)).await?;
        let appeals = store.search(&filter, page).await?;
        return Ok(Json(paging.answer(
            "appeals",
            json!(appeals),
            Some(total.count),
            json!({ "total_exact": total.exact }),
        ))
        .into_response());
    };
    export::appeals(
        &s,
        &who,
        "appeals",
        &filter,
        q.filters_given(),
        format,
        lang,
    )
    .await
}

/// `GET /api/v1/appeals/{id}`: the appeal with its timeline.
pub async fn one(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    Ok(Json(visible(&s, &who, id).await?).into_response())
}

/// `GET /api/v1/appeals/{id}/recording`: the appeal's recording (or message) as WAV; 404
/// when it has none or the file is gone (retention). Every fetch is in the audit log.
pub async fn recording(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let a = visible(&s, &who, id).await?.appeal;
    let Some(file) = a.recording else {
        return Err(ApiError::not_found(format!("appeal {id} has no recording")));
    };
    let path = std::path::Path::new(&file);
    let path = if path.is_absolute() || path.exists() {
        path.to_path_buf()
    } else {
        s.access.recordings_dir.join(path)
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found(format!("the recording of appeal {id} is gone")))?;
    s.audit(who.audit(
        "recording_fetched",
        Some(id.to_string()),
        json!({ "bytes": bytes.len() }),
    ))
    .await;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], bytes).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    version: Option<i64>,
    status: Option<String>,
    notes: Option<String>,
    destination_org: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    citizen_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    service: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    address: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    district: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    organisation: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    assignee: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    due_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pending_until: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    disposition: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    resolution: Option<Option<String>>,
}

impl Change {
    fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.notes.is_none()
            && self.destination_org.is_none()
            && self.citizen_id.is_none()
            && self.service.is_none()
            && self.address.is_none()
            && self.district.is_none()
            && self.organisation.is_none()
            && self.assignee.is_none()
            && self.due_at.is_none()
            && self.pending_until.is_none()
            && self.disposition.is_none()
            && self.resolution.is_none()
    }
}

/// 403 naming the first field of `c` an organisation may not change, or a status it may
/// not set.
fn organisation_may(c: &Change) -> Result<(), ApiError> {
    let others = [
        ("destination_org", c.destination_org.is_some()),
        ("citizen_id", c.citizen_id.is_some()),
        ("service", c.service.is_some()),
        ("address", c.address.is_some()),
        ("district", c.district.is_some()),
        ("organisation", c.organisation.is_some()),
        ("assignee", c.assignee.is_some()),
        ("due_at", c.due_at.is_some()),
        ("pending_until", c.pending_until.is_some()),
        ("disposition", c.disposition.is_some()),
    ];
    if let Some((field, _)) = others.iter().find(|(_, given)| *given) {
        return Err(ApiError::forbidden(format!(
            "{field}: an organisation may change only {ORGANISATION_MAY_CHANGE}"
        )));
    }
    if let Some(v) = &c.status {
        if !ORGANISATION_STATUSES.iter().any(|s| s.as_str() == v) {
            return Err(ApiError::forbidden(format!(
                "status {v:?}: an organisation may set only in_progress, done or declined"
            )));
        }
    }
    Ok(())
}

/// Longest login accepted as an assignee.
const MAX_LOGIN: usize = 64;
/// Longest address accepted.
const MAX_ADDRESS: usize = 500;

/// Checks `f` on the value of a nullable field (`None` absent, `Some(None)` cleared).
fn each<T, U>(
    v: Option<Option<T>>,
    f: impl FnOnce(T) -> Result<U, ApiError>,
) -> Result<Option<Option<U>>, ApiError> {
    v.map(|v| v.map(f).transpose()).transpose()
}

/// `PATCH /api/v1/appeals/{id}`: status, notes, destination organisation (free text) and
/// the case fields (see the module docs). Each change is recorded on the timeline with the
/// actor; the answer is the appeal as it now stands.
pub async fn update(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let c: Change = json_body(&body)?;
    if c.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to change: give status, notes, destination_org or a case field",
        ));
    }
    let version = super::required_version(c.version, &format!("/api/v1/appeals/{id}"))?;
    if who.role == appeals::Role::Organisation {
        organisation_may(&c)?;
    }
    let tz = s.reports.tz;
    let d = s.directory.get();
    let store = s.store()?;
    let status = match &c.status {
        None => None,
        Some(v) => Some(v.parse::<Status>().map_err(|_| {
            ApiError::unprocessable(format!("status {v:?} does not exist: {}", status_names()))
        })?),
    };
    if let Some(n) = &c.notes {
        long_text("notes", n, MAX_NOTES)?;
    }
    let org_text = c.destination_org.as_deref().map(str::trim);
    if let Some(o) = org_text {
        if o.is_empty() || o.chars().count() > MAX_ORG || o.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(format!(
                "destination_org must be 1 to {MAX_ORG} characters on one line"
            )));
        }
    }
    let citizen_id = each(c.citizen_id, |v| {
        uuid::Uuid::parse_str(&v)
            .map_err(|_| ApiError::unprocessable(format!("citizen_id: {v:?} is not a citizen id")))
    })?;
    let citizen = match citizen_id {
        Some(Some(cid)) => match store.citizen(cid).await? {
            Some(c) => Some(c),
            None => {
                return Err(ApiError::unprocessable(format!(
                    "citizen_id: no citizen {cid}"
                )))
            }
        },
        _ => None,
    };
    let service = each(c.service, |v| match d.service(&v) {
        Some(x) => Ok(x.clone()),
        None => Err(ApiError::unprocessable(format!(
            "service: no service {v:?} (see GET /api/v1/services)"
        ))),
    })?;
    let mut address = each(c.address, |v| line_text("address", &v, MAX_ADDRESS))?;
    let mut district_id = each(c.district, |v| district(&d, "district", &v))?;
    let mut organisation = each(c.organisation, |v| match d.organisation(&v) {
        Some(x) => Ok(x.id.clone()),
        None => Err(ApiError::unprocessable(format!(
            "organisation: no organisation {v:?} (see GET /api/v1/organisations)"
        ))),
    })?;
    let assignee = each(c.assignee, |v| line_text("assignee", &v, MAX_LOGIN))?;
    let mut due_at = each(c.due_at, |v| instant_422("due_at", &v, tz, true))?;
    let pending_until = each(c.pending_until, |v| {
        instant_422("pending_until", &v, tz, true)
    })?;
    let disposition = each(c.disposition, |v| {
        if d.has_disposition(&v) {
            Ok(v)
        } else {
            Err(ApiError::unprocessable(format!(
                "disposition: no disposition {v:?} (see GET /api/v1/case-codes)"
            )))
        }
    })?;
    let resolution = each(c.resolution, |v| long_text("resolution", &v, MAX_NOTES))?;

    let _one_at_a_time = s.patch_lock.lock().await;
    let Some(current) = store.get(id).await? else {
        return Err(ApiError::not_found(format!("no appeal {id}")));
    };
    let cur = &current.appeal;
    may_see(&who, cur)?;
    // A citizen — picked now, or linked by the caller's number — brings their address and
    // district to an appeal that has none.
    let citizen = match (citizen, citizen_id, cur.case.citizen_id) {
        (Some(c), _, _) => Some(c),
        (None, None, Some(linked)) if cur.case.address.is_none() || cur.case.district.is_none() => {
            store.citizen(linked).await?
        }
        _ => None,
    };
    if let Some(citizen) = &citizen {
        if address.is_none() && cur.case.address.is_none() && citizen.card.address.is_some() {
            address = Some(citizen.card.address.clone());
        }
        if district_id.is_none() && cur.case.district.is_none() && citizen.card.district.is_some() {
            district_id = Some(citizen.card.district.clone());
        }
    }
    // A new service sets the due date (arrival + its days) unless one is given.
    if let Some(Some(svc)) = &service {
        if due_at.is_none() && cur.case.service.as_deref() != Some(svc.id.as_str()) {
            due_at = Some(Some(
                cur.arrived_at + chrono::Duration::days(i64::from(svc.days)),
            ));
        }
    }
    // The destination is suggested from the service and the district while none is set.
    if organisation.is_none() && cur.case.organisation.is_none() {
        let svc = match &service {
            Some(v) => v.as_ref().map(|x| x.id.clone()),
            None => cur.case.service.clone(),
        };
        let dist = match &district_id {
            Some(v) => v.clone(),
            None => cur.case.district.clone(),
        };
        if let Some(o) = svc.and_then(|svc| d.suggest(&svc, dist.as_deref())) {
            organisation = Some(Some(o.id.clone()));
        }
    }
    // Pending needs a date in the future to be pending until.
    if status == Some(Status::Pending) && status != Some(cur.status) {
        let until = match &pending_until {
            Some(v) => *v,
            None => cur.case.pending_until,
        };
        if until.is_none_or(|u| u <= Utc::now()) {
            return Err(ApiError::unprocessable(
                "pending_until: a pending appeal needs a date in the future",
            ));
        }
    }
    let change = appeals::CaseChange {
        status,
        notes: c.notes,
        destination_org: org_text.map(str::to_owned),
        citizen_id,
        service: service.map(|v| v.map(|x| x.id)),
        address,
        district: district_id,
        organisation,
        assignee,
        due_at,
        pending_until,
        disposition,
        resolution,
    };
    let updated = store
        .update_case(id, Some(version), &change, &actor)
        .await?;
    let changed = super::audit::changes(
        &serde_json::to_value(cur).unwrap_or_default(),
        &serde_json::to_value(&updated.appeal).unwrap_or_default(),
        APPEAL_FIELDS_SHOWN,
    );
    if !changed.is_empty() {
        s.audit(who.audit("appeal_changed", Some(id.to_string()), changed.into()))
            .await;
    }
    // A change may have queued a message for the partner (the new status of an appeal
    // from the partner; what changed on one we forwarded): send it now. A wake with nothing
    // queued costs the sender one query.
    if let Some(link) = &s.partner {
        link.wake.notify_one();
    }
    // the disposition a held operator waited for: they take calls again
    if updated.appeal.case.disposition.is_some() {
        crate::disposition_hold::release(&s, &s.holds, id).await;
    }
    Ok(Json(updated).into_response())
}

/// [`instant`] for a body field: 422 naming it.
fn instant_422(name: &str, s: &str, tz: FixedOffset, end: bool) -> Result<DateTime<Utc>, ApiError> {
    instant(name, s, tz, end).map_err(|_| {
        ApiError::unprocessable(format!(
            "{name}: {s:?} is not YYYY-MM-DD or an RFC 3339 time"
        ))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForwardBody {
    note: Option<String>,
    destination_org: Option<String>,
}

/// `POST /api/v1/appeals/{id}/forward` (body `{ "note", "destination_org" }`, both
/// optional; an empty body is no note): sends the appeal to the partner centre. It becomes
/// `forwarded` at once — from `new` or `in_progress`, once per appeal, otherwise 409 — with
/// a `forwarded` event; the message waits in the outbox until the partner accepts it, which
/// the timeline records as a `partner_update` event and the partner's reference in
/// `partner_ref`. 202 with the appeal and the message's idempotency key; 409 when no
/// partner is configured.
pub async fn forward(
    State(s): State<AdminState>,
    Extension(Actor(actor)): Extension<Actor>,
    Extension(who): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    if !who.sees_all() {
        visible(&s, &who, id).await?;
    }
    let Some(link) = &s.partner else {
        return Err(ApiError::conflict(
            "no partner configured: add a [partner] section to forward appeals",
        ));
    };
    let body: ForwardBody = if body.iter().all(u8::is_ascii_whitespace) {
        ForwardBody::default()
    } else {
        json_body(&body)?
    };
    if let Some(n) = &body.note {
        if n.chars().count() > MAX_NOTES {
            return Err(ApiError::unprocessable(format!(
                "note is longer than {MAX_NOTES} characters"
            )));
        }
    }
    let org = given(body.destination_org);
    if let Some(o) = &org {
        if o.chars().count() > MAX_ORG || o.chars().any(char::is_control) {
            return Err(ApiError::unprocessable(format!(
                "destination_org must be 1 to {MAX_ORG} characters on one line"
            )));
        }
    }
    let store = s.store()?;
    let org_audit = org.clone();
    let key = {
        let _one_at_a_time = s.patch_lock.lock().await;
        store
            .forward(
                id,
                &appeals::ForwardOrder {
                    note: given(body.note),
                    destination_org: org,
                    actor,
                },
            )
            .await?
    };
    link.wake.notify_one();
    s.audit(who.audit(
        "appeal_forwarded",
        Some(id.to_string()),
        json!({ "idempotency_key": key, "destination_org": org_audit }),
    ))
    .await;
    match store.get(id).await? {
        Some(a) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "idempotency_key": key, "appeal": a })),
        )
            .into_response()),
        None => Err(ApiError::not_found(format!("no appeal {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbacksQuery {
    status: Option<String>,
}

/// `GET /api/v1/callbacks`: booked callbacks, oldest request first, optionally only those
/// with `status` (`pending`, `dialling`, `done`, `failed`, `cancelled`): the number, queue,
/// attempts so far, the operator and result of the last attempt, and when it ended.
pub async fn callbacks(
    State(s): State<AdminState>,
    q: Result<Query<CallbacksQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let status = match given(q.status) {
        None => None,
        Some(v) => Some(v.parse::<appeals::CallbackStatus>().map_err(|_| {
            ApiError::bad_request(format!(
                "status={v:?}: expected pending, dialling, done, failed or cancelled"
            ))
        })?),
    };
    let callbacks = s.store()?.callbacks(status).await?;
    Ok(Json(json!({ "callbacks": callbacks })).into_response())
}
