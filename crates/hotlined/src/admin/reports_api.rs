//! The call reports over the API: `GET /api/v1/reports` (a day, an ISO week or a calendar
//! month) and `GET /api/v1/reports/daily` (one day, the day's JSON shape). CSV and HTML are
//! in Russian unless `lang=en`; each such export is an audit line.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::json;

use super::access::Caller;
use super::{query_error, AdminState, ApiError};
use crate::accounts::FieldError;
use crate::report::{self, Format, Lang, Range};

fn given(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

fn wrong(field: &'static str, message: String) -> ApiError {
    ApiError::field(FieldError { field, message })
}

/// The query of both report routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    day: Option<String>,
    range: Option<String>,
    format: Option<String>,
    lang: Option<String>,
}

/// What a report query asks for, checked: 422 naming the field that is wrong.
struct Asked {
    day: NaiveDate,
    range: Range,
    format: Format,
    lang: Lang,
}

impl Asked {
    fn of(q: ReportQuery, s: &AdminState, headers: &HeaderMap) -> Result<Asked, ApiError> {
        let day = match given(q.day) {
            None => Utc::now().with_timezone(&s.reports.tz).date_naive(),
            Some(d) => NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| wrong("day", format!("day={d:?}: expected YYYY-MM-DD")))?,
        };
        let range = match given(q.range) {
            None => Range::Day,
            Some(r) => Range::parse(&r).ok_or_else(|| {
                wrong("range", format!("range={r:?}: expected day, week or month"))
            })?,
        };
        let lang = match given(q.lang) {
            None => Lang::Ru,
            Some(l) => Lang::parse(&l)
                .ok_or_else(|| wrong("lang", format!("lang={l:?}: expected ru or en")))?,
        };
        let format = match given(q.format).as_deref() {
            Some("json") => Format::Json,
            Some("csv") => Format::Csv,
            Some("html") => Format::Html,
            Some(other) => {
                return Err(wrong(
                    "format",
                    format!("format={other:?}: expected json, csv or html"),
                ))
            }
            None => {
                let wants_csv = headers
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| v.to_ascii_lowercase().contains("text/csv"));
                if wants_csv {
                    Format::Csv
                } else {
                    Format::Json
                }
            }
        };
        Ok(Asked {
            day,
            range,
            format,
            lang,
        })
    }
}

/// Makes the report asked for; CSV and HTML exports are audited.
async fn made(
    s: &AdminState,
    who: &Caller,
    a: &Asked,
    what: &str,
) -> Result<report::PeriodReport, ApiError> {
    let store = s.store()?;
    let (from, to) = a.range.bounds(a.day);
    if !matches!(a.format, Format::Json) {
        let format = if matches!(a.format, Format::Csv) {
            "csv"
        } else {
            "html"
        };
        s.audit(who.audit(
            "export",
            None,
            json!({ "what": what, "day": a.day, "range": a.range.code(), "from": from, "to": to, "format": format }),
        ))
        .await;
    }
    report::build(store, from, to, s.reports.tz, &s.reports.options)
        .await
        .map_err(|e| match e {
            report::ReportError::Store(e) => ApiError::from(e),
            other => ApiError::bad_request(other.to_string()),
        })
}

/// The report as CSV or HTML in the language asked for.
fn exported(s: &AdminState, r: &report::PeriodReport, a: &Asked) -> Response {
    let names = crate::web::names::Names::of(s);
    let (kind, format) = match a.format {
        Format::Csv => ("text/csv; charset=utf-8", Format::Csv),
        _ => ("text/html; charset=utf-8", Format::Html),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            // the HTML report styles itself inline: its own policy allows that and no more
            (header::CONTENT_SECURITY_POLICY, super::headers::REPORT_CSP),
        ],
        report::render(r, format, a.lang, &names),
    )
        .into_response()
}

/// `GET /api/v1/reports?range=day|week|month&day=YYYY-MM-DD[&format=json|csv|html][&lang=ru|en]`:
/// the period of `range` holding `day` (today at `reports.timezone` by default): the whole
/// period's figures and each day's. Without `format`, `Accept: text/csv` gives CSV and
/// anything else JSON.
pub async fn period(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let a = Asked::of(q, &s, &headers)?;
    let r = made(&s, &who, &a, "report").await?;
    Ok(match a.format {
        Format::Json => Json(json!({ "range": a.range.code(), "report": r })).into_response(),
        _ => exported(&s, &r, &a),
    })
}

/// `GET /api/v1/reports/daily?day=YYYY-MM-DD[&format=json|csv|html][&lang=ru|en]`: one day's
/// figures (today at `reports.timezone` by default), as the day's JSON; `range` other than
/// `day` is refused here (`GET /api/v1/reports` takes it).
pub async fn daily(
    State(s): State<AdminState>,
    Extension(who): Extension<Caller>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = q.map_err(query_error)?;
    let a = Asked::of(q, &s, &headers)?;
    if a.range != Range::Day {
        return Err(wrong(
            "range",
            "the daily report covers one day: ask GET /api/v1/reports for a week or a month".into(),
        ));
    }
    let r = made(&s, &who, &a, "daily_report").await?;
    Ok(match a.format {
        Format::Json => match r.days.into_iter().next() {
            Some(d) => Json(d).into_response(),
            None => return Err(ApiError::not_found("no such day")),
        },
        _ => exported(&s, &r, &a),
    })
}
