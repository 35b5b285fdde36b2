//! The registry pages: `GET /registry` (search and filters, a CSV export of what was
//! found), `GET /appeals/{id}` (the appeal card with its timeline), `GET /citizens/{id}`
//! (the citizen card). An operator sees the appeals they handled; supervisors and admins
//! see every one.

use appeals::{Appeal, Page, SearchFilter, Status, Total};
use askama::Template;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, TimeZone};
use serde::Deserialize;

use super::chrome::{appeal_id, event_label, outcome_label, status_label, Chrome, Viewer};
use super::errors;
use super::names::{field_label, Names};
use crate::admin::export;
use crate::admin::AdminState;

/// How many rows a registry page shows.
const PER_PAGE: u32 = 50;

/// The search form.
#[derive(Debug, Default, Deserialize)]
pub struct SearchForm {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    line: String,
    #[serde(default)]
    page: Option<u64>,
    #[serde(default)]
    format: String,
    #[serde(default)]
    lang: String,
}

/// One result row.
pub struct Row {
    pub id: String,
    pub when: String,
    pub caller: String,
    pub line: String,
    pub queue: String,
    pub operator: String,
    pub outcome: String,
    pub status: String,
    pub notes: String,
}

/// A status the filter offers: (id, name, chosen).
pub struct Choice {
    pub id: String,
    pub name: String,
    pub chosen: bool,
}

/// `registry.html`.
#[derive(Template)]
#[template(path = "registry.html")]
struct RegistryPage {
    c: Chrome,
    form: SearchForm,
    statuses: Vec<Choice>,
    /// The lines by name, for the line filter.
    lines: Vec<Choice>,
    rows: Vec<Row>,
    total: u64,
    /// What the page says was found: «1 234», or «более 10 000» when counting stopped.
    found: String,
    error: Option<String>,
    prev: Option<String>,
    next: Option<String>,
    export: String,
    export_xlsx: String,
}

fn row(c: &Chrome, n: &Names, a: &Appeal) -> Row {
    Row {
        id: a.id.to_string(),
        when: c.when(&a.arrived_at),
        caller: a.caller_number.clone(),
        line: n.line(&a.line),
        queue: a.queue.as_deref().map(|q| n.queue(q)).unwrap_or_default(),
        operator: a
            .operator
            .as_deref()
            .map(|o| n.operator(o))
            .unwrap_or_default(),
        outcome: outcome_label(c.lang, a.outcome.map_or("", |o| o.as_str())),
        status: status_label(c.lang, a.status.as_str()),
        notes: a.notes.clone().unwrap_or_default(),
    }
}

/// The filter a form asks for, or the field that is wrong (in the page's language).
fn filter_of(c: &Chrome, f: &SearchForm) -> Result<SearchFilter, String> {
    let day = |v: &str, what: &str| -> Result<Option<NaiveDate>, String> {
        if v.trim().is_empty() {
            return Ok(None);
        }
        super::parse_day(v).map(Some).ok_or_else(|| match c.lang {
            super::chrome::Lang::Ru => {
                format!("Поле «{what}»: укажите дату в виде ДД.ММ.ГГГГ, например 06.12.2026.")
            }
            super::chrome::Lang::En => {
                format!("{what}: give a date as DD.MM.YYYY, e.g. 06.12.2026.")
            }
        })
    };
    let from = day(&f.from, c.t.date_from)?;
    let to = day(&f.to, c.t.date_to)?;
    let start = |d: NaiveDate| {
        c.tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    // a number (digits with the usual separators) finds by the caller's number; anything
    // else is full text over the appeals' and their citizens' words
    let q = f.q.trim();
    let number = !q.is_empty()
        && q.chars().any(|ch| ch.is_ascii_digit())
        && q.chars()
            .all(|ch| ch.is_ascii_digit() || " +-()".contains(ch));
    let digits: String = q.chars().filter(char::is_ascii_digit).collect();
    let status = if f.status.is_empty() {
        None
    } else {
        Some(f.status.parse::<Status>().map_err(|_| match c.lang {
            super::chrome::Lang::Ru => format!("Поле «{}»: выберите статус из списка.", c.t.status),
            super::chrome::Lang::En => format!("{}: choose a status from the list.", c.t.status),
        })?)
    };
    Ok(SearchFilter {
        from: from.and_then(start),
        to: to.and_then(|d| d.succ_opt()).and_then(start),
        line: Some(f.line.trim().to_owned()).filter(|l| !l.is_empty()),
        category: None,
        status,
        caller: Some(digits).filter(|_| number),
        text: Some(q.to_owned()).filter(|q| !number && !q.is_empty()),
        text_in_citizens: true,
        ..SearchFilter::default()
    })
}

fn query_string(f: &SearchForm, page: Option<u64>, format: Option<&str>) -> String {
    let mut out = url_pairs(&[
        ("q", &f.q),
        ("status", &f.status),
        ("from", &f.from),
        ("to", &f.to),
        ("line", &f.line),
    ]);
    if let Some(p) = page {
        out.push_str(&format!("&page={p}"));
    }
    if let Some(x) = format {
        out.push_str(&format!("&format={x}"));
    }
    out
}

fn url_pairs(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if v.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        for b in v.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// `n` with its thousands apart, as Russian writes them: `10 000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(d);
    }
    out
}

/// `GET /registry`.
pub async fn page(
    State(s): State<AdminState>,
    v: Viewer,
    q: Result<Query<SearchForm>, QueryRejection>,
) -> Response {
    let c = v.chrome("registry", "/registry", s.reports.tz);
    let form = q.map(|Query(f)| f).unwrap_or_default();
    let _ = &form.lang;
    let page_no = form.page.unwrap_or(1).max(1);
    let mut error = None;
    let (mut rows, mut total) = (Vec::new(), Total::of(0, 0));
    let names = Names::of(&s);
    match filter_of(&c, &form) {
        Err(e) => error = Some(e),
        Ok(mut filter) => {
            if !v.who.sees_all() {
                filter.operator = Some(v.who.id.clone());
            }
            let Ok(store) = s.store() else {
                return errors::no_database();
            };
            let format = match form.format.as_str() {
                "csv" => Some(export::Format::Csv),
                "xlsx" => Some(export::Format::Xlsx),
                _ => None,
            };
            if let Some(format) = format {
                let what = ["q", "status", "from", "to", "line"]
                    .into_iter()
                    .zip([&form.q, &form.status, &form.from, &form.to, &form.line])
                    .filter(|(_, v)| !v.trim().is_empty())
                    .map(|(k, _)| k)
                    .collect();
                match export::appeals(&s, &v.who, "registry", &filter, what, format, c.lang).await
                {
                    Ok(file) => return file,
                    Err(e) if e.is_invalid() => {
                        error = Some(match c.lang {
                            super::chrome::Lang::Ru => format!(
                                "Выгрузка вмещает не больше {} обращений: сузьте поиск (даты, линия, статус).",
                                export::EXPORT_MAX
                            ),
                            super::chrome::Lang::En => format!(
                                "An export holds at most {} appeals: narrow the search (dates, line, status).",
                                export::EXPORT_MAX
                            ),
                        })
                    }
                    Err(_) => return errors::no_database(),
                }
            }
            let p = Page {
                offset: (page_no - 1) * u64::from(PER_PAGE),
                limit: PER_PAGE,
            };
            match (
                store.search(&filter, p).await,
                store.count_at_most(&filter, Total::cap_for(p)).await,
            ) {
                (Ok(list), Ok(n)) => {
                    rows = list.iter().map(|a| row(&c, &names, a)).collect();
                    total = n;
                }
                _ => return errors::no_database(),
            }
        }
    }
    let statuses = [
        "new",
        "in_progress",
        "forwarded",
        "pending",
        "done",
        "declined",
    ]
    .into_iter()
    .filter(|id| id.parse::<Status>().is_ok())
    .map(|id| Choice {
        id: id.to_owned(),
        name: status_label(c.lang, id),
        chosen: form.status == id,
    })
    .collect();
    // the lines by name; a line asked for that is no longer configured stays choosable
    let mut lines: Vec<Choice> = names
        .labels
        .lines()
        .map(|(id, name)| Choice {
            id: id.to_owned(),
            name: name.to_owned(),
            chosen: form.line.trim() == id,
        })
        .collect();
    let asked = form.line.trim();
    if !asked.is_empty() && !lines.iter().any(|l| l.chosen) {
        lines.push(Choice {
            id: asked.to_owned(),
            name: asked.to_owned(),
            chosen: true,
        });
    }
    let shown = (page_no - 1) * u64::from(PER_PAGE) + rows.len() as u64;
    let prev = (page_no > 1).then(|| query_string(&form, Some(page_no - 1), None));
    let next =
        (shown < total.count || !total.exact).then(|| query_string(&form, Some(page_no + 1), None));
    let found = if total.exact {
        grouped(total.count)
    } else {
        format!("{} {}", c.t.more_than, grouped(total.count))
    };
    let export = query_string(&form, None, Some("csv"));
    let export_xlsx = query_string(&form, None, Some("xlsx"));
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = RegistryPage {
        form,
        statuses,
        lines,
        rows,
        total: total.count,
        found,
        error,
        prev,
        next,
        export,
        export_xlsx,
        c,
    };
    page.c.finish(errors::html(status, page.render()))
}

/// One timeline entry.
pub struct TimelineItem {
    pub when: String,
    pub kind: String,
    pub kind_id: String,
    pub details: String,
    pub actor: String,
}

/// `appeal.html`.
#[derive(Template)]
#[template(path = "appeal.html")]
struct AppealPage {
    c: Chrome,
    a: Row,
    answered: String,
    ended: String,
    wait: String,
    talk: String,
    ivr_path: String,
    category: String,
    destination: String,
    service: String,
    district: String,
    address: String,
    disposition: String,
    /// The linked citizen: (card id, name).
    citizen: Option<(String, String)>,
    recording: bool,
    timeline: Vec<TimelineItem>,
}

/// A JSON value as people read it; `None` for null.
fn plain(c: &Chrome, v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(
            match (c.lang, b) {
                (super::chrome::Lang::Ru, true) => "да",
                (super::chrome::Lang::Ru, false) => "нет",
                (super::chrome::Lang::En, true) => "yes",
                (super::chrome::Lang::En, false) => "no",
            }
            .to_owned(),
        ),
        other => Some(other.to_string()),
    }
}

/// A case field's value: the directory's name, a date, the citizen's name, a status.
fn field_value(
    c: &Chrome,
    n: &Names,
    citizen: Option<&(String, String)>,
    field: &str,
    v: &serde_json::Value,
) -> String {
    let millis = matches!(field, "due_at" | "pending_until");
    match (millis, v) {
        (_, serde_json::Value::Null) => "—".to_owned(),
        (true, serde_json::Value::Number(ms)) => ms
            .as_i64()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or_else(|| ms.to_string(), |t| c.when(&t)),
        (_, serde_json::Value::String(id)) if field == "citizen_id" => citizen
            .filter(|(cid, _)| cid == id)
            .map_or_else(|| id.clone(), |(_, name)| name.clone()),
        (_, serde_json::Value::String(st)) if field == "status" => status_label(c.lang, st),
        (_, serde_json::Value::String(id)) => n.value(field, id),
        (_, other) => plain(c, other).unwrap_or_default(),
    }
}

/// A timeline event's details in words: a case change as «field: from → to», other events
/// their fields `name: value`, with names for ids.
fn details(
    c: &Chrome,
    n: &Names,
    citizen: Option<&(String, String)>,
    kind: &str,
    data: &serde_json::Value,
) -> String {
    let serde_json::Value::Object(m) = data else {
        return plain(c, data).unwrap_or_default();
    };
    let change = |field: &str| {
        let from = m.get("from").unwrap_or(&serde_json::Value::Null);
        let to = m.get("to").unwrap_or(&serde_json::Value::Null);
        format!(
            "{}: {} → {}",
            field_label(c.lang, field),
            field_value(c, n, citizen, field, from),
            field_value(c, n, citizen, field, to)
        )
    };
    match kind {
        "case_updated" => {
            let field = m.get("field").and_then(|f| f.as_str()).unwrap_or("");
            return change(field);
        }
        "status_changed" => return change("status"),
        "destination_set" => return change("organisation"),
        "note_added" => {
            let to = m.get("to").and_then(|t| t.as_str()).unwrap_or("");
            return format!("{}: {to}", field_label(c.lang, "notes"));
        }
        _ => {}
    }
    let queue_target = m.get("kind").and_then(|k| k.as_str()) == Some("queue");
    m.iter()
        .filter_map(|(k, v)| {
            let shown = match (k.as_str(), v) {
                ("target", serde_json::Value::String(t)) if queue_target => n.queue(t),
                ("kind", serde_json::Value::String(t)) => match (c.lang, t.as_str()) {
                    (super::chrome::Lang::Ru, "queue") => "в очередь".to_owned(),
                    (super::chrome::Lang::Ru, "number") => "на номер".to_owned(),
                    (super::chrome::Lang::Ru, "operator") => "оператору".to_owned(),
                    (_, t) => t.to_owned(),
                },
                ("path" | "ivr_path" | "step", serde_json::Value::String(p)) => {
                    n.ivr_path(c.lang, p)
                }
                (field, v) => {
                    plain(c, v)?;
                    field_value(c, n, citizen, field, v)
                }
            };
            Some(format!("{}: {shown}", field_label(c.lang, k)))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `GET /appeals/{id}`.
pub async fn appeal(
    State(s): State<AdminState>,
    v: Viewer,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let Some(id) = appeal_id(id) else {
        return errors::page(
            StatusCode::BAD_REQUEST,
            "Неверный номер обращения",
            "Номер обращения — 36 знаков, как в реестре. Откройте обращение из реестра.",
        );
    };
    let path = format!("/appeals/{id}");
    let c = v.chrome("registry", path, s.reports.tz);
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let found = match store.get(id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            return errors::page(
                StatusCode::NOT_FOUND,
                "Обращение не найдено",
                "Такого обращения нет. Найдите его в реестре по номеру телефона.",
            )
        }
        Err(_) => return errors::no_database(),
    };
    if crate::admin::appeals_api::may_see(&v.who, &found.appeal).is_err() {
        return errors::no_access();
    }
    let a = &found.appeal;
    let names = Names::of(&s);
    let citizen = match a.case.citizen_id {
        Some(cid) => match store.citizen(cid).await {
            Ok(Some(x)) => Some((cid.to_string(), x.card.name.clone())),
            _ => Some((cid.to_string(), cid.to_string())),
        },
        None => None,
    };
    let secs = |v: Option<i64>| v.map_or_else(|| "—".to_owned(), |v| v.to_string());
    let timeline = found
        .events
        .iter()
        // entering a menu node is not a choice: the steps that are say it in words
        .filter(|e| {
            e.kind.as_str() != "ivr_choice"
                || e.data
                    .get("step")
                    .and_then(|v| v.as_str())
                    .is_none_or(|st| st.contains(':'))
        })
        .map(|e| TimelineItem {
            when: c.when(&e.at),
            kind: event_label(c.lang, e.kind.as_str()),
            kind_id: e.kind.as_str().to_owned(),
            details: details(&c, &names, citizen.as_ref(), e.kind.as_str(), &e.data),
            actor: e
                .actor
                .as_deref()
                .map(|a| names.operator(a))
                .unwrap_or_default(),
        })
        .collect();
    let named =
        |v: &Option<String>, f: &dyn Fn(&str) -> String| v.as_deref().map(f).unwrap_or_default();
    let page = AppealPage {
        a: row(&c, &names, a),
        answered: a.answered_at.map(|t| c.when(&t)).unwrap_or_default(),
        ended: a.ended_at.map(|t| c.when(&t)).unwrap_or_default(),
        wait: secs(a.wait_seconds),
        talk: secs(a.talk_seconds),
        ivr_path: a
            .ivr_path
            .as_deref()
            .map(|p| names.ivr_path(c.lang, p))
            .unwrap_or_default(),
        category: a
            .category
            .as_deref()
            .map(|x| names.labels.category(x))
            .unwrap_or_default(),
        // the case's organisation; an appeal from before the case record has destination_org
        destination: named(
            &a.case
                .organisation
                .clone()
                .or_else(|| a.destination_org.clone()),
            &|o| names.organisation(o),
        ),
        service: named(&a.case.service, &|x| names.service(x)),
        district: named(&a.case.district, &|x| names.district(x)),
        address: a.case.address.clone().unwrap_or_default(),
        disposition: named(&a.case.disposition, &|x| names.disposition(x)),
        citizen,
        recording: a.recording.is_some(),
        timeline,
        c,
    };
    page.c.finish(errors::html(StatusCode::OK, page.render()))
}
