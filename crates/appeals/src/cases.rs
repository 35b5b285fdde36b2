//! Citizens and the appeal as a case record (issue 12, migration 6): citizens' cards with
//! their phones, the case fields of an appeal changed in one transaction with a timeline
//! entry per field and a version check, and the worklists.
//!
//! Directory ids (districts, services, organisations, categories, flags, dispositions) are
//! stored as given: the daemon checks them against its configuration before calling here.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::db::{self, ms, Backend};
use crate::model::{Appeal, AppealId, AppealWithEvents, EventKind, Status};
use crate::partner;
use crate::store::{
    appeal_from_row, bind_all, escape_like, fts_match, marks, opt_parsed, opt_time, parsed,
    search_terms, time, Bind, Page, Store, APPEAL_COLUMNS,
};
use crate::{phone_key, Error};

/// A flag on a citizen's card, until a day (inclusive) or for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flag {
    pub flag: String,
    #[serde(default)]
    pub until: Option<NaiveDate>,
}

/// Consent to the processing of personal data: who recorded it, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// A citizen's card as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citizen {
    pub id: Uuid,
    /// What the card says.
    #[serde(flatten)]
    pub card: CitizenFields,
    /// Bumped by every change; an edit names the version it was made on.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a card says (all of it when one is created).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenFields {
    pub name: String,
    /// As written, in the card's order.
    pub phones: Vec<String>,
    pub address: Option<String>,
    /// A district id.
    pub district: Option<String>,
    pub birth_year: Option<i32>,
    /// Social category ids.
    pub categories: Vec<String>,
    pub flags: Vec<Flag>,
    pub consent: Option<Consent>,
    pub notes: Option<String>,
}

/// Which cards to list ([`Store::search_citizens`]). Every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CitizenFilter {
    /// Contained in the name, as written.
    pub name: Option<String>,
    /// A phone number of the card (matched by its key, [`phone_key`]).
    pub phone: Option<String>,
    /// Free text: every word (as a word's beginning, any case, ё = е) in the name, address
    /// or notes ([`crate::store::search_terms`]).
    pub text: Option<String>,
}

/// A change to a card: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CitizenPatch {
    pub name: Option<String>,
    pub phones: Option<Vec<String>>,
    pub address: Option<Option<String>>,
    pub district: Option<Option<String>>,
    pub birth_year: Option<Option<i32>>,
    pub categories: Option<Vec<String>>,
    pub flags: Option<Vec<Flag>>,
    pub consent: Option<Option<Consent>>,
    pub notes: Option<Option<String>>,
}

/// A change to an appeal's follow-up and case fields: `None` leaves a field alone,
/// `Some(None)` clears it. Each field that really changes gets its timeline entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaseChange {
    pub status: Option<Status>,
    pub notes: Option<String>,
    pub destination_org: Option<String>,
    pub citizen_id: Option<Option<Uuid>>,
    pub service: Option<Option<String>>,
    pub address: Option<Option<String>>,
    pub district: Option<Option<String>>,
    pub organisation: Option<Option<String>>,
    pub assignee: Option<Option<String>>,
    pub due_at: Option<Option<DateTime<Utc>>>,
    pub pending_until: Option<Option<DateTime<Utc>>>,
    pub disposition: Option<Option<String>>,
    pub resolution: Option<Option<String>>,
}

/// The worklists of appeals (the `missed` one is of callers: [`Store::missed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Worklist<'a> {
    /// Open appeals assigned to this login, soonest due first.
    Mine(&'a str),
    /// Open appeals past their due date, most overdue first.
    Overdue,
    /// Open appeals due in `[from, to)` (a local day), soonest first; only those assigned to
    /// `assignee` when given (an operator's own).
    Due {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        assignee: Option<&'a str>,
    },
}

/// A caller who hung up before reaching a person and has not been reached since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedCaller {
    /// Their latest missed call (what `close` takes).
    pub appeal_id: AppealId,
    pub caller_number: String,
    pub citizen_id: Option<Uuid>,
    pub line: String,
    /// The first missed call not reached since.
    pub first_missed_at: DateTime<Utc>,
    pub last_missed_at: DateTime<Utc>,
    /// Missed calls since they were last reached.
    pub calls: i64,
}

const CITIZEN_COLUMNS: &str = "id, name, address, district, birth_year, categories, flags, \
    consent_by, consent_at, notes, version, created_at, updated_at";

/// More full text matches among the cards than this, and SQLite reads them in name order
/// (see [`Store::search_citizens`]): walking the name index costs about the page times
/// cards ÷ matches, sorting the matches about the matches; they meet near a thousand at
/// 200 000 cards.
const COMMON_CARDS: i64 = 1_000;

/// Open: not done, not declined.
const OPEN: &str = "status NOT IN ('done', 'declined')";

fn json_list<T: serde::de::DeserializeOwned>(s: String, column: &'static str) -> Result<T, Error> {
    serde_json::from_str(&s).map_err(|_| Error::BadValue { column, value: s })
}

fn citizen_from_row(r: &AnyRow, phones: Vec<String>) -> Result<Citizen, Error> {
    let consent_by: Option<String> = r.try_get("consent_by")?;
    let consent_at = opt_time(r.try_get("consent_at")?, "citizens.consent_at")?;
    Ok(Citizen {
        id: parsed(r.try_get("id")?, "citizens.id")?,
        card: CitizenFields {
            name: r.try_get("name")?,
            phones,
            address: r.try_get("address")?,
            district: r.try_get("district")?,
            birth_year: r
                .try_get::<Option<i64>, _>("birth_year")?
                .and_then(|y| i32::try_from(y).ok()),
            categories: json_list(r.try_get("categories")?, "citizens.categories")?,
            flags: json_list(r.try_get("flags")?, "citizens.flags")?,
            consent: match (consent_by, consent_at) {
                (Some(by), Some(at)) => Some(Consent { by, at }),
                _ => None,
            },
            notes: r.try_get("notes")?,
        },
        version: r.try_get("version")?,
        created_at: time(r.try_get("created_at")?, "citizens.created_at")?,
        updated_at: time(r.try_get("updated_at")?, "citizens.updated_at")?,
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

async fn put_phones(
    conn: &mut AnyConnection,
    id: Uuid,
    phones: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM citizen_phones WHERE citizen_id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let mut seen = std::collections::HashSet::new();
    for (i, p) in phones.iter().enumerate() {
        let key = phone_key(p);
        if !seen.insert(key.clone()) {
            continue; // the same number written twice
        }
        sqlx::query(
            "INSERT INTO citizen_phones (citizen_id, position, phone, phone_key) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(i as i64)
        .bind(p.clone())
        .bind(key)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A case column's new value, as bound.
pub(crate) enum CaseValue {
    Text(Option<String>),
    Int(Option<i64>),
}

/// How [`write_case`] writes.
pub(crate) enum CaseWrite {
    /// An edit of an appeal read at `version`: the version is bumped, `updated_at` set to
    /// `at`, and the write lands only while the row still has that version.
    Edit { version: i64, at: DateTime<Utc> },
    /// The case of an appeal being made (a partner's forward): the columns only.
    Fresh,
}

/// Writes the case columns of appeal `id` (`citizen_id`, `service`, `district`, `due_at`…,
/// and with them `status`, `notes`) in one UPDATE: the one place an appeal's case fields
/// are written, by [`Store::update_case`] and a received partner forward. False when a
/// [`CaseWrite::Edit`] found the row at another version (nothing written).
pub(crate) async fn write_case(
    conn: &mut AnyConnection,
    id: AppealId,
    sets: Vec<(&'static str, CaseValue)>,
    how: CaseWrite,
) -> Result<bool, sqlx::Error> {
    if sets.is_empty() {
        return Ok(true);
    }
    let assigns: Vec<String> = sets
        .iter()
        .enumerate()
        .map(|(i, (col, _))| format!("{col} = ${}", i + 2))
        .collect();
    let n = sets.len();
    let sql = match how {
        CaseWrite::Edit { .. } => format!(
            "UPDATE appeals SET {}, version = version + 1, updated_at = ${} \
             WHERE id = $1 AND version = ${}",
            assigns.join(", "),
            n + 2,
            n + 3
        ),
        CaseWrite::Fresh => format!("UPDATE appeals SET {} WHERE id = $1", assigns.join(", ")),
    };
    let mut q = sqlx::query(&sql).bind(id.to_string());
    for (_, v) in sets {
        q = match v {
            CaseValue::Text(t) => q.bind(t),
            CaseValue::Int(i) => q.bind(i),
        };
    }
    if let CaseWrite::Edit { version, at } = how {
        q = q.bind(ms(at)).bind(version);
    }
    Ok(q.execute(&mut *conn).await?.rows_affected() > 0)
}

/// The one check of a status move, made by every change of an appeal's status
/// ([`Store::update_case`] for the API's PATCH, [`Store::set_status`] for the organisation
/// page, a partner's close): `None` when the appeal has that status already (nothing to
/// move), `Some(to)` when the workflow ([`Status::can_become`]) allows it, else
/// [`Error::Transition`].
pub(crate) fn status_move(id: AppealId, from: Status, to: Status) -> Result<Option<Status>, Error> {
    if to == from {
        Ok(None)
    } else if from.can_become(to) {
        Ok(Some(to))
    } else {
        Err(Error::Transition { id, from, to })
    }
}

/// One event of a changed case field.
pub(crate) fn field_event(
    field: &str,
    from: &serde_json::Value,
    to: &serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({ "field": field, "from": from, "to": to })
}

/// Inserts a card with its phones on `conn`; returns its id.
async fn insert_citizen(conn: &mut AnyConnection, f: &CitizenFields) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let now = db::ms(Utc::now());
    sqlx::query(
        "INSERT INTO citizens (id, name, address, district, birth_year, categories, flags, \
             consent_by, consent_at, notes, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11)",
    )
    .bind(id.to_string())
    .bind(f.name.clone())
    .bind(f.address.clone())
    .bind(f.district.clone())
    .bind(f.birth_year.map(i64::from))
    .bind(to_json(&f.categories))
    .bind(to_json(&f.flags))
    .bind(f.consent.as_ref().map(|c| c.by.clone()))
    .bind(f.consent.as_ref().map(|c| ms(c.at)))
    .bind(f.notes.clone())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    put_phones(conn, id, &f.phones).await?;
    Ok(id)
}

/// The card a partner's forward is about: the one card that has one of its numbers, else a
/// new card made from it.
pub(crate) async fn find_or_create_citizen(
    conn: &mut AnyConnection,
    card: &CitizenFields,
) -> Result<Uuid, Error> {
    let keys: Vec<String> = card.phones.iter().map(|p| phone_key(p)).collect();
    if !keys.is_empty() {
        let sql = format!(
            "SELECT DISTINCT citizen_id FROM citizen_phones WHERE phone_key IN ({})",
            marks(1, keys.len())
        );
        let binds = keys.into_iter().map(Bind::Text).collect();
        let found = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&mut *conn)
            .await?;
        if let [one] = found.as_slice() {
            return parsed(one.try_get(0)?, "citizen_phones.citizen_id");
        }
    }
    Ok(insert_citizen(conn, card).await?)
}

impl Store {
    /// Creates a card.
    pub async fn create_citizen(&self, f: &CitizenFields) -> Result<Citizen, Error> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let id = insert_citizen(&mut tx, f).await?;
        tx.commit().await?;
        self.citizen(id).await?.ok_or(Error::CitizenNotFound(id))
    }

    /// One card, or `None`.
    pub async fn citizen(&self, id: Uuid) -> Result<Option<Citizen>, Error> {
        let mut found = self
            .citizens_where("", "id = $1", vec![Bind::Text(id.to_string())])
            .await?;
        Ok(found.pop())
    }

    /// Cards whose name contains `name` and/or who have a phone with the key of `phone`,
    /// by name ([`Store::search_citizens`] with those two).
    pub async fn find_citizens(
        &self,
        name: Option<&str>,
        phone: Option<&str>,
        page: Page,
    ) -> Result<Vec<Citizen>, Error> {
        let f = CitizenFilter {
            name: name.map(str::to_owned),
            phone: phone.map(str::to_owned),
            text: None,
        };
        self.search_citizens(&f, page).await
    }

    /// Cards matching every part of the filter that is set, by name.
    pub async fn search_citizens(
        &self,
        f: &CitizenFilter,
        page: Page,
    ) -> Result<Vec<Citizen>, Error> {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        if let Some(n) = &f.name {
            binds.push(Bind::Text(format!("%{}%", escape_like(n))));
            conds.push(format!("name LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(p) = &f.phone {
            binds.push(Bind::Text(phone_key(p)));
            conds.push(format!(
                "id IN (SELECT citizen_id FROM citizen_phones WHERE phone_key = ${})",
                binds.len()
            ));
        }
        let terms = f.text.as_deref().map(search_terms).unwrap_or_default();
        let mut by_name = false;
        if !terms.is_empty() {
            let (matches, q) = fts_match(self.backend(), "citizens", &terms);
            // SQLite: a common word (every Иван, Иванова, Иванович) is read in the order of
            // the list, `citizens_name`, each card tested against its matches, up to the
            // page; a rarer one by its matches, then sorted (SQLite cannot tell which from
            // the FTS5 index, so it is asked). PostgreSQL's planner weighs the same two from
            // the GIN index's statistics.
            if self.backend() == Backend::Sqlite && f.phone.is_none() {
                let n = self
                    .matches_up_to("citizens", &terms, COMMON_CARDS + 1)
                    .await?;
                by_name = n > COMMON_CARDS;
            }
            binds.push(Bind::Text(q));
            conds.push(matches.replace("$?", &format!("${}", binds.len())));
        }
        let cond = if conds.is_empty() {
            "1 = 1".to_owned()
        } else {
            conds.join(" AND ")
        };
        let n = binds.len();
        binds.push(Bind::Int(i64::from(page.limit.min(Page::MAX_LIMIT))));
        binds.push(Bind::Int(i64::try_from(page.offset).unwrap_or(i64::MAX)));
        self.citizens_where(
            if by_name {
                " INDEXED BY citizens_name"
            } else {
                ""
            },
            &format!(
                "{cond} ORDER BY name, id LIMIT ${} OFFSET ${}",
                n + 1,
                n + 2
            ),
            binds,
        )
        .await
    }

    /// The cards matching `cond`; `index` names an index for SQLite to read them by (` INDEXED
    /// BY …`) or is empty. Two queries whatever the page: the cards, then all their phones
    /// (`citizen_id IN (…)`, at most [`Page::MAX_LIMIT`] ids), grouped by card in the card's
    /// order.
    async fn citizens_where(
        &self,
        index: &str,
        cond: &str,
        binds: Vec<Bind>,
    ) -> Result<Vec<Citizen>, Error> {
        let sql = format!("SELECT {CITIZEN_COLUMNS} FROM citizens{index} WHERE {cond}");
        let rows = bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<Result<_, _>>()?;
        let mut phones: HashMap<String, Vec<String>> = HashMap::with_capacity(ids.len());
        if !ids.is_empty() {
            let sql = format!(
                "SELECT citizen_id, phone FROM citizen_phones WHERE citizen_id IN ({}) \
                 ORDER BY citizen_id, position",
                marks(1, ids.len())
            );
            let binds = ids.iter().cloned().map(Bind::Text).collect();
            for p in bind_all(sqlx::query(&sql), binds)
                .fetch_all(&self.pool)
                .await?
            {
                phones
                    .entry(p.try_get("citizen_id")?)
                    .or_default()
                    .push(p.try_get("phone")?);
            }
        }
        rows.iter()
            .zip(ids)
            .map(|(r, id)| citizen_from_row(r, phones.remove(&id).unwrap_or_default()))
            .collect()
    }

    /// Changes a card made on `version`: a card changed since is [`Error::Stale`] and
    /// nothing is written.
    pub async fn update_citizen(
        &self,
        id: Uuid,
        version: i64,
        p: &CitizenPatch,
    ) -> Result<Citizen, Error> {
        let Some(Citizen { card: cur, .. }) = self.citizen(id).await? else {
            return Err(Error::CitizenNotFound(id));
        };
        let name = p.name.clone().unwrap_or(cur.name);
        let address = p.address.clone().unwrap_or(cur.address);
        let district = p.district.clone().unwrap_or(cur.district);
        let birth_year = p.birth_year.unwrap_or(cur.birth_year);
        let categories = p.categories.clone().unwrap_or(cur.categories);
        let flags = p.flags.clone().unwrap_or(cur.flags);
        let consent = p.consent.clone().unwrap_or(cur.consent);
        let notes = p.notes.clone().unwrap_or(cur.notes);
        let mut conn = self.pool.acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        // The version check and the write are one statement: two edits made on the same
        // version cannot both pass.
        let done = sqlx::query(
            "UPDATE citizens SET name = $3, address = $4, district = $5, birth_year = $6, \
             categories = $7, flags = $8, consent_by = $9, consent_at = $10, notes = $11, \
             version = version + 1, updated_at = $12 WHERE id = $1 AND version = $2",
        )
        .bind(id.to_string())
        .bind(version)
        .bind(name)
        .bind(address)
        .bind(district)
        .bind(birth_year.map(i64::from))
        .bind(to_json(&categories))
        .bind(to_json(&flags))
        .bind(consent.as_ref().map(|c| c.by.clone()))
        .bind(consent.as_ref().map(|c| ms(c.at)))
        .bind(notes)
        .bind(db::ms(Utc::now()))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            let current = self.citizen(id).await?.map_or(0, |c| c.version);
            return Err(Error::Stale {
                what: "citizen",
                id: id.to_string(),
                current,
            });
        }
        if let Some(phones) = &p.phones {
            put_phones(&mut tx, id, phones).await?;
        }
        tx.commit().await?;
        self.citizen(id).await?.ok_or(Error::CitizenNotFound(id))
    }

    /// A citizen's appeals, newest first.
    pub async fn citizen_appeals(&self, id: Uuid, page: Page) -> Result<Vec<Appeal>, Error> {
        let sql = format!(
            "SELECT {APPEAL_COLUMNS} FROM appeals WHERE citizen_id = $1 \
             ORDER BY arrived_at DESC, id DESC LIMIT $2 OFFSET $3"
        );
        sqlx::query(&sql)
            .bind(id.to_string())
            .bind(i64::from(page.limit.min(Page::MAX_LIMIT)))
            .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(appeal_from_row)
            .collect()
    }

    /// Applies `change` to an appeal made on `version` (when given; a stale one is
    /// [`Error::Stale`]), in one transaction: the status move is checked
    /// ([`Status::can_become`], else [`Error::Transition`]), each field that really changes
    /// gets its timeline entry by `actor`, and the version goes up once. A status change of
    /// an appeal from the partner is queued for the partner, as [`Store::set_status`] does;
    /// a change of the status, due date, notes or resolution of an appeal we forwarded is
    /// queued for the partner as an update ([`crate::partner`]), in the same transaction.
    /// Returns the appeal as it now stands.
    pub async fn update_case(
        &self,
        id: AppealId,
        version: Option<i64>,
        change: &CaseChange,
        actor: &str,
    ) -> Result<AppealWithEvents, Error> {
        let now = Utc::now();
        let mut conn = self.pool.acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let Some(cur) = crate::store::appeal_on(&mut tx, id).await? else {
            return Err(Error::NotFound(id));
        };
        if let Some(v) = version {
            if v != cur.case.version {
                return Err(Error::Stale {
                    what: "appeal",
                    id: id.to_string(),
                    current: cur.case.version,
                });
            }
        }
        let status_to = match change.status {
            Some(to) => status_move(id, cur.status, to)?,
            None => None,
        };

        // (column, new value as bound, event kind, event data) for every real change
        use CaseValue as Val;
        let mut sets: Vec<(&'static str, Val)> = Vec::new();
        let mut events: Vec<(EventKind, serde_json::Value)> = Vec::new();
        if let Some(to) = status_to {
            let mut data = serde_json::json!({ "from": cur.status, "to": to });
            if cur.status.is_closed() {
                data["reopened"] = serde_json::json!(true);
            }
            events.push((EventKind::StatusChanged, data));
            sets.push(("status", Val::Text(Some(to.as_str().to_owned()))));
        }

        let c = &cur.case;
        // One field: when the change gives a new value, an event and a column to set.
        macro_rules! field {
            ($field:ident, $column:literal, $val:expr) => {
                if let Some(new) = &change.$field {
                    if *new != c.$field {
                        events.push((
                            EventKind::CaseUpdated,
                            field_event(
                                $column,
                                &serde_json::json!(c.$field),
                                &serde_json::json!(new),
                            ),
                        ));
                        sets.push(($column, $val(new)));
                    }
                }
            };
        }
        let text = |v: &Option<String>| Val::Text(v.clone());
        let millis = |v: &Option<DateTime<Utc>>| Val::Int(v.map(ms));
        field!(citizen_id, "citizen_id", |v: &Option<Uuid>| Val::Text(
            v.map(|u| u.to_string())
        ));
        field!(service, "service", text);
        field!(address, "address", text);
        field!(district, "district", text);
        field!(organisation, "organisation", text);
        field!(assignee, "assignee", text);
        field!(due_at, "due_at", millis);
        field!(pending_until, "pending_until", millis);
        field!(disposition, "disposition", text);
        field!(resolution, "resolution", text);
        if let Some(n) = change
            .notes
            .as_ref()
            .filter(|n| Some(*n) != cur.notes.as_ref())
        {
            events.push((
                EventKind::NoteAdded,
                serde_json::json!({ "from": cur.notes, "to": n }),
            ));
            sets.push(("notes", Val::Text(Some(n.clone()))));
        }
        if let Some(o) = change
            .destination_org
            .as_ref()
            .filter(|o| Some(*o) != cur.destination_org.as_ref())
        {
            events.push((
                EventKind::DestinationSet,
                serde_json::json!({ "from": cur.destination_org, "to": o }),
            ));
            sets.push(("destination_org", Val::Text(Some(o.clone()))));
        }
        if !sets.is_empty() {
            // The version read above is checked again in the write itself: on PostgreSQL
            // the SELECT took no lock, and a change committed since must not be overwritten.
            let how = CaseWrite::Edit {
                version: cur.case.version,
                at: now,
            };
            if !write_case(&mut tx, id, sets, how).await? {
                tx.rollback().await?;
                let current = self.get(id).await?.map_or(0, |a| a.appeal.case.version);
                return Err(Error::Stale {
                    what: "appeal",
                    id: id.to_string(),
                    current,
                });
            }
            for (kind, data) in &events {
                db::append_event(&mut tx, id, Uuid::now_v7(), now, *kind, data, Some(actor))
                    .await?;
            }
            // an appeal that came from the partner reports its status and result back
            let resolution_changed = change
                .resolution
                .as_ref()
                .is_some_and(|r| *r != c.resolution);
            let to = status_to.unwrap_or(cur.status);
            partner::status_changed(
                &mut tx,
                id,
                (cur.status, to),
                resolution_changed,
                actor,
                now,
            )
            .await?;
            // An appeal we forwarded tells the partner what changed, in this same
            // transaction: the change and the message stand or fall together.
            let update = partner::UpdateMessage {
                status: status_to.map(|to| partner::StatusMove {
                    from: cur.status,
                    to,
                }),
                due_at: change.due_at.filter(|d| *d != c.due_at),
                notes: change
                    .notes
                    .clone()
                    .filter(|n| Some(n) != cur.notes.as_ref()),
                resolution: change.resolution.clone().filter(|r| *r != c.resolution),
                actor: Some(actor.to_owned()),
                at: now,
                ..partner::UpdateMessage::default()
            };
            partner::forwarded_changed(&mut tx, id, &update, now).await?;
        }
        tx.commit().await?;
        self.get(id).await?.ok_or(Error::NotFound(id))
    }

    /// One page of a worklist of appeals.
    pub async fn worklist(
        &self,
        list: Worklist<'_>,
        now: DateTime<Utc>,
        page: Page,
    ) -> Result<Vec<Appeal>, Error> {
        let (cond, order, mut binds) = match list {
            Worklist::Mine(login) => (
                format!("assignee = $1 AND {OPEN}"),
                "(due_at IS NULL), due_at, arrived_at, id",
                vec![Bind::Text(login.to_owned())],
            ),
            Worklist::Overdue => (
                format!("due_at < $1 AND {OPEN}"),
                "due_at, id",
                vec![Bind::Int(ms(now))],
            ),
            Worklist::Due { from, to, assignee } => {
                let mut binds = vec![Bind::Int(ms(from)), Bind::Int(ms(to))];
                let mine = match assignee {
                    Some(login) => {
                        binds.push(Bind::Text(login.to_owned()));
                        " AND assignee = $3"
                    }
                    None => "",
                };
                (
                    format!("due_at >= $1 AND due_at < $2{mine} AND {OPEN}"),
                    "due_at, id",
                    binds,
                )
            }
        };
        let n = binds.len();
        binds.push(Bind::Int(i64::from(page.limit.min(Page::MAX_LIMIT))));
        binds.push(Bind::Int(i64::try_from(page.offset).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {APPEAL_COLUMNS} FROM appeals WHERE {cond} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        bind_all(sqlx::query(&sql), binds)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(appeal_from_row)
            .collect()
    }

    /// Callers who hung up without reaching a person (outcome `abandoned`: in the queue,
    /// before the answer, or in the voice menu while choosing) and have not been reached
    /// since — no later call of theirs answered, no callback to their number done, not
    /// closed by a supervisor — one row per caller, the longest waiting first. Read from the
    /// table the writer keeps ([`crate::missed`]): an index lookup at any size.
    pub async fn missed(&self, page: Page) -> Result<Vec<MissedCaller>, Error> {
        let rows = sqlx::query(
            "SELECT m.first_at, m.last_at, m.calls, a.id, a.caller_number, a.citizen_id, a.line \
             FROM missed_callers m JOIN appeals a ON a.id = m.appeal_id \
             ORDER BY m.first_at, m.caller_key LIMIT $1 OFFSET $2",
        )
        .bind(i64::from(page.limit.min(Page::MAX_LIMIT)))
        .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MissedCaller {
                    appeal_id: parsed(r.try_get("id")?, "id")?,
                    caller_number: r.try_get("caller_number")?,
                    citizen_id: opt_parsed(r.try_get("citizen_id")?, "citizen_id")?,
                    line: r.try_get("line")?,
                    first_missed_at: time(r.try_get("first_at")?, "missed_callers.first_at")?,
                    last_missed_at: time(r.try_get("last_at")?, "missed_callers.last_at")?,
                    calls: r.try_get("calls")?,
                })
            })
            .collect()
    }

    /// Recomputes the whole `missed` list from the appeals, callbacks and closures (what
    /// migration 7 does once). The writer and [`Store::close_missed`] keep it up to date;
    /// this is for rows written around them (a bulk load, a restore).
    pub async fn rebuild_missed(&self) -> Result<(), Error> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        crate::missed::refresh(&mut tx, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes the caller of `appeal` off the `missed` list (every missed call of that number
    /// up to now), with the reason and who did it.
    pub async fn close_missed(
        &self,
        appeal: AppealId,
        actor: &str,
        reason: &str,
    ) -> Result<(), Error> {
        let key: Option<Option<String>> =
            sqlx::query("SELECT caller_key FROM appeals WHERE id = $1")
                .bind(appeal.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        let Some(Some(key)) = key else {
            return Err(Error::NotFound(appeal));
        };
        let now = Utc::now();
        let mut conn = self.pool.acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        sqlx::query(
            "INSERT INTO missed_closures (id, caller_key, closed_at, actor, reason) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(key.clone())
        .bind(ms(now))
        .bind(actor.to_owned())
        .bind(reason.to_owned())
        .execute(&mut *tx)
        .await?;
        crate::missed::refresh(&mut tx, Some(&std::collections::BTreeSet::from([key]))).await?;
        let data = field_event(
            "missed",
            &serde_json::Value::Null,
            &serde_json::json!(reason),
        );
        db::append_event(
            &mut tx,
            appeal,
            Uuid::now_v7(),
            now,
            EventKind::CaseUpdated,
            &data,
            Some(actor),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
