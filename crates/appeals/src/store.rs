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

/// The key a table's full text index gives its rows on `backend`: `rowid` on SQLite (the
/// FTS5 indexes are keyed by it), `id` on PostgreSQL.
pub(crate) fn fts_key(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "rowid",
        Backend::Postgres => "id",
    }
}

/// The full text match of `terms` (from [`search_terms`], not empty) in `table`
/// (`appeals` or `citizens`) on `backend`: a condition on that table's rows, unqualified,
/// with `$?` where the query goes, and that query. Every term matches as a word's
/// beginning.
///
/// SQLite: the row's rowid among the FTS5 index's matches. PostgreSQL: the row's vector
/// against the tsquery — the appeals' expression (`hotline_search_vector(…)`, its GIN
/// index of migration 7), the cards' stored `search_vector` (migration 9) — which the
/// planner answers from the GIN index, or tests row by row when it walks the order's index
/// instead (a common word: the page is found long before every match is).
pub(crate) fn fts_match(backend: Backend, table: &str, terms: &[String]) -> (String, String) {
    match backend {
        Backend::Sqlite => (
            format!("rowid IN (SELECT rowid FROM {table}_fts WHERE {table}_fts MATCH $?)"),
            fts5_query(terms),
        ),
        Backend::Postgres => {
            let vector = if table == "citizens" {
                "search_vector"
            } else {
                "hotline_search_vector(notes, address, resolution)"
            };
            (
                format!("{vector} @@ to_tsquery('simple', $?)"),
                terms
                    .iter()
                    .map(|t| format!("{t}:*"))
                    .collect::<Vec<_>>()
                    .join(" & "),
            )
        }
    }
}

/// The FTS5 query of `terms`: every one as a quoted prefix (the terms are letters and
/// digits only, so no query syntax gets through).
fn fts5_query(terms: &[String]) -> String {
    terms
        .iter()
        .map(|t| format!("\"{t}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
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

/// How many a search found: exactly, or more than [`Total::count`] when counting stopped
/// there ([`Store::count_at_most`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// The number found, or the cap when there are more.
    pub count: u64,
    /// False when there are more than `count` (counting stopped at the cap).
    pub exact: bool,
}

impl Total {
    /// Where the lists' totals stop counting: "more than 10 000" is all a person needs, and
    /// counting every match of a common word is what took the time at size (issue 12).
    pub const CAP: u64 = 10_000;

    /// The cap a list's total is counted to for `page`: [`Total::CAP`], or the end of the
    /// page when that is further (a total is never below the rows shown before it).
    pub fn cap_for(page: Page) -> u64 {
        Self::CAP.max(
            page.offset
                .saturating_add(u64::from(page.limit.min(Page::MAX_LIMIT))),
        )
    }

    /// The total of a count that looked at `cap + 1` rows at most and found `n`.
    pub fn of(n: u64, cap: u64) -> Self {
        if n > cap {
            Self {
                count: cap,
                exact: false,
            }
        } else {
            Self {
                count: n,
                exact: true,
            }
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
        /// More matching cards than this, and PostgreSQL reads their appeals in list order.
        const MANY_CARDS: i64 = 500;
        let terms = filter.text.as_deref().map(search_terms).unwrap_or_default();
        let probe = self.probe_matches(filter).await?;
        if self.backend == Backend::Sqlite && !probe {
            if let Some(found) = self.search_newest_matches(filter, page).await? {
                return Ok(found);
            }
        }
        let limit = i64::from(page.limit.min(Page::MAX_LIMIT));
        let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
        // PostgreSQL, the cards searched too: many matching cards are read by the list's
        // order (see `card_branches`)
        let walk = self.backend == Backend::Postgres
            && filter.text_in_citizens
            && !terms.is_empty()
            && self
                .matches_up_to("citizens", &terms, MANY_CARDS + 1)
                .await?
                > MANY_CARDS;
        let (sql, binds) = match card_branches(filter, self.backend, APPEAL_COLUMNS, walk) {
            Some((own, cards, mut binds)) => {
                // each of the two newest first up to the page's end, then joined
                let n = binds.len();
                binds.push(Bind::Int(offset.saturating_add(limit)));
                binds.push(Bind::Int(limit));
                binds.push(Bind::Int(offset));
                let order = "ORDER BY arrived_at DESC, id DESC";
                (
                    format!(
                        "SELECT {APPEAL_COLUMNS} FROM ({own} {order} LIMIT ${k}) t1 UNION \
                         SELECT {APPEAL_COLUMNS} FROM ({cards} {order} LIMIT ${k}) t2 \
                         {order} LIMIT ${} OFFSET ${}",
                        n + 2,
                        n + 3,
                        k = n + 1,
                    ),
                    binds,
                )
            }
            None => {
                let (where_sql, mut binds) = where_clause_probing(filter, self.backend, probe);
                let n = binds.len();
                binds.push(Bind::Int(limit));
                binds.push(Bind::Int(offset));
                (
                    format!(
                        "SELECT {APPEAL_COLUMNS} FROM appeals{where_sql} \
                         ORDER BY arrived_at DESC, id DESC LIMIT ${} OFFSET ${}",
                        n + 1,
                        n + 2
                    ),
                    binds,
                )
            }
        };
        bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(appeal_from_row)
            .collect()
    }

    /// How many rows of `table` (`appeals` or `citizens`) match `terms` (not empty),
    /// counting no further than `most`. SQLite counts in the FTS5 index alone, no table
    /// read; PostgreSQL through the GIN index, reading no more than `most` rows.
    pub(crate) async fn matches_up_to(
        &self,
        table: &str,
        terms: &[String],
        most: i64,
    ) -> Result<i64, Error> {
        let (sql, q) = match self.backend {
            Backend::Sqlite => (
                format!(
                    "SELECT COUNT(*) FROM (SELECT rowid FROM {table}_fts \
                     WHERE {table}_fts MATCH $1 LIMIT $2) t"
                ),
                fts5_query(terms),
            ),
            Backend::Postgres => {
                let (cond, q) = fts_match(self.backend, table, terms);
                (
                    format!(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE {} LIMIT $2) t",
                        cond.replace("$?", "$1")
                    ),
                    q,
                )
            }
        };
        Ok(sqlx::query_scalar(&sql)
            .bind(q)
            .bind(most)
            .fetch_one(&self.pool)
            .await?)
    }

    /// SQLite: whether a text search also filtered by an indexed column (line, category,
    /// status, service, district, organisation, assignee, operator, citizen, dates, due
    /// date) is better read by that filter's index, each row tested against the text's
    /// matches, than by the matches: when the text matches more than a few thousand
    /// appeals. An operator searching a common word among their own appeals is this case:
    /// their few thousand appeals by `appeals_operator`, newest first, instead of every
    /// appeal that has the word. SQLite cannot weigh the two itself (the FTS5 index gives
    /// it no estimate), so the index is asked how many match, up to the threshold.
    async fn probe_matches(&self, f: &SearchFilter) -> Result<bool, Error> {
        const COMMON: i64 = 2_000;
        let terms = f.text.as_deref().map(search_terms).unwrap_or_default();
        let indexed = f.from.is_some()
            || f.to.is_some()
            || f.line.is_some()
            || f.category.is_some()
            || f.status.is_some()
            || f.service.is_some()
            || f.district.is_some()
            || f.organisation.is_some()
            || f.assignee.is_some()
            || f.citizen_id.is_some()
            || f.overdue_at.is_some()
            || f.operator.is_some();
        if self.backend != Backend::Sqlite || terms.is_empty() || f.text_in_citizens || !indexed {
            return Ok(false);
        }
        let n = self.matches_up_to("appeals", &terms, COMMON + 1).await?;
        Ok(n > COMMON)
    }

    /// SQLite, a full text search: the page taken from the newest matches only, when that
    /// is sure to be the page [`Store::search`] gives; `None` when it is not (and the
    /// caller sorts every match by arrival instead).
    ///
    /// The FTS5 index gives its matches by rowid, newest first and without sorting them
    /// (`ORDER BY rowid DESC LIMIT w`: the window), and appeals get their rowid as they are
    /// written, about when they arrive. The page is the window's matches (with the appeals
    /// of matching cards from the same rowids on, when the cards are searched too) with
    /// the other filters applied, sorted by arrival. It is the true page when the window
    /// held every match, or when no appeal below the window's lowest rowid arrived at or
    /// after the page's last one (one probe of `appeals_arrived_at`): then no match the
    /// window left out comes before it. A window ten times as large is tried once before
    /// giving up, unless the first gave less than a tenth of the page.
    async fn search_newest_matches(
        &self,
        filter: &SearchFilter,
        page: Page,
    ) -> Result<Option<Vec<Appeal>>, Error> {
        const WINDOWS: [i64; 2] = [2_000, 20_000];
        /// Cards few enough that all their appeals join the window.
        const FEW_CARDS: i64 = 500;
        let terms = filter.text.as_deref().map(search_terms).unwrap_or_default();
        let limit = u64::from(page.limit.min(Page::MAX_LIMIT));
        let want = page.offset.saturating_add(limit);
        if terms.is_empty() || limit == 0 || want > 1_000 {
            return Ok(None);
        }
        let q = fts5_query(&terms);
        let rest = SearchFilter {
            text: None,
            text_in_citizens: false,
            ..filter.clone()
        };
        let few_cards = if filter.text_in_citizens {
            let n = self
                .matches_up_to("citizens", &terms, FEW_CARDS + 1)
                .await?;
            Some(n <= FEW_CARDS)
        } else {
            None
        };
        // one snapshot for the window, its page and the check: a row written in between
        // cannot move the window under them (a read-only transaction in WAL mode)
        let mut tx = self.pool.begin().await?;
        // the newest matches by rowid, the query and the window's size at $a and $b
        let window = |a: usize, b: usize| {
            format!(
                "SELECT rowid AS r FROM appeals_fts WHERE appeals_fts MATCH ${a} \
                 ORDER BY rowid DESC LIMIT ${b}"
            )
        };
        for w in WINDOWS {
            let row = sqlx::query(&format!("SELECT COUNT(*), MIN(r) FROM ({})", window(1, 2)))
                .bind(q.clone())
                .bind(w)
                .fetch_one(&mut *tx)
                .await?;
            let (n, lowest): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
            let whole = n < w;
            let (where_sql, mut binds) = where_clause(&rest, Backend::Sqlite);
            let at = binds.len();
            binds.push(Bind::Text(q.clone()));
            binds.push(Bind::Int(w));
            let window = window(at + 1, at + 2);
            let candidates = match few_cards {
                None => window,
                Some(few) => {
                    // every appeal of the matching cards when they are few, else those from
                    // the window's lowest rowid on (none left out above it)
                    let from = match (few, whole) {
                        (true, _) => 0,
                        (false, false) => lowest.unwrap_or(0),
                        (false, true) => return Ok(None),
                    };
                    binds.push(Bind::Int(from));
                    binds.push(Bind::Text(q.clone()));
                    format!(
                        "SELECT r FROM ({window}) UNION SELECT a.rowid FROM appeals a \
                         WHERE a.rowid >= ${} \
                         AND a.citizen_id IN (SELECT c.id FROM citizens c WHERE c.rowid IN \
                         (SELECT rowid FROM citizens_fts WHERE citizens_fts MATCH ${}))",
                        at + 3,
                        at + 4
                    )
                }
            };
            binds.push(Bind::Int(i64::try_from(want).unwrap_or(i64::MAX)));
            // CROSS JOIN: SQLite keeps this order, the candidates first
            let sql = format!(
                "SELECT {APPEAL_COLUMNS} FROM ({candidates}) m CROSS JOIN appeals \
                 ON appeals.rowid = m.r{where_sql} ORDER BY arrived_at DESC, id DESC LIMIT ${}",
                binds.len()
            );
            let found: Vec<Appeal> = bind_all(sqlx::query(&sql), binds)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(appeal_from_row)
                .collect::<Result<_, _>>()?;
            let sure = if whole {
                true
            } else {
                match (found.last(), lowest) {
                    (Some(last), Some(lowest)) if found.len() as u64 == want => {
                        let later: Option<i64> = sqlx::query_scalar(
                            "SELECT 1 FROM appeals INDEXED BY appeals_arrived_at \
                             WHERE arrived_at >= $1 AND rowid < $2 LIMIT 1",
                        )
                        .bind(db::ms(last.arrived_at))
                        .bind(lowest)
                        .fetch_optional(&mut *tx)
                        .await?;
                        later.is_none()
                    }
                    _ => false,
                }
            };
            if sure {
                tx.commit().await?;
                let skip = usize::try_from(page.offset).unwrap_or(usize::MAX);
                return Ok(Some(found.into_iter().skip(skip).collect()));
            }
            if (found.len() as u64).saturating_mul(10) < want {
                // the filters keep too few of the matches for a window ten times as large
                // to fill the page: sorting every match is quicker than trying
                return Ok(None);
            }
        }
        Ok(None)
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

    /// How many appeals match the filter, counting no further than `cap + 1`: exact up to
    /// `cap`, else "more than `cap`" ([`Total`]). The lists use [`Total::CAP`].
    pub async fn count_at_most(&self, filter: &SearchFilter, cap: u64) -> Result<Total, Error> {
        let limit = i64::try_from(cap.saturating_add(1)).unwrap_or(i64::MAX);
        let count = |sql: String, mut binds: Vec<Bind>| {
            binds.push(Bind::Int(limit));
            let pool = self.pool.clone();
            async move {
                let n: i64 = bind_all(sqlx::query(&sql), binds)
                    .fetch_one(&pool)
                    .await?
                    .try_get(0)?;
                Ok::<_, Error>(Total::of(u64::try_from(n).unwrap_or(0), cap))
            }
        };
        let probe = self.probe_matches(filter).await?;
        let bounded = |f: &SearchFilter| {
            let (where_sql, binds) = where_clause_probing(f, self.backend, probe);
            let sql = format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM appeals{where_sql} LIMIT ${}) t",
                binds.len() + 1
            );
            (sql, binds)
        };
        let terms = filter.text.as_deref().map(search_terms).unwrap_or_default();
        if terms.is_empty() {
            let (sql, binds) = bounded(filter);
            return count(sql, binds).await;
        }
        // the appeals whose own text matches first: when they are more than `cap`, so are
        // the appeals found
        let own = SearchFilter {
            text_in_citizens: false,
            ..filter.clone()
        };
        let only_text = SearchFilter {
            text: filter.text.clone(),
            ..SearchFilter::default()
        };
        let found = if self.backend == Backend::Sqlite && own == only_text {
            // every row of the FTS5 index is an appeal (its triggers keep it so): counted
            // there, without reading the appeals
            let n = self.matches_up_to("appeals", &terms, limit).await?;
            Total::of(u64::try_from(n).unwrap_or(0), cap)
        } else {
            let (sql, binds) = bounded(&own);
            count(sql, binds).await?
        };
        match card_branches(filter, self.backend, "id", false) {
            Some((own, cards, binds)) if found.exact => {
                // and those of the matching cards: each bounded, then joined
                let k = binds.len() + 1;
                let sql = format!(
                    "SELECT COUNT(*) FROM (SELECT id FROM ({own} LIMIT ${k}) t1 UNION \
                     SELECT id FROM ({cards} LIMIT ${k}) t2) u"
                );
                count(sql, binds).await
            }
            _ => Ok(found),
        }
    }

    /// Sets the follow-up status, recorded as a `status_changed` event by `actor`. The move
    /// is checked as [`Store::update_case`] checks it (the workflow, [`Status::can_become`]):
    /// one the workflow refuses is [`Error::Transition`] and nothing is written. When the
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
        // Takes the row's lock before reading it (PostgreSQL; SQLite's write transaction
        // holds the database already), so the status move is checked against what the write
        // replaces.
        sqlx::query("UPDATE appeals SET version = version WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
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
        let moved = if kind == EventKind::StatusChanged {
            let from: Status = parsed(old.clone().unwrap_or_default(), "status")?;
            let to: Status = parsed(value.to_owned(), "status")?;
            crate::cases::status_move(id, from, to)?.map(|to| partner::StatusMove { from, to })
        } else {
            None
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
        if let Some(m) = moved {
            partner::status_changed(&mut tx, id, (m.from, m.to), false, actor, now).await?;
            update.status = Some(m);
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
    where_clause_probing(f, backend, false)
}

/// [`where_clause`]; with `probe` (SQLite, [`Store::probe_matches`]) the appeal's own text
/// match is written `+rowid IN (…)`: the unary `+` keeps SQLite from reading the appeals by
/// the match set, so it reads them by another filter's index and tests each against it.
fn where_clause_probing(f: &SearchFilter, backend: Backend, probe: bool) -> (String, Vec<Bind>) {
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
        let (own, q) = fts_match(backend, "appeals", &terms);
        binds.push(Bind::Text(q));
        let own = own.replace("$?", &format!("${}", binds.len()));
        if f.text_in_citizens {
            // a union of index lookups, not an OR (which neither backend answers from the
            // indexes): the appeals whose text matches, and those of the cards that do
            let key = fts_key(backend);
            let (cards, q2) = fts_match(backend, "citizens", &terms);
            binds.push(Bind::Text(q2));
            let cards = cards.replace("$?", &format!("${}", binds.len()));
            conds.push(format!(
                "{key} IN (SELECT {key} FROM appeals WHERE {own} UNION SELECT a.{key} \
                 FROM appeals a WHERE a.citizen_id IN (SELECT c.id FROM citizens c WHERE {cards}))"
            ));
        } else if probe && backend == Backend::Sqlite {
            conds.push(format!("+{own}"));
        } else {
            conds.push(own);
        }
    }
    if conds.is_empty() {
        (String::new(), binds)
    } else {
        (format!(" WHERE {}", conds.join(" AND ")), binds)
    }
}

/// A text search that looks in the cards too ([`SearchFilter::text_in_citizens`]) as two
/// searches to join: `SELECT {select} FROM appeals` of the appeals whose own text matches,
/// and of the appeals of the matching cards, each with the other filters, and their binds
/// (`$1`…`$n`). Each is answered from its own indexes and can stop at a page (a union of
/// the two keys, or an OR, is answered only after every match of both is found). `None`
/// when the filter has no text or does not look in the cards.
///
/// `walk` (PostgreSQL, many matching cards): the cards' branch tests each appeal, read in
/// the order of the list, against the matching cards' ids hashed once (`(… IN (…)) IS
/// TRUE` keeps the planner from turning it into a join that fetches every linked appeal
/// and sorts them); for a few cards the join, card by card through `appeals_citizen`, is
/// the quicker.
fn card_branches(
    f: &SearchFilter,
    backend: Backend,
    select: &str,
    walk: bool,
) -> Option<(String, String, Vec<Bind>)> {
    let terms = f.text.as_deref().map(search_terms).unwrap_or_default();
    if terms.is_empty() || !f.text_in_citizens {
        return None;
    }
    let rest = SearchFilter {
        text: None,
        text_in_citizens: false,
        ..f.clone()
    };
    let (where_sql, mut binds) = where_clause(&rest, backend);
    let and = if where_sql.is_empty() {
        " WHERE ".to_owned()
    } else {
        format!("{where_sql} AND ")
    };
    let (own, q) = fts_match(backend, "appeals", &terms);
    binds.push(Bind::Text(q));
    let own = own.replace("$?", &format!("${}", binds.len()));
    let (cards, q) = fts_match(backend, "citizens", &terms);
    binds.push(Bind::Text(q));
    let cards = cards.replace("$?", &format!("${}", binds.len()));
    let linked = format!("citizen_id IN (SELECT c.id FROM citizens c WHERE {cards})");
    let linked = if walk && backend == Backend::Postgres {
        format!("({linked}) IS TRUE")
    } else {
        linked
    };
    Some((
        format!("SELECT {select} FROM appeals{and}{own}"),
        format!("SELECT {select} FROM appeals{and}{linked}"),
        binds,
    ))
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

/// `$from, $from+1, …` for `n` values (an `IN (…)` list).
pub(crate) fn marks(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
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
