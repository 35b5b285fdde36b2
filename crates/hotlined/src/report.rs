//! Call reports over a period of days, for `hotlined report` and `GET /api/v1/reports/daily`.
//!
//! The figures themselves come from [`appeals::report::compute`] (its module documents the
//! definitions: calls, answered, abandoned, service level, average wait and talk); this module
//! gathers a period's appeals, splits them into local days at `reports.timezone`, and renders
//! the result as a text table, CSV, JSON or a self-contained HTML page with inline SVG charts
//! (no JavaScript, no external assets: a manager opens the file as it is).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use appeals::report::{compute, day_bounds};
use appeals::{
    Appeal, DailyReport, Figures, Group, HourFigures, Page, ReportOptions, SearchFilter, Store,
};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::Serialize;

/// The longest period one report covers, in days.
pub const MAX_DAYS: i64 = 366;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `to` is before `from`.
    #[error("the period ends ({to}) before it starts ({from})")]
    Reversed { from: NaiveDate, to: NaiveDate },
    /// More than [`MAX_DAYS`] days.
    #[error("the period is {days} days long; a report covers at most {MAX_DAYS}")]
    TooLong { days: i64 },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] appeals::Error),
}

/// How a report is written out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text tables for a terminal.
    Table,
    /// One row per day and group, for spreadsheets.
    Csv,
    /// The whole report as JSON.
    Json,
    /// A self-contained HTML page with charts.
    Html,
}

/// Figures for a whole period, grouped like a day's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// All calls of the period.
    pub total: Figures,
    /// Per line.
    pub by_line: Vec<Group>,
    /// Per category; uncategorised first.
    pub by_category: Vec<Group>,
    /// Per operator.
    pub by_operator: Vec<Group>,
    /// Per hour of the day (local), all days together.
    pub by_hour: Vec<HourFigures>,
}

impl From<DailyReport> for Summary {
    fn from(d: DailyReport) -> Self {
        Summary {
            total: d.total,
            by_line: d.by_line,
            by_category: d.by_category,
            by_operator: d.by_operator,
            by_hour: d.by_hour,
        }
    }
}

/// A report over the local days `from..=to`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PeriodReport {
    /// First day.
    pub from: NaiveDate,
    /// Last day (included).
    pub to: NaiveDate,
    /// The offset the days are taken at.
    pub utc_offset_seconds: i32,
    /// The service-level threshold.
    pub service_level_seconds: i64,
    /// When the report was made.
    pub generated_at: DateTime<Utc>,
    /// The whole period.
    pub period: Summary,
    /// Each day, in order (days without calls included).
    pub days: Vec<DailyReport>,
}

/// Gathers the appeals that arrived in the local days `from..=to` and computes the report.
pub async fn build(
    store: &Store,
    from: NaiveDate,
    to: NaiveDate,
    tz: FixedOffset,
    options: &ReportOptions,
) -> Result<PeriodReport, ReportError> {
    let days = (to - from).num_days() + 1;
    if days < 1 {
        return Err(ReportError::Reversed { from, to });
    }
    if days > MAX_DAYS {
        return Err(ReportError::TooLong { days });
    }
    let (start, _) = day_bounds(from, tz);
    let (_, end) = day_bounds(to, tz);
    let appeals = fetch(store, start, end).await?;
    Ok(assemble(from, to, tz, options, &appeals))
}

/// Computes the report from the period's appeals (pure: the tests call it directly too).
pub fn assemble(
    from: NaiveDate,
    to: NaiveDate,
    tz: FixedOffset,
    options: &ReportOptions,
    appeals: &[Appeal],
) -> PeriodReport {
    let mut per_day: BTreeMap<NaiveDate, Vec<Appeal>> = BTreeMap::new();
    for a in appeals {
        per_day
            .entry(a.arrived_at.with_timezone(&tz).date_naive())
            .or_default()
            .push(a.clone());
    }
    let days = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| {
            let list = per_day.get(&d).map(Vec::as_slice).unwrap_or(&[]);
            compute(d, tz, options, list)
        })
        .collect();
    PeriodReport {
        from,
        to,
        utc_offset_seconds: tz.local_minus_utc(),
        service_level_seconds: options.service_level_seconds,
        generated_at: Utc::now(),
        period: compute(from, tz, options, appeals).into(),
        days,
    }
}

/// Every appeal that arrived in `[from, to)`, read a page at a time. Pages are newest first,
/// so an appeal written while we read only pushes older ones to a later page: we may see
/// one twice (kept once) but never miss one.
async fn fetch(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Appeal>, appeals::Error> {
    let filter = SearchFilter {
        from: Some(from),
        to: Some(to),
        ..SearchFilter::default()
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut offset = 0u64;
    loop {
        let page = store
            .search(
                &filter,
                Page {
                    offset,
                    limit: Page::MAX_LIMIT,
                },
            )
            .await?;
        let n = page.len();
        out.extend(page.into_iter().filter(|a| seen.insert(a.id)));
        if n < Page::MAX_LIMIT as usize {
            return Ok(out);
        }
        offset += n as u64;
    }
}

/// `+07:00` for 25200 seconds.
pub fn offset_label(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// Renders the report in `format`.
pub fn render(r: &PeriodReport, format: Format) -> String {
    match format {
        Format::Table => table(r),
        Format::Csv => csv(r),
        Format::Json => serde_json::to_string_pretty(r).unwrap_or_else(|_| "{}".into()) + "\n",
        Format::Html => html(r),
    }
}

fn period_label(r: &PeriodReport) -> String {
    if r.from == r.to {
        r.from.to_string()
    } else {
        format!("{} – {}", r.from, r.to)
    }
}

fn key_label(key: &Option<String>, none: &str) -> String {
    key.clone().unwrap_or_else(|| none.to_owned())
}

const NO_CATEGORY: &str = "(no category)";

fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

// ---------------------------------------------------------------------------------------------
// Text table

fn figures_table(out: &mut String, title: &str, key_header: &str, rows: &[(String, &Figures)]) {
    let header = [
        key_header,
        "calls",
        "answered",
        "abandoned",
        "in SL",
        "SL",
        "avg wait s",
        "abandoned wait s",
        "avg talk s",
    ];
    let body: Vec<[String; 9]> = rows
        .iter()
        .map(|(k, f)| {
            [
                k.clone(),
                f.calls.to_string(),
                f.answered.to_string(),
                f.abandoned.to_string(),
                f.answered_within_sl.to_string(),
                pct(f.service_level),
                secs(f.avg_wait),
                secs(f.avg_wait_abandoned),
                secs(f.avg_talk),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &body {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let _ = writeln!(out, "\n{title}");
    let line = |out: &mut String, cells: &[&str]| {
        let mut s = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i == 0 {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(out, &header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(out, &rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &body {
        line(out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

fn group_rows<'a>(groups: &'a [Group], none: &str) -> Vec<(String, &'a Figures)> {
    groups
        .iter()
        .map(|g| (key_label(&g.key, none), &g.figures))
        .collect()
}

fn table(r: &PeriodReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Hotline call report {} (UTC{}); service level: answered within {} s",
        period_label(r),
        offset_label(r.utc_offset_seconds),
        r.service_level_seconds
    );
    let p = &r.period;
    figures_table(&mut out, "Total", "period", &[(period_label(r), &p.total)]);
    if r.days.len() > 1 {
        let rows: Vec<_> = r
            .days
            .iter()
            .map(|d| (d.day.to_string(), &d.total))
            .collect();
        figures_table(&mut out, "By day", "day", &rows);
    }
    figures_table(&mut out, "By line", "line", &group_rows(&p.by_line, "-"));
    figures_table(
        &mut out,
        "By category",
        "category",
        &group_rows(&p.by_category, NO_CATEGORY),
    );
    figures_table(
        &mut out,
        "By operator",
        "operator",
        &group_rows(&p.by_operator, "-"),
    );
    let hours: Vec<_> = p
        .by_hour
        .iter()
        .filter(|h| h.figures.calls > 0)
        .map(|h| (format!("{:02}:00", h.hour), &h.figures))
        .collect();
    figures_table(&mut out, "By hour (hours with calls)", "hour", &hours);
    out
}

// ---------------------------------------------------------------------------------------------
// CSV

/// The CSV header: one row per day (or `period`) and group.
pub const CSV_HEADER: &str = "day,group,key,calls,answered,abandoned,answered_within_sl,service_level,avg_wait_seconds,avg_wait_abandoned_seconds,avg_talk_seconds";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv_num(v: Option<f64>, decimals: usize) -> String {
    v.map(|v| format!("{v:.decimals$}")).unwrap_or_default()
}

fn csv_rows(out: &mut String, day: &str, s: &Summary) {
    let mut row = |group: &str, key: &str, f: &Figures| {
        let _ = writeln!(
            out,
            "{day},{group},{},{},{},{},{},{},{},{},{}",
            csv_field(key),
            f.calls,
            f.answered,
            f.abandoned,
            f.answered_within_sl,
            csv_num(f.service_level, 4),
            csv_num(f.avg_wait, 1),
            csv_num(f.avg_wait_abandoned, 1),
            csv_num(f.avg_talk, 1),
        );
    };
    row("total", "", &s.total);
    for g in &s.by_line {
        row("line", g.key.as_deref().unwrap_or(""), &g.figures);
    }
    for g in &s.by_category {
        row("category", g.key.as_deref().unwrap_or(""), &g.figures);
    }
    for g in &s.by_operator {
        row("operator", g.key.as_deref().unwrap_or(""), &g.figures);
    }
    for h in &s.by_hour {
        row("hour", &h.hour.to_string(), &h.figures);
    }
}

fn csv(r: &PeriodReport) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for d in &r.days {
        csv_rows(&mut out, &d.day.to_string(), &Summary::from(d.clone()));
    }
    if r.days.len() > 1 {
        csv_rows(&mut out, "period", &r.period);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// HTML

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn raw(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

const CSS: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2733;padding:0 1rem}\
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d5dbe3;padding-bottom:.3rem}\
.sub{color:#5b6878;margin-top:0}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1.2rem 0}\
.card{border:1px solid #d5dbe3;border-radius:.5rem;padding:.7rem 1rem;min-width:8.5rem}\
.card .v{display:block;font-size:1.5rem;font-weight:600}.card .l{color:#5b6878;font-size:.85rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.3rem .5rem;border-bottom:1px solid #e6eaef;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f3f5f8}svg{max-width:100%;height:auto}\
.ans{fill:#2e8b57}.abd{fill:#d9534f}.oth{fill:#9aa7b5}.lbl{font-size:11px;fill:#3c4856}.key span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}\
@media print{body{margin:0}}";

fn card(out: &mut String, figure: &str, label: &str, shown: String, value: String) {
    let _ = write!(
        out,
        "<div class=\"card\" data-figure=\"{figure}\" data-value=\"{value}\"><span class=\"v\">{}</span><span class=\"l\">{}</span></div>",
        esc(&shown),
        esc(label)
    );
}

fn html_table(out: &mut String, group: &str, key_header: &str, rows: &[(String, &Figures)]) {
    let _ = write!(
        out,
        "<table data-group=\"{group}\"><thead><tr><th>{}</th><th>Calls</th><th>Answered</th><th>Abandoned</th><th>In SL</th><th>Service level</th><th>Avg wait, s</th><th>Abandoned after, s</th><th>Avg talk, s</th></tr></thead><tbody>",
        esc(key_header)
    );
    for (k, f) in rows {
        let _ = write!(
            out,
            "<tr data-key=\"{}\"><td>{}</td><td data-figure=\"calls\">{}</td><td data-figure=\"answered\">{}</td><td data-figure=\"abandoned\">{}</td><td data-figure=\"answered_within_sl\">{}</td><td data-figure=\"service_level\" data-value=\"{}\">{}</td><td data-figure=\"avg_wait\" data-value=\"{}\">{}</td><td data-figure=\"avg_wait_abandoned\" data-value=\"{}\">{}</td><td data-figure=\"avg_talk\" data-value=\"{}\">{}</td></tr>",
            esc(k),
            esc(k),
            f.calls,
            f.answered,
            f.abandoned,
            f.answered_within_sl,
            raw(f.service_level),
            pct(f.service_level),
            raw(f.avg_wait),
            secs(f.avg_wait),
            raw(f.avg_wait_abandoned),
            secs(f.avg_wait_abandoned),
            raw(f.avg_talk),
            secs(f.avg_talk),
        );
    }
    out.push_str("</tbody></table>");
}

/// A "nice" axis maximum at or above `max`: 1, 2, 5 × 10ⁿ.
fn nice_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= max.max(1) {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// One stacked bar's parts: answered, abandoned, other.
fn parts(f: &Figures) -> [(u64, &'static str, &'static str); 3] {
    let other = f.calls.saturating_sub(f.answered + f.abandoned);
    [
        (f.answered, "ans", "answered"),
        (f.abandoned, "abd", "abandoned"),
        (other, "oth", "other"),
    ]
}

/// Calls per hour as vertical stacked bars.
fn hour_chart(out: &mut String, hours: &[HourFigures]) {
    let (w, h, left, top, bottom) = (760.0_f64, 240.0_f64, 40.0_f64, 16.0_f64, 28.0_f64);
    let plot_h = h - top - bottom;
    let max = nice_max(hours.iter().map(|x| x.figures.calls).max().unwrap_or(0));
    let slot = (w - left - 10.0) / 24.0;
    let _ = write!(
        out,
        "<svg data-chart=\"by_hour\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"Calls by hour\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    // Whole-number gridlines: max is 1, 2 or 5 × 10ⁿ.
    let ticks = [4u64, 5, 2, 1]
        .into_iter()
        .find(|t| max.checked_rem(*t) == Some(0))
        .unwrap_or(1);
    for i in 0..=ticks {
        let v = max * i / ticks;
        let y = top + plot_h - plot_h * (v as f64) / (max as f64);
        let _ = write!(
            out,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e6eaef\"/><text class=\"lbl\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>",
            w - 10.0,
            left - 4.0,
            y + 4.0
        );
    }
    for hf in hours {
        let x = left + slot * f64::from(hf.hour) + slot * 0.15;
        let bw = slot * 0.7;
        let mut y = top + plot_h;
        for (n, class, what) in parts(&hf.figures) {
            if n == 0 {
                continue;
            }
            let bh = plot_h * (n as f64) / (max as f64);
            y -= bh;
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\"><title>{:02}:00 {what}: {n}</title></rect>",
                hf.hour
            );
        }
        if hf.figures.calls > 0 {
            let _ = write!(
                out,
                "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" data-hour=\"{}\" data-calls=\"{}\">{}</text>",
                x + bw / 2.0,
                y - 3.0,
                hf.hour,
                hf.figures.calls,
                hf.figures.calls
            );
        }
        let _ = write!(
            out,
            "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{:02}</text>",
            x + bw / 2.0,
            h - bottom + 14.0,
            hf.hour
        );
    }
    out.push_str("</svg>");
}

/// Calls per group as horizontal stacked bars.
fn group_chart(out: &mut String, chart: &str, label: &str, rows: &[(String, &Figures)]) {
    if rows.is_empty() {
        out.push_str("<p class=\"sub\">No calls.</p>");
        return;
    }
    let (w, row_h, label_w) = (760.0_f64, 26.0_f64, 260.0_f64);
    let h = row_h * rows.len() as f64 + 10.0;
    let max = nice_max(rows.iter().map(|(_, f)| f.calls).max().unwrap_or(0));
    let plot_w = w - label_w - 50.0;
    let _ = write!(
        out,
        "<svg data-chart=\"{chart}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(label)
    );
    for (i, (key, f)) in rows.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        let shown: String = if key.chars().count() > 38 {
            key.chars().take(37).chain(std::iter::once('…')).collect()
        } else {
            key.clone()
        };
        let _ = write!(
            out,
            "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 8.0,
            y + row_h * 0.62,
            esc(&shown)
        );
        let mut x = label_w;
        for (n, class, what) in parts(f) {
            if n == 0 {
                continue;
            }
            let bw = plot_w * (n as f64) / (max as f64);
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\"><title>{} {what}: {n}</title></rect>",
                y + 3.0,
                row_h - 8.0,
                esc(key)
            );
            x += bw;
        }
        let _ = write!(
            out,
            "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" data-key=\"{}\" data-calls=\"{}\">{}</text>",
            x + 5.0,
            y + row_h * 0.62,
            esc(key),
            f.calls,
            f.calls
        );
    }
    out.push_str("</svg>");
}

fn html(r: &PeriodReport) -> String {
    let p = &r.period;
    let t = &p.total;
    let period = period_label(r);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Hotline call report {}</title><style>{CSS}</style></head><body>",
        esc(&period)
    );
    let _ = write!(
        out,
        "<h1>Hotline call report</h1><p class=\"sub\" data-period-from=\"{}\" data-period-to=\"{}\">{} (UTC{}) · service level: answered within {} s · made {}</p>",
        r.from,
        r.to,
        esc(&period),
        offset_label(r.utc_offset_seconds),
        r.service_level_seconds,
        r.generated_at.format("%Y-%m-%d %H:%M UTC")
    );
    out.push_str("<div class=\"cards\">");
    card(
        &mut out,
        "calls",
        "calls",
        t.calls.to_string(),
        t.calls.to_string(),
    );
    card(
        &mut out,
        "answered",
        "answered by an operator",
        t.answered.to_string(),
        t.answered.to_string(),
    );
    card(
        &mut out,
        "abandoned",
        "abandoned while waiting",
        t.abandoned.to_string(),
        t.abandoned.to_string(),
    );
    card(
        &mut out,
        "service_level",
        &format!("service level ({} s)", r.service_level_seconds),
        pct(t.service_level),
        raw(t.service_level),
    );
    card(
        &mut out,
        "avg_wait",
        "average wait, s",
        secs(t.avg_wait),
        raw(t.avg_wait),
    );
    card(
        &mut out,
        "avg_wait_abandoned",
        "abandoned after, s",
        secs(t.avg_wait_abandoned),
        raw(t.avg_wait_abandoned),
    );
    card(
        &mut out,
        "avg_talk",
        "average talk, s",
        secs(t.avg_talk),
        raw(t.avg_talk),
    );
    out.push_str("</div>");
    out.push_str("<p class=\"key\"><span class=\"ans\" style=\"background:#2e8b57\"></span>answered<span style=\"background:#d9534f\"></span>abandoned<span style=\"background:#9aa7b5\"></span>other (information only, callback, message, rejected, in progress)</p>");
    out.push_str("<h2>Calls by hour</h2>");
    hour_chart(&mut out, &p.by_hour);
    let categories = group_rows(&p.by_category, NO_CATEGORY);
    out.push_str("<h2>What people call about</h2>");
    group_chart(&mut out, "by_category", "Calls by category", &categories);
    let lines = group_rows(&p.by_line, "-");
    out.push_str("<h2>Calls by line</h2>");
    group_chart(&mut out, "by_line", "Calls by line", &lines);
    if r.days.len() > 1 {
        out.push_str("<h2>By day</h2>");
        let rows: Vec<_> = r
            .days
            .iter()
            .map(|d| (d.day.to_string(), &d.total))
            .collect();
        html_table(&mut out, "day", "Day", &rows);
    }
    out.push_str("<h2>Lines</h2>");
    html_table(&mut out, "line", "Line", &lines);
    out.push_str("<h2>Categories</h2>");
    html_table(&mut out, "category", "Category", &categories);
    out.push_str("<h2>Operators</h2>");
    html_table(
        &mut out,
        "operator",
        "Operator",
        &group_rows(&p.by_operator, "-"),
    );
    out.push_str("<h2>Hours</h2>");
    let hours: Vec<_> = p
        .by_hour
        .iter()
        .filter(|h| h.figures.calls > 0)
        .map(|h| (format!("{:02}:00", h.hour), &h.figures))
        .collect();
    html_table(&mut out, "hour", "Hour", &hours);
    out.push_str("</body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use appeals::{AppealId, Outcome, Status};
    use chrono::TimeZone;

    fn nsk() -> FixedOffset {
        FixedOffset::east_opt(7 * 3600).unwrap()
    }

    fn appeal(
        at: DateTime<Utc>,
        line: &str,
        category: Option<&str>,
        outcome: Outcome,
        wait: i64,
    ) -> Appeal {
        let answered = outcome == Outcome::Answered;
        Appeal {
            id: AppealId::new(),
            call_id: "c".into(),
            line: line.into(),
            caller_number: "+7913".into(),
            arrived_at: at,
            answered_at: answered.then_some(at),
            ended_at: None,
            ivr_path: None,
            category: category.map(str::to_owned),
            queue: None,
            wait_seconds: Some(wait),
            talk_seconds: answered.then_some(60),
            operator: answered.then(|| "op1".to_owned()),
            outcome: Some(outcome),
            recording: None,
            status: Status::New,
            destination_org: None,
            notes: None,
            partner_ref: None,
            updated_at: at,
            case: Default::default(),
        }
    }

    fn sample() -> PeriodReport {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();
        // 23:30 local on the 23rd is 16:30 UTC; 00:30 local on the 24th is 17:30 UTC the 23rd.
        let late = Utc.with_ymd_and_hms(2026, 11, 23, 16, 30, 0).unwrap();
        let after_midnight = Utc.with_ymd_and_hms(2026, 11, 23, 17, 30, 0).unwrap();
        let list = vec![
            appeal(
                late,
                "city",
                Some("pensions, \"benefits\""),
                Outcome::Answered,
                10,
            ),
            appeal(late, "city", None, Outcome::Abandoned, 40),
            appeal(
                after_midnight,
                "regional",
                Some("care"),
                Outcome::Answered,
                30,
            ),
        ];
        assemble(d1, d2, nsk(), &ReportOptions::default(), &list)
    }

    #[test]
    fn days_split_at_the_local_midnight() {
        let r = sample();
        assert_eq!(r.days.len(), 2);
        assert_eq!(r.days[0].total.calls, 2);
        assert_eq!(r.days[1].total.calls, 1);
        assert_eq!(r.period.total.calls, 3);
        assert_eq!(r.period.total.answered, 2);
        // Answered within 20 s: one of three queued calls.
        assert_eq!(r.period.total.answered_within_sl, 1);
        assert_eq!(r.period.by_hour[23].figures.calls, 2);
        assert_eq!(r.period.by_hour[0].figures.calls, 1);
    }

    #[test]
    fn csv_has_one_row_per_day_and_group_and_quotes_commas() {
        let csv = render(&sample(), Format::Csv);
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(CSV_HEADER));
        let rows: Vec<&str> = lines.collect();
        // Each day: total + lines + categories + operators + 24 hours; then the period.
        assert_eq!(rows.iter().filter(|r| r.contains(",hour,")).count(), 3 * 24);
        assert!(
            rows.contains(&"2026-11-23,total,,2,1,1,1,0.5000,10.0,40.0,60.0"),
            "{csv}"
        );
        assert!(
            rows.contains(
                &"2026-11-23,category,\"pensions, \"\"benefits\"\"\",1,1,0,1,1.0000,10.0,,60.0"
            ),
            "{csv}"
        );
        assert!(
            rows.contains(&"period,total,,3,2,1,1,0.3333,20.0,40.0,60.0"),
            "{csv}"
        );
    }

    #[test]
    fn table_lists_the_groups() {
        let t = render(&sample(), Format::Table);
        assert!(t.contains("2026-11-23 – 2026-11-24 (UTC+07:00)"), "{t}");
        assert!(t.contains("By day"));
        assert!(t.contains(" regional "), "{t}");
        assert!(t.contains("(no category)"));
        assert!(t.contains("33.3%"), "{t}");
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let h = render(&sample(), Format::Html);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert!(!h.contains("<script"), "no JavaScript");
        assert!(
            !h.contains("src=") && !h.contains("<link"),
            "no external assets"
        );
        assert!(h.contains("data-figure=\"calls\" data-value=\"3\""));
        assert!(h.contains("pensions, &quot;benefits&quot;"));
        assert!(!h.contains("\"benefits\""));
        for chart in ["by_hour", "by_category", "by_line"] {
            assert!(
                h.contains(&format!("<svg data-chart=\"{chart}\"")),
                "{chart}"
            );
        }
        assert!(h.contains("data-hour=\"23\" data-calls=\"2\""));
    }

    #[test]
    fn nice_axis_maximum() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(3), 5);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(11), 20);
        assert_eq!(nice_max(200), 200);
        assert_eq!(offset_label(-12_600), "-03:30");
    }
}
