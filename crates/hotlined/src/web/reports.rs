//! `GET /reports?range=day|week|month&day=ДД.ММ.ГГГГ` (or `YYYY-MM-DD`) — the call report on a page, in
//! Russian unless `?lang=en`: a period picker (a day, its ISO week or its calendar month),
//! the period line, the period's figures, calls by hour (and by day for a week or a month),
//! by line, topic, service, organisation and district as inline SVG drawn on the server
//! (`crate::report`'s charts), the tables of lines, services, organisations, districts and
//! operators (each by the name a person reads) with their overdue counts, and the exports
//! (CSV and the self-contained HTML of `GET /api/v1/reports`). Dates on the page (the period
//! line, the days of the by-day chart) are дд.мм.гггг, as on the rest of the pages; the links
//! keep ISO, the CSV too (the HTML export writes дд.мм.гггг).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;

use super::chrome::{Chrome, Lang, Viewer};
use super::errors;
use crate::admin::AdminState;
use crate::report::{self, GroupKind, Range, Words};

/// One figure card.
pub struct Card {
    pub figure: &'static str,
    pub label: String,
    pub value: String,
}

/// One choice of the period picker.
pub struct RangeChoice {
    pub code: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

/// A chart with its heading.
pub struct Chart {
    pub id: &'static str,
    pub heading: &'static str,
    pub svg: String,
}

/// `reports.html`.
#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    c: Chrome,
    w: &'static Words,
    /// The day, ISO: the export links' parameter.
    day: String,
    /// The day as the field shows it (дд.мм.гггг).
    day_shown: String,
    range: &'static str,
    ranges: Vec<RangeChoice>,
    period: String,
    error: Option<&'static str>,
    cards: Vec<Card>,
    charts: Vec<Chart>,
    tables: Vec<Chart>,
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.0}"))
}

/// The value of `name` in a query string.
fn param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// `GET /reports`.
pub async fn page(State(s): State<AdminState>, v: Viewer) -> Response {
    let c = v.chrome("reports", "/reports", s.reports.tz);
    let w = report::words(match c.lang {
        Lang::Ru => report::Lang::Ru,
        Lang::En => report::Lang::En,
    });
    let today = Utc::now().with_timezone(&s.reports.tz).date_naive();
    let mut error = None;
    // the field is дд.мм.гггг text, as in the registry; links and the API give ISO
    let day = match param(v.query(), "day").map(super::parse_day) {
        None => today,
        Some(Some(d)) => d,
        Some(None) => {
            error = Some(w.bad_day);
            today
        }
    };
    let range = match param(v.query(), "range").map(Range::parse) {
        None => Range::Day,
        Some(Some(r)) => r,
        Some(None) => {
            error = Some(w.bad_range);
            Range::Day
        }
    };
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let (from, to) = range.bounds(day);
    let Ok(r) = report::build(store, from, to, s.reports.tz, &s.reports.options).await else {
        return errors::no_database();
    };
    let names = super::names::Names::of(&s);
    let p = &r.period;
    let t = &p.total;
    let card = |figure, label: &str, value: String| Card {
        figure,
        label: label.to_owned(),
        value,
    };
    let cards = vec![
        card("calls", w.calls, t.calls.to_string()),
        card("answered", w.answered, t.answered.to_string()),
        card("abandoned", w.abandoned, t.abandoned.to_string()),
        card(
            "service_level",
            w.service_level,
            t.service_level
                .map_or_else(|| "—".into(), |v| format!("{:.0}%", v * 100.0)),
        ),
        card("avg_wait", w.avg_wait, secs(t.avg_wait)),
        card("avg_talk", w.avg_talk, secs(t.avg_talk)),
        card("overdue", w.overdue, t.overdue.to_string()),
    ];
    let mut charts = Vec::new();
    let mut svg = String::new();
    report::hour_chart(&mut svg, w, &p.by_hour);
    charts.push(Chart {
        id: "by_hour",
        heading: w.by_hour,
        svg,
    });
    if r.days.len() > 1 {
        let mut svg = String::new();
        report::group_chart(
            &mut svg,
            w,
            "by_day",
            w.by_day,
            &report::day_rows_with(&r, super::show_day),
        );
        charts.push(Chart {
            id: "by_day",
            heading: w.by_day,
            svg,
        });
    }
    let kinds = [
        (GroupKind::Line, "by_line"),
        (GroupKind::Category, "by_category"),
        (GroupKind::Service, "by_service"),
        (GroupKind::Organisation, "by_organisation"),
        (GroupKind::District, "by_district"),
    ];
    for (kind, id) in kinds {
        let mut svg = String::new();
        let rows = report::rows(kind, p, w, &names);
        report::group_chart(&mut svg, w, id, kind.heading(w), &rows);
        charts.push(Chart {
            id,
            heading: kind.heading(w),
            svg,
        });
    }
    let mut tables = Vec::new();
    for (kind, id) in [
        (GroupKind::Line, "t_line"),
        (GroupKind::Service, "t_service"),
        (GroupKind::Organisation, "t_organisation"),
        (GroupKind::District, "t_district"),
        (GroupKind::Operator, "t_operator"),
    ] {
        let mut html = String::new();
        let rows = report::rows(kind, p, w, &names);
        report::html_table(&mut html, w, kind.code(), kind.column(w), &rows);
        tables.push(Chart {
            id,
            heading: kind.heading(w),
            svg: html,
        });
    }
    let page = ReportsPage {
        w,
        day: day.format("%Y-%m-%d").to_string(),
        day_shown: super::show_day(day),
        range: range.code(),
        ranges: [Range::Day, Range::Week, Range::Month]
            .into_iter()
            .map(|x| RangeChoice {
                code: x.code(),
                label: w.range(x),
                selected: x == range,
            })
            .collect(),
        period: format!(
            "{}: {}",
            w.range(range),
            report::period_label_with(&r, super::show_day)
        ),
        error,
        cards,
        charts,
        tables,
        c,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.c.finish(errors::html(status, page.render()))
}
