//! Call reports over a period of days, for `hotlined report`, `GET /api/v1/reports`,
//! `GET /api/v1/reports/daily` and the `/reports` page.
//!
//! The figures themselves come from [`appeals::report::compute_at`] (its module documents the
//! definitions: calls, answered, abandoned, service level, average wait and talk, overdue);
//! this module gathers a period's appeals — a day, an ISO week (Monday to Sunday) or a
//! calendar month ([`Range`]), or any span of days — splits them into local days at
//! `reports.timezone`, and renders the result as a text table, CSV, JSON or a self-contained
//! HTML page with inline SVG charts (no JavaScript, no external assets: a manager opens the
//! file as it is). Everything a person reads is in Russian unless English is asked for
//! ([`Lang`]); services, organisations and districts are shown by their directory names
//! (the CSV and the HTML's `data-key` keep the ids).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;

use appeals::report::{compute_at, day_bounds};
use appeals::{
    Appeal, DailyReport, Figures, Group, HourFigures, Page, ReportOptions, SearchFilter, Store,
};
use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate, Utc};
use serde::Serialize;

use crate::web::names::Names;

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

/// The language a report is written in: Russian unless English is asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Русский.
    #[default]
    Ru,
    /// English.
    En,
}

impl Lang {
    /// `ru` or `en`.
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// `ru` or `en`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }
}

/// The period a report covers, around a given day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Range {
    /// The day itself.
    #[default]
    Day,
    /// Its ISO week, Monday to Sunday.
    Week,
    /// Its calendar month.
    Month,
}

impl Range {
    /// `day`, `week` or `month`.
    pub fn parse(s: &str) -> Option<Range> {
        match s {
            "day" => Some(Range::Day),
            "week" => Some(Range::Week),
            "month" => Some(Range::Month),
            _ => None,
        }
    }

    /// `day`, `week` or `month`.
    pub fn code(self) -> &'static str {
        match self {
            Range::Day => "day",
            Range::Week => "week",
            Range::Month => "month",
        }
    }

    /// The first and last day (included) of the period holding `day`.
    pub fn bounds(self, day: NaiveDate) -> (NaiveDate, NaiveDate) {
        match self {
            Range::Day => (day, day),
            Range::Week => {
                let monday = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
                (monday, monday + Days::new(6))
            }
            Range::Month => {
                let first = day.with_day(1).unwrap_or(day);
                let last = first
                    .checked_add_months(Months::new(1))
                    .and_then(|next| next.pred_opt())
                    .unwrap_or(day);
                (first, last)
            }
        }
    }
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
    /// Per service asked for; without one first.
    pub by_service: Vec<Group>,
    /// Per destination organisation; without one first.
    pub by_organisation: Vec<Group>,
    /// Per district; without one first.
    pub by_district: Vec<Group>,
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
            by_service: d.by_service,
            by_organisation: d.by_organisation,
            by_district: d.by_district,
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
    Ok(assemble(from, to, tz, options, &appeals, Utc::now()))
}

/// Computes the report from the period's appeals, overdue as of `as_of` (pure: the tests
/// call it directly too).
pub fn assemble(
    from: NaiveDate,
    to: NaiveDate,
    tz: FixedOffset,
    options: &ReportOptions,
    appeals: &[Appeal],
    as_of: DateTime<Utc>,
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
            compute_at(d, tz, options, list, as_of)
        })
        .collect();
    PeriodReport {
        from,
        to,
        utc_offset_seconds: tz.local_minus_utc(),
        service_level_seconds: options.service_level_seconds,
        generated_at: as_of,
        period: compute_at(from, tz, options, appeals, as_of).into(),
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

/// Renders the report in `format` and `lang`, naming lines, topics, operators, services,
/// organisations and districts as `names` says.
pub fn render(r: &PeriodReport, format: Format, lang: Lang, names: &Names) -> String {
    let w = words(lang);
    match format {
        Format::Table => table(r, w, names),
        Format::Csv => csv(r, w, names),
        Format::Json => serde_json::to_string_pretty(r).unwrap_or_else(|_| "{}".into()) + "\n",
        Format::Html => html(r, w, names),
    }
}

// ---------------------------------------------------------------------------------------------
// Words

/// Everything a report says, in one language.
pub struct Words {
    pub lang: Lang,
    /// The report's title.
    pub title: &'static str,
    /// "service level: answered within" (followed by the seconds).
    pub sl_within: &'static str,
    /// The unit after a number of seconds.
    pub seconds: &'static str,
    /// "made" (followed by when).
    pub made: &'static str,
    /// The whole period's row and section.
    pub total: &'static str,
    /// The key column of the whole period.
    pub period: &'static str,
    /// The CSV's `day` value of the whole period's rows.
    pub csv_period: &'static str,
    /// Per day: section heading, key column.
    pub by_day: &'static str,
    pub day: &'static str,
    /// Per hour: section heading, key column, chart label.
    pub by_hour: &'static str,
    pub hour: &'static str,
    /// Figure columns.
    pub calls: &'static str,
    pub answered: &'static str,
    pub abandoned: &'static str,
    pub in_sl: &'static str,
    pub service_level: &'static str,
    pub avg_wait: &'static str,
    pub abandoned_wait: &'static str,
    pub avg_talk: &'static str,
    pub overdue: &'static str,
    /// The bars' third part, short and explained.
    pub other: &'static str,
    pub other_long: &'static str,
    /// A chart without calls.
    pub no_calls: &'static str,
    /// Cards' longer labels.
    pub card_answered: &'static str,
    pub card_abandoned: &'static str,
    pub card_overdue: &'static str,
    /// The ranges, for the picker and the period line.
    pub range_day: &'static str,
    pub range_week: &'static str,
    pub range_month: &'static str,
    /// The `/reports` page: its period picker, its exports.
    pub range_label: &'static str,
    pub date_label: &'static str,
    pub show: &'static str,
    pub export_csv: &'static str,
    pub export_html: &'static str,
    pub bad_day: &'static str,
    pub bad_range: &'static str,
    /// The CSV header.
    pub csv_header: &'static str,
    /// Per kind of group ([`GroupKind::ALL`] order): section heading, key column, the row of
    /// appeals without one, the CSV's group name.
    pub group_heading: [&'static str; 6],
    pub group_column: [&'static str; 6],
    pub group_none: [&'static str; 6],
    pub group_csv: [&'static str; 6],
    /// The CSV's group names of the total and hour rows.
    pub csv_total: &'static str,
    pub csv_hour: &'static str,
}

/// The report in Russian.
pub const RU: Words = Words {
    lang: Lang::Ru,
    title: "Отчёт горячей линии",
    sl_within: "уровень обслуживания: ответ в течение",
    seconds: "с",
    made: "составлен",
    total: "Итого",
    period: "Период",
    csv_period: "период",
    by_day: "По дням",
    day: "День",
    by_hour: "Звонки по часам",
    hour: "Час",
    calls: "Звонков",
    answered: "Отвечено",
    abandoned: "Сброшено",
    in_sl: "В пределах УО",
    service_level: "Уровень обслуживания",
    avg_wait: "Среднее ожидание, с",
    abandoned_wait: "Сброс после, с",
    avg_talk: "Средний разговор, с",
    overdue: "Просрочено",
    other: "Прочие",
    other_long: "прочие (только справка, обратный звонок, сообщение, отклонён, в работе)",
    no_calls: "Звонков нет.",
    card_answered: "ответил оператор",
    card_abandoned: "сброшено в ожидании",
    card_overdue: "просрочено (открыты после срока)",
    range_day: "День",
    range_week: "Неделя",
    range_month: "Месяц",
    range_label: "Период",
    date_label: "Дата в периоде",
    show: "Показать",
    export_csv: "Выгрузить CSV",
    export_html: "Отчёт для печати",
    bad_day: "Поле «Дата в периоде»: укажите дату в виде ДД.ММ.ГГГГ, например 06.12.2026.",
    bad_range: "Поле «Период»: выберите день, неделю или месяц.",
    csv_header: "день,группа,ключ,название,звонков,отвечено,сброшено,отвечено в пределах УО,уровень обслуживания,среднее ожидание с,ожидание сброшенных с,средний разговор с,просрочено",
    group_heading: [
        "По линиям",
        "По темам",
        "По операторам",
        "По услугам",
        "По организациям",
        "По районам",
    ],
    group_column: [
        "Линия",
        "Тема",
        "Оператор",
        "Услуга",
        "Организация",
        "Район",
    ],
    group_none: [
        "—",
        "(без темы)",
        "—",
        "(без услуги)",
        "(без организации)",
        "(без района)",
    ],
    group_csv: [
        "линия",
        "тема",
        "оператор",
        "услуга",
        "организация",
        "район",
    ],
    csv_total: "итого",
    csv_hour: "час",
};

/// The report in English.
pub const EN: Words = Words {
    lang: Lang::En,
    title: "Hotline call report",
    sl_within: "service level: answered within",
    seconds: "s",
    made: "made",
    total: "Total",
    period: "period",
    csv_period: "period",
    by_day: "By day",
    day: "Day",
    by_hour: "Calls by hour",
    hour: "Hour",
    calls: "Calls",
    answered: "Answered",
    abandoned: "Abandoned",
    in_sl: "In SL",
    service_level: "Service level",
    avg_wait: "Avg wait, s",
    abandoned_wait: "Abandoned after, s",
    avg_talk: "Avg talk, s",
    overdue: "Overdue",
    other: "Other",
    other_long: "other (information only, callback, message, rejected, in progress)",
    no_calls: "No calls.",
    card_answered: "answered by an operator",
    card_abandoned: "abandoned while waiting",
    card_overdue: "overdue (open past the due date)",
    range_day: "Day",
    range_week: "Week",
    range_month: "Month",
    range_label: "Period",
    date_label: "A day in the period",
    show: "Show",
    export_csv: "Export CSV",
    export_html: "Printable report",
    bad_day: "A day in the period: give a date as DD.MM.YYYY, e.g. 06.12.2026.",
    bad_range: "Period: choose a day, a week or a month.",
    csv_header: "day,group,key,name,calls,answered,abandoned,answered_within_sl,service_level,avg_wait_seconds,avg_wait_abandoned_seconds,avg_talk_seconds,overdue",
    group_heading: [
        "By line",
        "By category",
        "By operator",
        "By service",
        "By organisation",
        "By district",
    ],
    group_column: [
        "Line",
        "Category",
        "Operator",
        "Service",
        "Organisation",
        "District",
    ],
    group_none: [
        "-",
        "(no category)",
        "-",
        "(no service)",
        "(no organisation)",
        "(no district)",
    ],
    group_csv: [
        "line",
        "category",
        "operator",
        "service",
        "organisation",
        "district",
    ],
    csv_total: "total",
    csv_hour: "hour",
};

/// The words of `lang`.
pub fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::Ru => &RU,
        Lang::En => &EN,
    }
}

impl Words {
    /// The name of `range`.
    pub fn range(&self, range: Range) -> &'static str {
        match range {
            Range::Day => self.range_day,
            Range::Week => self.range_week,
            Range::Month => self.range_month,
        }
    }
}

/// What a report groups calls by, besides days and hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKind {
    Line,
    Category,
    Operator,
    Service,
    Organisation,
    District,
}

impl GroupKind {
    /// In the order reports show them.
    pub const ALL: [GroupKind; 6] = [
        GroupKind::Line,
        GroupKind::Category,
        GroupKind::Operator,
        GroupKind::Service,
        GroupKind::Organisation,
        GroupKind::District,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// `line`, `category`, … (the HTML's `data-group`, the JSON's `by_…`).
    pub fn code(self) -> &'static str {
        match self {
            GroupKind::Line => "line",
            GroupKind::Category => "category",
            GroupKind::Operator => "operator",
            GroupKind::Service => "service",
            GroupKind::Organisation => "organisation",
            GroupKind::District => "district",
        }
    }

    /// The section heading.
    pub fn heading(self, w: &Words) -> &'static str {
        w.group_heading[self.index()]
    }

    /// The key column's header.
    pub fn column(self, w: &Words) -> &'static str {
        w.group_column[self.index()]
    }

    /// The groups of a summary.
    pub fn of(self, s: &Summary) -> &[Group] {
        match self {
            GroupKind::Line => &s.by_line,
            GroupKind::Category => &s.by_category,
            GroupKind::Operator => &s.by_operator,
            GroupKind::Service => &s.by_service,
            GroupKind::Organisation => &s.by_organisation,
            GroupKind::District => &s.by_district,
        }
    }

    /// The name a person reads for the group `id`: the line's name, the topic's queue title,
    /// the operator's display name, the directory's for services, organisations and
    /// districts (the id itself when the configuration no longer has it).
    pub fn name(self, id: &str, names: &Names) -> String {
        match self {
            GroupKind::Line => names.line(id),
            GroupKind::Category => names.category(id),
            GroupKind::Operator => names.operator(id),
            GroupKind::Service => names.service(id),
            GroupKind::Organisation => names.organisation(id),
            GroupKind::District => names.district(id),
        }
    }
}

/// One row of a group table or chart: the key (an id; `""` for "without one"), the name a
/// person reads, and its figures.
pub struct Row<'a> {
    pub key: String,
    pub name: String,
    pub figures: &'a Figures,
}

/// The rows of `kind` in `s`, named.
pub fn rows<'a>(kind: GroupKind, s: &'a Summary, w: &Words, names: &Names) -> Vec<Row<'a>> {
    kind.of(s)
        .iter()
        .map(|g| Row {
            key: g.key.clone().unwrap_or_default(),
            name: match &g.key {
                Some(k) => kind.name(k, names),
                None => w.group_none[kind.index()].to_owned(),
            },
            figures: &g.figures,
        })
        .collect()
}

/// One row per day of the period, named ISO (the exports).
pub fn day_rows(r: &PeriodReport) -> Vec<Row<'_>> {
    day_rows_with(r, |d| d.to_string())
}

/// One row per day of the period, keyed ISO and named as `show` writes a date (the page).
pub fn day_rows_with(r: &PeriodReport, show: impl Fn(NaiveDate) -> String) -> Vec<Row<'_>> {
    r.days
        .iter()
        .map(|d| Row {
            key: d.day.to_string(),
            name: show(d.day),
            figures: &d.total,
        })
        .collect()
}

/// The hours with calls.
pub fn hour_rows(s: &Summary) -> Vec<Row<'_>> {
    s.by_hour
        .iter()
        .filter(|h| h.figures.calls > 0)
        .map(|h| Row {
            key: format!("{:02}:00", h.hour),
            name: format!("{:02}:00", h.hour),
            figures: &h.figures,
        })
        .collect()
}

/// `2026-11-23` or `2026-11-23 – 2026-11-29` (the exports).
pub fn period_label(r: &PeriodReport) -> String {
    period_label_with(r, |d| d.to_string())
}

/// The period's day, or its first and last day, each as `show` writes a date (the page:
/// `23.11.2026 – 29.11.2026`).
pub fn period_label_with(r: &PeriodReport, show: impl Fn(NaiveDate) -> String) -> String {
    if r.from == r.to {
        show(r.from)
    } else {
        format!("{} – {}", show(r.from), show(r.to))
    }
}

fn secs(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

// ---------------------------------------------------------------------------------------------
// Text table

fn figures_table(out: &mut String, w: &Words, title: &str, key_header: &str, rows: &[Row<'_>]) {
    let header = [
        key_header,
        w.calls,
        w.answered,
        w.abandoned,
        w.in_sl,
        w.service_level,
        w.avg_wait,
        w.abandoned_wait,
        w.avg_talk,
        w.overdue,
    ];
    let body: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let f = r.figures;
            [
                r.name.clone(),
                f.calls.to_string(),
                f.answered.to_string(),
                f.abandoned.to_string(),
                f.answered_within_sl.to_string(),
                pct(f.service_level),
                secs(f.avg_wait),
                secs(f.avg_wait_abandoned),
                secs(f.avg_talk),
                f.overdue.to_string(),
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

fn table(r: &PeriodReport, w: &Words, names: &Names) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} (UTC{}); {} {} {}",
        w.title,
        period_label(r),
        offset_label(r.utc_offset_seconds),
        w.sl_within,
        r.service_level_seconds,
        w.seconds
    );
    let p = &r.period;
    let total = [Row {
        key: String::new(),
        name: period_label(r),
        figures: &p.total,
    }];
    figures_table(&mut out, w, w.total, w.period, &total);
    if r.days.len() > 1 {
        figures_table(&mut out, w, w.by_day, w.day, &day_rows(r));
    }
    for kind in GroupKind::ALL {
        figures_table(
            &mut out,
            w,
            kind.heading(w),
            kind.column(w),
            &rows(kind, p, w, names),
        );
    }
    figures_table(&mut out, w, w.by_hour, w.hour, &hour_rows(p));
    out
}

// ---------------------------------------------------------------------------------------------
// CSV

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

fn csv_rows(out: &mut String, w: &Words, names: &Names, day: &str, s: &Summary) {
    let mut row = |group: &str, key: &str, name: &str, f: &Figures| {
        let _ = writeln!(
            out,
            "{day},{group},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(key),
            csv_field(name),
            f.calls,
            f.answered,
            f.abandoned,
            f.answered_within_sl,
            csv_num(f.service_level, 4),
            csv_num(f.avg_wait, 1),
            csv_num(f.avg_wait_abandoned, 1),
            csv_num(f.avg_talk, 1),
            f.overdue,
        );
    };
    row(w.csv_total, "", "", &s.total);
    for kind in GroupKind::ALL {
        for r in rows(kind, s, w, names) {
            row(w.group_csv[kind.index()], &r.key, &r.name, r.figures);
        }
    }
    for h in &s.by_hour {
        row(w.csv_hour, &h.hour.to_string(), "", &h.figures);
    }
}

fn csv(r: &PeriodReport, w: &Words, names: &Names) -> String {
    let mut out = String::from(w.csv_header);
    out.push('\n');
    for d in &r.days {
        csv_rows(
            &mut out,
            w,
            names,
            &d.day.to_string(),
            &Summary::from(d.clone()),
        );
    }
    if r.days.len() > 1 {
        csv_rows(&mut out, w, names, w.csv_period, &r.period);
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
table{border-collapse:collapse;width:100%;font-size:.85rem}th,td{padding:.3rem .4rem;border-bottom:1px solid #e6eaef;text-align:right}th{font-size:.78rem;font-weight:600}\
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

/// A table of figures: one row per group, `data-group` / `data-key` / `data-figure` /
/// `data-value` for machines, names and rounded figures for people. The `/reports` page
/// shows the same tables.
pub(crate) fn html_table(
    out: &mut String,
    w: &Words,
    group: &str,
    key_header: &str,
    rows: &[Row<'_>],
) {
    let _ = write!(
        out,
        "<table class=\"results\" data-group=\"{group}\"><thead><tr><th scope=\"col\">{}</th>",
        esc(key_header)
    );
    for h in [
        w.calls,
        w.answered,
        w.abandoned,
        w.in_sl,
        w.service_level,
        w.avg_wait,
        w.abandoned_wait,
        w.avg_talk,
        w.overdue,
    ] {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        let f = r.figures;
        let _ = write!(
            out,
            "<tr data-key=\"{}\"><td>{}</td><td data-figure=\"calls\">{}</td><td data-figure=\"answered\">{}</td><td data-figure=\"abandoned\">{}</td><td data-figure=\"answered_within_sl\">{}</td><td data-figure=\"service_level\" data-value=\"{}\">{}</td><td data-figure=\"avg_wait\" data-value=\"{}\">{}</td><td data-figure=\"avg_wait_abandoned\" data-value=\"{}\">{}</td><td data-figure=\"avg_talk\" data-value=\"{}\">{}</td><td data-figure=\"overdue\">{}</td></tr>",
            esc(&r.key),
            esc(&r.name),
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
            f.overdue,
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
fn parts<'w>(f: &Figures, w: &'w Words) -> [(u64, &'static str, &'w str); 3] {
    let other = f.calls.saturating_sub(f.answered + f.abandoned);
    [
        (f.answered, "ans", w.answered),
        (f.abandoned, "abd", w.abandoned),
        (other, "oth", w.other),
    ]
}

/// Calls per hour as vertical stacked bars.
pub(crate) fn hour_chart(out: &mut String, w: &Words, hours: &[HourFigures]) {
    let (width, h, left, top, bottom) = (760.0_f64, 240.0_f64, 40.0_f64, 16.0_f64, 28.0_f64);
    let plot_h = h - top - bottom;
    let max = nice_max(hours.iter().map(|x| x.figures.calls).max().unwrap_or(0));
    let slot = (width - left - 10.0) / 24.0;
    let _ = write!(
        out,
        "<svg data-chart=\"by_hour\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(w.by_hour)
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
            width - 10.0,
            left - 4.0,
            y + 4.0
        );
    }
    for hf in hours {
        let x = left + slot * f64::from(hf.hour) + slot * 0.15;
        let bw = slot * 0.7;
        let mut y = top + plot_h;
        for (n, class, what) in parts(&hf.figures, w) {
            if n == 0 {
                continue;
            }
            let bh = plot_h * (n as f64) / (max as f64);
            y -= bh;
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\"><title>{:02}:00 {}: {n}</title></rect>",
                hf.hour,
                esc(what)
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

/// Calls per group as horizontal stacked bars (`data-key`: the row's key).
pub(crate) fn group_chart(out: &mut String, w: &Words, chart: &str, label: &str, rows: &[Row<'_>]) {
    if rows.is_empty() {
        let _ = write!(out, "<p class=\"sub\">{}</p>", esc(w.no_calls));
        return;
    }
    let (width, row_h, label_w) = (760.0_f64, 26.0_f64, 260.0_f64);
    let h = row_h * rows.len() as f64 + 10.0;
    let max = nice_max(rows.iter().map(|r| r.figures.calls).max().unwrap_or(0));
    let plot_w = width - label_w - 50.0;
    let _ = write!(
        out,
        "<svg data-chart=\"{chart}\" viewBox=\"0 0 {width} {h}\" width=\"{width}\" height=\"{h}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(label)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        // 11px labels end where the bars start: about 34 characters fit in front of them
        let shown: String = if r.name.chars().count() > 34 {
            r.name
                .chars()
                .take(33)
                .chain(std::iter::once('…'))
                .collect()
        } else {
            r.name.clone()
        };
        let _ = write!(
            out,
            "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\"><title>{}</title>{}</text>",
            label_w - 8.0,
            y + row_h * 0.62,
            esc(&r.name),
            esc(&shown)
        );
        let mut x = label_w;
        for (n, class, what) in parts(r.figures, w) {
            if n == 0 {
                continue;
            }
            let bw = plot_w * (n as f64) / (max as f64);
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\"><title>{} — {}: {n}</title></rect>",
                y + 3.0,
                row_h - 8.0,
                esc(&r.name),
                esc(what)
            );
            x += bw;
        }
        let _ = write!(
            out,
            "<text class=\"lbl\" x=\"{:.1}\" y=\"{:.1}\" data-key=\"{}\" data-calls=\"{}\">{}</text>",
            x + 5.0,
            y + row_h * 0.62,
            esc(&r.key),
            r.figures.calls,
            r.figures.calls
        );
    }
    out.push_str("</svg>");
}

fn html(r: &PeriodReport, w: &Words, names: &Names) -> String {
    let p = &r.period;
    let t = &p.total;
    // for people: dates as the pages write them (дд.мм.гггг); the CSV keeps ISO
    let period = period_label_with(r, crate::web::show_day);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} {}</title><style>{CSS}</style></head><body>",
        w.lang.code(),
        esc(w.title),
        esc(&period)
    );
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"sub\" data-period-from=\"{}\" data-period-to=\"{}\">{} (UTC{}) · {} {} {} · {} {}</p>",
        esc(w.title),
        r.from,
        r.to,
        esc(&period),
        offset_label(r.utc_offset_seconds),
        esc(w.sl_within),
        r.service_level_seconds,
        esc(w.seconds),
        esc(w.made),
        r.generated_at.format("%Y-%m-%d %H:%M UTC")
    );
    out.push_str("<div class=\"cards\">");
    let lower = |s: &str| s.to_lowercase();
    card(
        &mut out,
        "calls",
        &lower(w.calls),
        t.calls.to_string(),
        t.calls.to_string(),
    );
    card(
        &mut out,
        "answered",
        w.card_answered,
        t.answered.to_string(),
        t.answered.to_string(),
    );
    card(
        &mut out,
        "abandoned",
        w.card_abandoned,
        t.abandoned.to_string(),
        t.abandoned.to_string(),
    );
    card(
        &mut out,
        "service_level",
        &format!(
            "{} ({} {})",
            lower(w.service_level),
            r.service_level_seconds,
            w.seconds
        ),
        pct(t.service_level),
        raw(t.service_level),
    );
    card(
        &mut out,
        "avg_wait",
        &lower(w.avg_wait),
        secs(t.avg_wait),
        raw(t.avg_wait),
    );
    card(
        &mut out,
        "avg_wait_abandoned",
        &lower(w.abandoned_wait),
        secs(t.avg_wait_abandoned),
        raw(t.avg_wait_abandoned),
    );
    card(
        &mut out,
        "avg_talk",
        &lower(w.avg_talk),
        secs(t.avg_talk),
        raw(t.avg_talk),
    );
    card(
        &mut out,
        "overdue",
        w.card_overdue,
        t.overdue.to_string(),
        t.overdue.to_string(),
    );
    out.push_str("</div>");
    let _ = write!(
        out,
        "<p class=\"key\"><span style=\"background:#2e8b57\"></span>{}<span style=\"background:#d9534f\"></span>{}<span style=\"background:#9aa7b5\"></span>{}</p>",
        esc(&lower(w.answered)),
        esc(&lower(w.abandoned)),
        esc(w.other_long)
    );
    let _ = write!(out, "<h2>{}</h2>", esc(w.by_hour));
    hour_chart(&mut out, w, &p.by_hour);
    if r.days.len() > 1 {
        let _ = write!(out, "<h2>{}</h2>", esc(w.by_day));
        group_chart(
            &mut out,
            w,
            "by_day",
            w.by_day,
            &day_rows_with(r, crate::web::show_day),
        );
    }
    for kind in [
        GroupKind::Category,
        GroupKind::Line,
        GroupKind::Service,
        GroupKind::Organisation,
        GroupKind::District,
    ] {
        let _ = write!(out, "<h2>{}</h2>", esc(kind.heading(w)));
        group_chart(
            &mut out,
            w,
            &format!("by_{}", kind.code()),
            kind.heading(w),
            &rows(kind, p, w, names),
        );
    }
    if r.days.len() > 1 {
        let _ = write!(out, "<h2>{}</h2>", esc(w.by_day));
        html_table(
            &mut out,
            w,
            "day",
            w.day,
            &day_rows_with(r, crate::web::show_day),
        );
    }
    for kind in GroupKind::ALL {
        let _ = write!(out, "<h2>{}</h2>", esc(kind.heading(w)));
        html_table(
            &mut out,
            w,
            kind.code(),
            kind.column(w),
            &rows(kind, p, w, names),
        );
    }
    let _ = write!(out, "<h2>{}</h2>", esc(w.by_hour));
    html_table(&mut out, w, "hour", w.hour, &hour_rows(p));
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
        assemble(d1, d2, nsk(), &ReportOptions::default(), &list, late)
    }

    fn names() -> Names {
        Names::default()
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
        let csv = render(&sample(), Format::Csv, Lang::En, &names());
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some(EN.csv_header));
        let rows: Vec<&str> = lines.collect();
        // Each day: total + lines + categories + operators + 24 hours; then the period.
        assert_eq!(rows.iter().filter(|r| r.contains(",hour,")).count(), 3 * 24);
        assert!(
            rows.contains(&"2026-11-23,total,,,2,1,1,1,0.5000,10.0,40.0,60.0,0"),
            "{csv}"
        );
        assert!(
            rows.contains(
                &"2026-11-23,category,\"pensions, \"\"benefits\"\"\",\"pensions, \"\"benefits\"\"\",1,1,0,1,1.0000,10.0,,60.0,0"
            ),
            "{csv}"
        );
        assert!(
            rows.contains(&"period,total,,,3,2,1,1,0.3333,20.0,40.0,60.0,0"),
            "{csv}"
        );
    }

    #[test]
    fn groups_are_named_as_configured_and_keyed_by_id() {
        let labels = crate::labels::Labels::default()
            .with_lines([("regional".to_owned(), "Региональный call-центр".to_owned())]);
        let mut names =
            Names::default().with_operators([("op1".to_owned(), "Анна Петрова".to_owned())]);
        names.labels = std::sync::Arc::new(labels);
        let csv = render(&sample(), Format::Csv, Lang::En, &names);
        let period: Vec<&str> = csv.lines().filter(|l| l.starts_with("period,")).collect();
        assert!(
            period
                .iter()
                .any(|r| r.starts_with("period,line,regional,Региональный call-центр,")),
            "{csv}"
        );
        assert!(
            period
                .iter()
                .any(|r| r.starts_with("period,operator,op1,Анна Петрова,")),
            "{csv}"
        );
        // a line no longer configured keeps its id
        assert!(
            period
                .iter()
                .any(|r| r.starts_with("period,line,city,city,")),
            "{csv}"
        );
    }

    #[test]
    fn table_lists_the_groups() {
        let t = render(&sample(), Format::Table, Lang::En, &names());
        assert!(t.contains("2026-11-23 – 2026-11-24 (UTC+07:00)"), "{t}");
        assert!(t.contains("By day"));
        assert!(t.contains(" regional "), "{t}");
        assert!(t.contains("(no category)"));
        assert!(t.contains("33.3%"), "{t}");
    }

    #[test]
    fn html_is_self_contained_and_escaped() {
        let h = render(&sample(), Format::Html, Lang::En, &names());
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

    #[test]
    fn ranges_are_the_iso_week_and_the_calendar_month() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        // 2026-12-31 is a Thursday: its ISO week runs Monday 28 Dec to Sunday 3 Jan.
        assert_eq!(
            Range::Week.bounds(d(2026, 12, 31)),
            (d(2026, 12, 28), d(2027, 1, 3))
        );
        assert_eq!(
            Range::Week.bounds(d(2026, 12, 28)),
            (d(2026, 12, 28), d(2027, 1, 3))
        );
        assert_eq!(
            Range::Week.bounds(d(2027, 1, 3)),
            (d(2026, 12, 28), d(2027, 1, 3))
        );
        assert_eq!(
            Range::Month.bounds(d(2028, 2, 10)),
            (d(2028, 2, 1), d(2028, 2, 29))
        );
        assert_eq!(
            Range::Month.bounds(d(2026, 12, 31)),
            (d(2026, 12, 1), d(2026, 12, 31))
        );
        assert_eq!(
            Range::Day.bounds(d(2026, 3, 1)),
            (d(2026, 3, 1), d(2026, 3, 1))
        );
        assert_eq!(Range::parse("year"), None);
        assert_eq!(Range::parse("month"), Some(Range::Month));
    }

    #[test]
    fn overdue_and_case_groups_are_counted() {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap();
        let as_of = Utc.with_ymd_and_hms(2026, 12, 5, 3, 0, 0).unwrap();
        let case = |service: &str, district: Option<&str>, due_days: i64, status: Status| {
            let mut a = appeal(at, "city", None, Outcome::Answered, 5);
            a.case.service = Some(service.into());
            a.case.district = district.map(str::to_owned);
            a.case.organisation = Some("kcson-len".into());
            a.case.due_at = Some(at + chrono::Duration::days(due_days));
            a.status = status;
            a
        };
        let list = vec![
            // past due and open: overdue
            case("home-care", Some("len"), 5, Status::InProgress),
            // past due but done: not overdue
            case("home-care", Some("len"), 5, Status::Done),
            // due after as_of: not overdue yet
            case("meals", None, 30, Status::Forwarded),
        ];
        let r = assemble(d1, d1, nsk(), &ReportOptions::default(), &list, as_of);
        let p = &r.period;
        assert_eq!(p.total.overdue, 1);
        let service = |k: &str| p.by_service.iter().find(|g| g.key.as_deref() == Some(k));
        assert_eq!(
            service("home-care").map(|g| (g.figures.calls, g.figures.overdue)),
            Some((2, 1))
        );
        assert_eq!(
            service("meals").map(|g| (g.figures.calls, g.figures.overdue)),
            Some((1, 0))
        );
        // without a district first, then by id
        let districts: Vec<_> = p
            .by_district
            .iter()
            .map(|g| (g.key.clone(), g.figures.calls))
            .collect();
        assert_eq!(districts, vec![(None, 1), (Some("len".into()), 2)]);
        assert_eq!(p.by_organisation.len(), 1);
        assert_eq!(r.days[0].total.overdue, 1);
        // the same appeals a week later: the one still open is still overdue
        let csv = render(&r, Format::Csv, Lang::En, &names());
        assert!(
            csv.contains("\n2026-11-23,service,home-care,home-care,2,2,0,2,1.0000,5.0,,60.0,1\n"),
            "{csv}"
        );
        assert!(
            csv.contains("\n2026-11-23,district,,(no district),1,"),
            "{csv}"
        );
    }

    #[test]
    fn russian_unless_english_is_asked_for() {
        let r = sample();
        let csv = render(&r, Format::Csv, Lang::Ru, &names());
        assert!(csv.starts_with(RU.csv_header), "{csv}");
        assert!(csv.contains("\n2026-11-23,итого,,,2,1,1,"), "{csv}");
        assert!(csv.contains("\nпериод,итого,,,3,"), "{csv}");
        let t = render(&r, Format::Table, Lang::Ru, &names());
        assert!(t.starts_with("Отчёт горячей линии 2026-11-23 – 2026-11-24 (UTC+07:00); уровень обслуживания: ответ в течение 20 с"), "{t}");
        assert!(
            t.contains("(без темы)") && t.contains("По дням") && t.contains("Просрочено"),
            "{t}"
        );
        let h = render(&r, Format::Html, Lang::Ru, &names());
        assert!(h.contains("<html lang=\"ru\">"));
        assert!(
            h.contains("23.11.2026 – 24.11.2026"),
            "the period as the pages write it"
        );
        assert!(!h.contains("2026-11-23 –"), "no ISO period for people");
        // no English word a person reads: every heading, column and chart label is Russian
        for english in [
            "Calls",
            "Answered",
            "Abandoned",
            "Service level",
            "By ",
            "Hour",
            "No calls",
            "other",
            "answered",
        ] {
            let visible = strip_tags(&h);
            assert!(
                !visible.contains(english),
                "{english:?} in the Russian report: {visible}"
            );
        }
    }

    /// The text of an HTML page a person reads (tag contents), without the tags and styles.
    fn strip_tags(html: &str) -> String {
        let body = html.split("</style>").nth(1).unwrap_or(html);
        let mut out = String::new();
        let mut in_tag = false;
        for c in body.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    out.push(' ');
                }
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    }
}
