//! The read side and the admin's changes: [`Store`].

use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row};
use uuid::Uuid;

use crate::db::{self, Backend};
use crate::model::{
    Appeal, AppealCase, AppealEvent, AppealId, AppealWithEvents, Callback, CallbackStatus,
    EventKind, OperatorSession, Status,
};
use crate::partner;
use crate::report::{self, DailyReport, ReportOptions};
use crate::writer::now_ms;
use crate::Error;

/// Which appeals to list. Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchFilter {
    /// Arrived at or after.
    pub from: Option<DateTime<Utc>>,
    /// Arrived before.
    pub to: Option<DateTime<Utc>>,
    /// Line (dialled number), exactly.
    pub line: Option<String>,
    /// Category, exactly.
    pub category: Option<String>,
    /// Follow-up status.
    pub status: Option<Status>,
    /// Digits contained in the caller's number (`913` finds `+79131234567`).
    pub caller: Option<String>,
    /// Service id, exactly.
    #[serde(default)]
    pub service: Option<String>,
    /// District id, exactly.
    #[serde(default)]
    pub district: Option<String>,
    /// Destination organisation id, exactly.
    #[serde(default)]
    pub organisation: Option<String>,
    /// Assignee's login, exactly.
    #[serde(default)]
    pub assignee: Option<String>,
    /// The citizen's appeals.
    #[serde(default)]
    pub citizen_id: Option<Uuid>,
    /// Open (not done, not declined) and due before this instant: overdue at it.
    #[serde(default)]
    pub overdue_at: Option<DateTime<Utc>>,
    /// The operator who answered, exactly (an operator's own appeals).
    #[serde(default)]
    pub operator: Option<String>,
    /// Free text: every word (as a word's beginning, any case, ё = е) in the appeal's notes,
    /// address or resolution — or, with [`SearchFilter::text_in_citizens`], in the name,
    /// address or notes of the citizen the appeal is linked to. See [`search_terms`].
    #[serde(default)]
    pub text: Option<String>,
    /// Whether [`SearchFilter::text`] also looks in the citizens' cards: only for those who
    /// may see the cards.
    #[serde(default)]
    pub text_in_citizens: bool,
}

/// Most words a free-text query uses; the rest are ignored.
pub const MAX_TERMS: usize = 8;

/// The words of a free-text query as the indexes hold them: lower case, ё as е, letters
/// and digits only (anything else separates words), at most [`MAX_TERMS`]. Empty when the
/// query has no letter or digit.
pub fn search_terms(q: &str) -> Vec<String> {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.chars()
                .flat_map(char::to_lowercase)
                .map(|c| if c == 'ё' { 'е' } else { c })
                .collect()
        })
        .take(MAX_TERMS)
        .collect()
}

/// The full text match of `terms` (from [`search_terms`], not empty) in `table`
/// (`appeals` or `citizens`) on `backend`: the key column the match gives (`rowid` on
/// SQLite, where the FTS5 index is keyed by it; `id` on PostgreSQL), a sub-select of the
/// matching keys with `$?` where the query goes, and that query. Every term matches as a
/// word's beginning.
pub(crate) fn fts_keys(
    backend: Backend,
    table: &str,
    terms: &[String],
) -> (&'static str, String, String) {
    match backend {
        Backend::Sqlite => (
            "rowid",
            format!("SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH $?"),
            terms
                .iter()
                .map(|t| format!("\"{t}\"*"))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Backend::Postgres => {
            let columns = if table == "citizens" {
                "name, address, notes"
            } else {
                "notes, address, resolution"
            };
            (
                "id",
                format!(
                    "SELECT id FROM {table} \
                     WHERE hotline_search_vector({columns}) @@ to_tsquery('simple', $?)"
                ),
                terms
                    .iter()
                    .map(|t| format!("{t}:*"))
                    .collect::<Vec<_>>()
                    .join(" & "),
            )
        }
    }
}

/// A page of results: skip `offset`, return at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// How many to skip.
    pub offset: u64,
    /// How many at most (capped at [`Page::MAX_LIMIT`]).
    pub limit: u32,
}

impl Page {
    /// The largest page served.
    pub const MAX_LIMIT: u32 = 1000;
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: 50,
        }
    }
}

/// Reads appeals and records the admin's changes on them. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    backend: Backend,
}

pub(crate) const APPEAL_COLUMNS: &str =
    "id, call_id, line, caller_number, arrived_at, answered_at, ended_at, \
    ivr_path, category, queue, wait_seconds, talk_seconds, operator, outcome, recording, status, \
    destination_org, notes, partner_ref, updated_at, citizen_id, service, address, district, \
    organisation, assignee, due_at, pending_until, disposition, resolution, version";

/// A value bound to a dynamically built query.
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

impl Store {
    /// Connects (creating a SQLite file and its folder if needed) and brings the schema up to
    /// date.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let backend = Backend::from_url(url)?;
        let pool = db::connect(url, 5, Duration::from_secs(5)).await?;
        db::migrate(&pool).await?;
        Ok(Self { pool, backend })
    }

    /// The pool, for code that needs its own queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One appeal with its timeline, or `None` if there is no such appeal.
    pub async fn get(&self, id: AppealId) -> Result<Option<AppealWithEvents>, Error> {
        let sql = format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let appeal = appeal_from_row(&row)?;
        let events = sqlx::query(
            "SELECT id, seq, at, kind, data, actor FROM appeal_events \
             WHERE appeal_id = $1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from_row)
        .collect::<Result<_, _>>()?;
        Ok(Some(AppealWithEvents { appeal, events }))
    }

    /// Appeals matching the filter, newest first.
    pub async fn search(&self, filter: &SearchFilter, page: Page) -> Result<Vec<Appeal>, Error> {
        let (where_sql, mut binds) = where_clause(filter, self.backend);
        let n = binds.len();
        let sql = format!(
            "SELECT {APPEAL_COLUMNS} FROM appeals{where_sql} \
             ORDER BY arrived_at DESC, id DESC LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        binds.push(Bind::Int(i64::from(page.limit.min(Page::MAX_LIMIT))));
        binds.push(Bind::Int(i64::try_from(page.offset).unwrap_or(i64::MAX)));
        bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(appeal_from_row)
            .collect()
    }

    /// How many appeals match the filter.
    pub async fn count(&self, filter: &SearchFilter) -> Result<u64, Error> {
        let (where_sql, binds) = where_clause(filter, self.backend);
        let sql = format!("SELECT COUNT(*) FROM appeals{where_sql}");
        let row = bind_all(sqlx::query(&sql), binds)
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Sets the follow-up status, recorded as a `status_changed` event by `actor`. When the
    /// appeal came from the partner centre, the change is also queued to be reported back
    /// (see [`crate::partner`]).
    pub async fn set_status(&self, id: AppealId, status: Status, actor: &str) -> Result<(), Error> {
        self.change(
            id,
            "status",
            status.as_str(),
            EventKind::StatusChanged,
            actor,
        )
        .await
    }

    /// Replaces the notes, recorded as a `note_added` event by `actor`.
    pub async fn set_notes(&self, id: AppealId, notes: &str, actor: &str) -> Result<(), Error> {
        self.change(id, "notes", notes, EventKind::NoteAdded, actor)
            .await
    }

    /// Sets the destination organisation, recorded as a `destination_set` event by `actor`.
    pub async fn set_destination(&self, id: AppealId, org: &str, actor: &str) -> Result<(), Error> {
        self.change(id, "destination_org", org, EventKind::DestinationSet, actor)
            .await
    }

    /// Sets one text column and appends the event saying so, in one transaction.
    /// `column` is one of our own constants, never input.
    async fn change(
        &self,
        id: AppealId,
        column: &'static str,
        value: &str,
        kind: EventKind,
        actor: &str,
    ) -> Result<(), Error> {
        let now = now_ms();
        let mut conn = self.pool.acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let old: Option<Option<String>> =
            sqlx::query(&format!("SELECT {column} FROM appeals WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let Some(old) = old else {
            return Err(Error::NotFound(id));
        };
        sqlx::query(&format!(
            "UPDATE appeals SET {column} = $2, version = version + 1, updated_at = $3 WHERE id = $1"
        ))
        .bind(id.to_string())
        .bind(value.to_owned())
        .bind(db::ms(now))
        .execute(&mut *tx)
        .await?;
        let data = serde_json::json!({ "from": old, "to": value });
        db::append_event(&mut tx, id, Uuid::now_v7(), now, kind, &data, Some(actor)).await?;
        // What the partner is told, queued in this same transaction so the change and the
        // message stand or fall together: an appeal that came from the partner reports its
        // new status back; one we forwarded reports its status and notes.
        let mut update = partner::UpdateMessage {
            actor: Some(actor.to_owned()),
            at: now,
            ..partner::UpdateMessage::default()
        };
        if kind == EventKind::StatusChanged && old.as_deref() != Some(value) {
            let from: Status = parsed(old.unwrap_or_default(), "status")?;
            let to: Status = parsed(value.to_owned(), "status")?;
            partner::status_changed(&mut tx, id, from, to, actor, now).await?;
            update.status = Some(partner::StatusMove { from, to });
        } else if kind == EventKind::NoteAdded && old.as_deref() != Some(value) {
            update.notes = Some(value.to_owned());
        }
        partner::forwarded_changed(&mut tx, id, &update, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Callbacks, oldest request first; only those with `status` if given.
    pub async fn callbacks(&self, status: Option<CallbackStatus>) -> Result<Vec<Callback>, Error> {
        let cols = "id, appeal_id, number, queue, requested_at, due_at, status, attempts, operator, completed_at, last_result";
        let (filter, binds) = match status {
            Some(s) => (
                " WHERE status = $1",
                vec![Bind::Text(s.as_str().to_owned())],
            ),
            None => ("", Vec::new()),
        };
        let sql = format!("SELECT {cols} FROM callbacks{filter} ORDER BY requested_at, id");
        bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(Callback {
                    id: parsed(r.try_get("id")?, "callbacks.id")?,
                    appeal_id: parsed(r.try_get("appeal_id")?, "callbacks.appeal_id")?,
                    number: r.try_get("number")?,
                    queue: r.try_get("queue")?,
                    requested_at: time(r.try_get("requested_at")?, "callbacks.requested_at")?,
                    due_at: opt_time(r.try_get("due_at")?, "callbacks.due_at")?,
                    status: parsed(r.try_get("status")?, "callbacks.status")?,
                    attempts: r.try_get("attempts")?,
                    operator: r.try_get("operator")?,
                    completed_at: opt_time(r.try_get("completed_at")?, "callbacks.completed_at")?,
                    last_result: r.try_get("last_result")?,
                })
            })
            .collect()
    }

    /// Operator sessions that started in `[from, to)`, oldest first.
    pub async fn operator_sessions(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<OperatorSession>, Error> {
        sqlx::query(
            "SELECT id, operator, started_at, ended_at, queues, end_reason FROM operator_sessions \
             WHERE started_at >= $1 AND started_at < $2 ORDER BY started_at, id",
        )
        .bind(db::ms(from))
        .bind(db::ms(to))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let queues: Option<String> = r.try_get("queues")?;
            let queues = match queues {
                None => Vec::new(),
                Some(q) => serde_json::from_str(&q).map_err(|_| Error::BadValue {
                    column: "operator_sessions.queues",
                    value: q.clone(),
                })?,
            };
            Ok(OperatorSession {
                id: parsed(r.try_get("id")?, "operator_sessions.id")?,
                operator: r.try_get("operator")?,
                started_at: time(r.try_get("started_at")?, "operator_sessions.started_at")?,
                ended_at: opt_time(r.try_get("ended_at")?, "operator_sessions.ended_at")?,
                queues,
                end_reason: r.try_get("end_reason")?,
            })
        })
        .collect()
    }

    /// The day's figures. `day` is a calendar day at `tz` (e.g. +07:00 for Novosibirsk).
    pub async fn daily_report(
        &self,
        day: NaiveDate,
        tz: FixedOffset,
        options: &ReportOptions,
    ) -> Result<DailyReport, Error> {
        let (from, to) = report::day_bounds(day, tz);
        let filter = SearchFilter {
            from: Some(from),
            to: Some(to),
            ..SearchFilter::default()
        };
        let (where_sql, binds) = where_clause(&filter, self.backend);
        // Appeals the partner centre forwarded to us were not calls on our lines: they stay
        // out of the call figures (their call is in the partner's report).
        let sql = format!(
            "SELECT {APPEAL_COLUMNS} FROM appeals{where_sql} AND line NOT LIKE 'partner:%' ORDER BY arrived_at"
        );
        let appeals: Vec<Appeal> = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(appeal_from_row)
            .collect::<Result<_, _>>()?;
        Ok(report::compute(day, tz, options, &appeals))
    }
}

fn where_clause(f: &SearchFilter, backend: Backend) -> (String, Vec<Bind>) {
    let mut conds: Vec<String> = Vec::new();
    let mut binds = Vec::new();
    let mut push = |cond: &str, b: Bind| {
        binds.push(b);
        conds.push(cond.replace("$?", &format!("${}", binds.len())));
    };
    if let Some(from) = f.from {
        push("arrived_at >= $?", Bind::Int(db::ms(from)));
    }
    if let Some(to) = f.to {
        push("arrived_at < $?", Bind::Int(db::ms(to)));
    }
    if let Some(line) = &f.line {
        push("line = $?", Bind::Text(line.clone()));
    }
    if let Some(category) = &f.category {
        push("category = $?", Bind::Text(category.clone()));
    }
    if let Some(status) = f.status {
        push("status = $?", Bind::Text(status.as_str().to_owned()));
    }
    for (column, v) in [
        ("service", &f.service),
        ("district", &f.district),
        ("organisation", &f.organisation),
        ("assignee", &f.assignee),
    ] {
        if let Some(v) = v {
            push(&format!("{column} = $?"), Bind::Text(v.clone()));
        }
    }
    if let Some(c) = f.citizen_id {
        push("citizen_id = $?", Bind::Text(c.to_string()));
    }
    if let Some(at) = f.overdue_at {
        push(
            "due_at < $? AND status NOT IN ('done', 'declined')",
            Bind::Int(db::ms(at)),
        );
    }
    if let Some(caller) = &f.caller {
        push(
            "caller_number LIKE $? ESCAPE '\\'",
            Bind::Text(format!("%{}%", escape_like(caller))),
        );
    }
    if let Some(operator) = &f.operator {
        push("operator = $?", Bind::Text(operator.clone()));
    }
    let terms = f.text.as_deref().map(search_terms).unwrap_or_default();
    if !terms.is_empty() {
        let (key, own, q) = fts_keys(backend, "appeals", &terms);
        binds.push(Bind::Text(q));
        let own = own.replace("$?", &format!("${}", binds.len()));
        if f.text_in_citizens {
            // a union of index lookups, not an OR (which neither backend answers from the
            // indexes): the appeals whose text matches, and those of the cards that do
            let (_, cards, q2) = fts_keys(backend, "citizens", &terms);
            binds.push(Bind::Text(q2));
            let cards = cards.replace("$?", &format!("${}", binds.len()));
            conds.push(format!(
                "{key} IN ({own} UNION SELECT a.{key} FROM appeals a WHERE a.citizen_id IN \
                 (SELECT c.id FROM citizens c WHERE c.{key} IN ({cards})))"
            ));
        } else {
            conds.push(format!("{key} IN ({own})"));
        }
    }
    if conds.is_empty() {
        (String::new(), binds)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), binds)
    }
}

pub(crate) fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn bind_all<'q>(
    mut q: Query<'q, Any, AnyArguments<'q>>,
    binds: Vec<Bind>,
) -> Query<'q, Any, AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s),
            Bind::Int(i) => q.bind(i),
        };
    }
    q
}

pub(crate) fn time(ms: i64, column: &'static str) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(ms).ok_or(Error::BadValue {
        column,
        value: ms.to_string(),
    })
}

pub(crate) fn opt_time(
    ms: Option<i64>,
    column: &'static str,
) -> Result<Option<DateTime<Utc>>, Error> {
    ms.map(|m| time(m, column)).transpose()
}

pub(crate) fn parsed<T: std::str::FromStr>(s: String, column: &'static str) -> Result<T, Error> {
    s.parse().map_err(|_| Error::BadValue { column, value: s })
}

pub(crate) fn opt_parsed<T: std::str::FromStr>(
    s: Option<String>,
    column: &'static str,
) -> Result<Option<T>, Error> {
    s.map(|s| parsed(s, column)).transpose()
}

/// Appeal `id` read on `conn` (a transaction's, so what the transaction decides on is what
/// it read), or `None`.
pub(crate) async fn appeal_on(
    conn: &mut sqlx::AnyConnection,
    id: AppealId,
) -> Result<Option<Appeal>, Error> {
    let sql = format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = $1");
    sqlx::query(&sql)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(appeal_from_row)
        .transpose()
}

pub(crate) fn appeal_from_row(r: &AnyRow) -> Result<Appeal, Error> {
    Ok(Appeal {
        id: parsed(r.try_get("id")?, "id")?,
        call_id: r.try_get("call_id")?,
        line: r.try_get("line")?,
        caller_number: r.try_get("caller_number")?,
        arrived_at: time(r.try_get("arrived_at")?, "arrived_at")?,
        answered_at: opt_time(r.try_get("answered_at")?, "answered_at")?,
        ended_at: opt_time(r.try_get("ended_at")?, "ended_at")?,
        ivr_path: r.try_get("ivr_path")?,
        category: r.try_get("category")?,
        queue: r.try_get("queue")?,
        wait_seconds: r.try_get("wait_seconds")?,
        talk_seconds: r.try_get("talk_seconds")?,
        operator: r.try_get("operator")?,
        outcome: opt_parsed(r.try_get("outcome")?, "outcome")?,
        recording: r.try_get("recording")?,
        status: parsed(r.try_get("status")?, "status")?,
        destination_org: r.try_get("destination_org")?,
        notes: r.try_get("notes")?,
        partner_ref: r.try_get("partner_ref")?,
        updated_at: time(r.try_get("updated_at")?, "updated_at")?,
        case: AppealCase {
            citizen_id: opt_parsed(r.try_get("citizen_id")?, "citizen_id")?,
            service: r.try_get("service")?,
            address: r.try_get("address")?,
            district: r.try_get("district")?,
            organisation: r.try_get("organisation")?,
            assignee: r.try_get("assignee")?,
            due_at: opt_time(r.try_get("due_at")?, "due_at")?,
            pending_until: opt_time(r.try_get("pending_until")?, "pending_until")?,
            disposition: r.try_get("disposition")?,
            resolution: r.try_get("resolution")?,
            version: r.try_get("version")?,
        },
    })
}

pub(crate) fn event_from_row(r: &AnyRow) -> Result<AppealEvent, Error> {
    let data: String = r.try_get("data")?;
    Ok(AppealEvent {
        id: parsed(r.try_get("id")?, "appeal_events.id")?,
        seq: r.try_get("seq")?,
        at: time(r.try_get("at")?, "appeal_events.at")?,
        kind: parsed(r.try_get("kind")?, "appeal_events.kind")?,
        data: serde_json::from_str(&data).map_err(|_| Error::BadValue {
            column: "appeal_events.data",
            value: data.clone(),
        })?,
        actor: r.try_get("actor")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_clause_numbers_placeholders_in_order() {
        let f = SearchFilter {
            line: Some("3758787".into()),
            status: Some(Status::New),
            caller: Some("9_1%".into()),
            ..SearchFilter::default()
        };
        let (sql, binds) = where_clause(&f, Backend::Sqlite);
        assert_eq!(
            sql,
            " WHERE line = $1 AND status = $2 AND caller_number LIKE $3 ESCAPE '\\'"
        );
        assert_eq!(binds.len(), 3);
        assert!(matches!(&binds[2], Bind::Text(s) if s == "%9\\_1\\%%"));
    }
}
