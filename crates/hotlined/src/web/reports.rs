//! `GET /reports?day=YYYY-MM-DD` — the daily report on a page, in Russian: the day's figures,
//! calls by hour and by topic as inline SVG drawn on the server (`crate::report`'s charts),
//! per-operator figures, and the exports (CSV and the self-contained HTML of
//! `GET /api/v1/reports/daily`).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{NaiveDate, Utc};

use super::chrome::{Chrome, Viewer};
use super::errors;
use crate::admin::AdminState;

/// One figure card.
pub struct Card {
    pub label: &'static str,
    pub value: String,
}

/// One operator's line.
pub struct OpLine {
    pub operator: String,
    pub calls: u64,
    pub answered: u64,
    pub avg_talk: String,
}

/// `reports.html`.
#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    c: Chrome,
    day: String,
    error: Option<String>,
    cards: Vec<Card>,
    hour_svg: String,
    category_svg: String,
    operators: Vec<OpLine>,
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.0}"))
}

/// `GET /reports`.
pub async fn page(State(s): State<AdminState>, v: Viewer) -> Response {
    let c = v.chrome("reports", "/reports", s.reports.tz);
    let asked = v
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("day=")))
        .filter(|d| !d.is_empty());
    let today = Utc::now().with_timezone(&s.reports.tz).date_naive();
    let (day, error) = match asked.map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d")) {
        None => (today, None),
        Some(Ok(d)) => (d, None),
        Some(Err(_)) => (
            today,
            Some(format!(
                "Поле «{}»: укажите дату в виде ГГГГ-ММ-ДД.",
                c.t.day
            )),
        ),
    };
    let Ok(store) = s.store() else {
        return errors::no_database();
    };
    let Ok(r) = crate::report::build(store, day, day, s.reports.tz, &s.reports.options).await
    else {
        return errors::no_database();
    };
    let p = &r.period;
    let t = &p.total;
    let cards = vec![
        Card {
            label: c.t.calls,
            value: t.calls.to_string(),
        },
        Card {
            label: c.t.answered,
            value: t.answered.to_string(),
        },
        Card {
            label: c.t.abandoned,
            value: t.abandoned.to_string(),
        },
        Card {
            label: c.t.service_level,
            value: t
                .service_level
                .map_or_else(|| "—".into(), |v| format!("{:.0}%", v * 100.0)),
        },
        Card {
            label: c.t.avg_wait,
            value: secs(t.avg_wait),
        },
        Card {
            label: c.t.avg_talk,
            value: secs(t.avg_talk),
        },
    ];
    let mut hour_svg = String::new();
    crate::report::hour_chart(&mut hour_svg, &p.by_hour);
    let mut category_svg = String::new();
    let none = match c.lang {
        super::chrome::Lang::Ru => "без темы",
        super::chrome::Lang::En => "no category",
    };
    let categories = crate::report::group_rows(&p.by_category, none);
    crate::report::group_chart(
        &mut category_svg,
        "by_category",
        c.t.by_category,
        &categories,
    );
    let operators = p
        .by_operator
        .iter()
        .map(|g| OpLine {
            operator: g.key.clone().unwrap_or_default(),
            calls: g.figures.calls,
            answered: g.figures.answered,
            avg_talk: secs(g.figures.avg_talk),
        })
        .collect();
    let page = ReportsPage {
        day: day.format("%Y-%m-%d").to_string(),
        error,
        cards,
        hour_svg,
        category_svg,
        operators,
        c,
    };
    let status = if page.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page.c.finish(errors::html(status, page.render()))
}
