//! Exports of the appeal list (`GET /api/v1/appeals?format=csv|xlsx`): the rows the filter
//! finds, newest first, with Russian column headings and labels by default (`lang=en` for
//! English); directory ids shown by their names, times at `reports.timezone`. CSV is UTF-8
//! with a byte order mark (so spreadsheet programs read Cyrillic right) and cells that
//! would start a formula made text; XLSX is written by `rust_xlsxwriter`, every cell a
//! string. Every export is an audit line (`export`, what, format, rows, the filters used).

use appeals::{Appeal, Page, SearchFilter};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};

use super::access::Caller;
use super::{AdminState, ApiError};
use crate::directory::Directory;
use crate::web::chrome::{outcome_label, status_label, Lang};

/// The most appeals one export holds.
pub(crate) const EXPORT_MAX: u64 = 100_000;

/// An export's file type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }
}

/// (Russian, English) column headings, in order.
const COLUMNS: [(&str, &str); 17] = [
    ("Обращение", "Appeal"),
    ("Поступило", "Arrived"),
    ("Линия", "Line"),
    ("Телефон", "Caller"),
    ("Очередь", "Queue"),
    ("Оператор", "Operator"),
    ("Исход звонка", "Outcome"),
    ("Статус", "Status"),
    ("Услуга", "Service"),
    ("Район", "District"),
    ("Организация", "Organisation"),
    ("Исполнитель", "Assignee"),
    ("Срок", "Due"),
    ("Заявитель", "Citizen"),
    ("Адрес", "Address"),
    ("Примечания", "Notes"),
    ("Результат", "Resolution"),
];

/// The cells of one appeal, in [`COLUMNS`] order.
fn cells(a: &Appeal, d: &Directory, tz: FixedOffset, lang: Lang) -> [String; 17] {
    let when = |t: &DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let c = &a.case;
    let named = |id: &Option<String>, name: &dyn Fn(&str) -> Option<String>| {
        id.as_deref()
            .map(|i| name(i).unwrap_or_else(|| i.to_owned()))
            .unwrap_or_default()
    };
    [
        a.id.to_string(),
        when(&a.arrived_at),
        a.line.clone(),
        a.caller_number.clone(),
        text(&a.queue),
        text(&a.operator),
        a.outcome
            .map(|o| outcome_label(lang, o.as_str()))
            .unwrap_or_default(),
        status_label(lang, a.status.as_str()),
        named(&c.service, &|i| d.service(i).map(|s| s.title.clone())),
        named(&c.district, &|i| d.district(i).map(|x| x.name.clone())),
        named(&c.organisation, &|i| {
            d.organisation(i).map(|o| o.name.clone())
        }),
        text(&c.assignee),
        c.due_at.as_ref().map(when).unwrap_or_default(),
        c.citizen_id.map(|i| i.to_string()).unwrap_or_default(),
        text(&c.address),
        text(&a.notes),
        text(&c.resolution),
    ]
}

/// One CSV cell: quoted when it holds a comma, quote or line break; one that a spreadsheet
/// would take for a formula (a leading `=`, `+`, `-`, `@`) starts with `'`.
pub(crate) fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Every appeal `filter` finds, newest first, as a file in `format` (the API's and the
/// registry page's exports): more than [`EXPORT_MAX`] is 422 naming `format`; each export is
/// an audit line naming `what` was exported and the `filters` used (never their values).
pub(crate) async fn appeals(
    s: &AdminState,
    who: &Caller,
    what: &str,
    filter: &SearchFilter,
    filters: Vec<&'static str>,
    format: Format,
    lang: Lang,
) -> Result<Response, ApiError> {
    let store = s.store()?;
    // counted no further than the most an export holds
    let found = store.count_at_most(filter, EXPORT_MAX).await?;
    if !found.exact {
        return Err(ApiError::invalid(
            "format",
            format!("format: more than {EXPORT_MAX} appeals found, an export holds at most {EXPORT_MAX}: narrow the filter"),
        ));
    }
    let total = found.count;
    let mut rows = Vec::new();
    while (rows.len() as u64) < total {
        let page = Page {
            offset: rows.len() as u64,
            limit: Page::MAX_LIMIT,
        };
        let more = store.search(filter, page).await?;
        if more.is_empty() {
            break;
        }
        rows.extend(more);
    }
    s.audit(who.audit(
        "export",
        None,
        serde_json::json!({
            "what": what,
            "format": format.as_str(),
            "rows": rows.len(),
            "filters": filters,
        }),
    ))
    .await;
    render(format, &rows, &s.directory.get(), s.reports.tz, lang)
}

/// The file of `appeals` in `format`, as an attachment.
fn render(
    format: Format,
    appeals: &[Appeal],
    d: &Directory,
    tz: FixedOffset,
    lang: Lang,
) -> Result<Response, ApiError> {
    let heads: Vec<&str> = COLUMNS
        .iter()
        .map(|(ru, en)| if lang == Lang::En { *en } else { *ru })
        .collect();
    let rows = appeals.iter().map(|a| cells(a, d, tz, lang));
    let (kind, body) = match format {
        Format::Csv => {
            let mut out = String::from("\u{feff}");
            let line = |cells: &mut dyn Iterator<Item = &str>| {
                cells.map(csv_field).collect::<Vec<_>>().join(",") + "\r\n"
            };
            out.push_str(&line(&mut heads.iter().copied()));
            for r in rows {
                out.push_str(&line(&mut r.iter().map(String::as_str)));
            }
            ("text/csv; charset=utf-8", out.into_bytes())
        }
        Format::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            xlsx(
                if lang == Lang::En {
                    "Appeals"
                } else {
                    "Обращения"
                },
                &heads,
                rows.collect(),
            )
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the XLSX file could not be made: {e}"),
                )
            })?,
        ),
    };
    let name = format!("attachment; filename=\"appeals.{}\"", format.as_str());
    Ok((
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response())
}

fn xlsx(
    title: &str,
    heads: &[&str],
    rows: Vec<[String; 17]>,
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format as Style, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    sheet.set_name(title)?;
    let bold = Style::new().set_bold();
    for (c, h) in heads.iter().enumerate() {
        let c = u16::try_from(c).unwrap_or(u16::MAX);
        sheet.write_string_with_format(0, c, *h, &bold)?;
    }
    let last_row = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    for (r, cells) in rows.iter().enumerate() {
        let r = u32::try_from(r + 1).unwrap_or(u32::MAX);
        for (c, v) in cells.iter().enumerate() {
            if !v.is_empty() {
                sheet.write_string(r, u16::try_from(c).unwrap_or(u16::MAX), v)?;
            }
        }
    }
    sheet.set_freeze_panes(1, 0)?;
    let last_col = u16::try_from(heads.len().saturating_sub(1)).unwrap_or(0);
    sheet.autofilter(0, 0, last_row, last_col)?;
    book.save_to_buffer()
}
