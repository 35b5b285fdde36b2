//! The partner-centre exchange in the store: the outbox of messages to the partner Hotline
//! and the inbox of messages accepted from it (issue 6, item 7).
//!
//! Exactly-once delivery rests on two tables (`migrations/0002_partner.sql`):
//! - `partner_outbox` — a message is written in the same transaction as the change it
//!   reports (a forward, a status change on an appeal that came from the partner), with a
//!   fresh UUID as its idempotency key. The daemon's sender POSTs it until the partner
//!   answers 2xx, and only then marks it sent ([`Store::outbox_sent`]); a crash before that
//!   sends it again with the same key.
//! - `partner_inbox` — the receiver records each key it accepted, in the same transaction as
//!   the appeal it creates or the event it appends; the key is the primary key, so the same
//!   message twice changes nothing the second time and gets the same answer.
//!
//! Wire format (JSON): the sender adds `"centre": <its name>` to every payload when it
//! sends it, so nothing here needs to know the centres' names except from the wire.
//!
//! Status flowing back: when an appeal that came from the partner changes status
//! ([`Store::set_status`]), a `status` message to the origin is queued in the same
//! transaction. The origin records every such message as a `partner_update` event and leaves
//! its own status alone, with one exception: the partner's close (`done`, `declined`) closes
//! the origin's appeal too if it still stands `forwarded` (the work was handed over; the
//! partner finishing it finishes it for us), and the partner's resolution sent with it
//! becomes the origin's when it has none. A later reopening by the partner is recorded, not
//! mirrored. The partner's resolution (what was done) travels with its close and with every
//! change of it, and stands on the origin's timeline.
//!
//! Changes flowing forward (issue 12, item 7): when the origin changes an appeal it forwarded
//! (its status, due date, notes or resolution, through [`Store::update_case`],
//! [`Store::set_status`] or [`Store::set_notes`]), an `update` message ([`UpdateMessage`]) is
//! queued in the same transaction as the change, to `POST /api/v1/partner/appeals/{origin
//! id}/update`. The partner finds its copy by the origin's centre and appeal id and applies it
//! ([`Store::receive_update`]): a close (`done`, `declined`) as its own status when its copy
//! can take it, a reopen (from `done`/`declined` to an open status) as a reopen of its closed
//! copy, other moves only as a timeline entry; the due date as its field; notes and
//! resolution as a timeline entry (its own notes stay its own). A status its copy cannot take
//! is refused ([`Error::Transition`], [`Error::NotReopenable`]) and nothing is written.
//!
//! No echo: what one side applies from the other (`receive_status`, `receive_update`) is
//! written here directly, never through the calls that queue messages, so nothing is sent
//! back for it.
//!
//! Order: messages about one appeal go out one at a time, oldest first
//! ([`Store::outbox_due`] gives only the oldest pending message of each appeal), so an update
//! never overtakes the forward it follows, nor an earlier update.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::db::{self, ms};
use crate::model::{AppealId, EventKind, Outcome, Status};
use crate::store::{appeal_on, parsed, time};
use crate::writer::now_ms;
use crate::{Error, Store};

/// Partner API path a forward is POSTed to.
pub const FORWARD_PATH: &str = "/api/v1/partner/appeals";

/// Partner API path a status update for the partner's appeal `origin` is POSTed to.
pub fn status_path(origin: AppealId) -> String {
    format!("/api/v1/partner/appeals/{origin}/status")
}

/// Partner API path the origin's changes to its appeal `origin` (forwarded) are POSTed to.
pub fn update_path(origin: AppealId) -> String {
    format!("/api/v1/partner/appeals/{origin}/update")
}

/// What a forward carries to the partner (the body of `POST /api/v1/partner/appeals`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardMessage {
    /// The sending centre's name (added by the sender when it sends).
    #[serde(default)]
    pub centre: String,
    /// The sender's appeal id.
    pub appeal_id: AppealId,
    /// The operator's note for the partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The organisation the appeal is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_org: Option<String>,
    /// The line the call came in on at the sender.
    pub line: String,
    /// The caller's number (needed to follow the appeal up).
    pub caller_number: String,
    /// When the call arrived at the sender.
    pub arrived_at: DateTime<Utc>,
    /// What the caller called about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// How the call ended at the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The sender's notes on the appeal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// What the partner needs to act on the case (issue 12); none from a sender without
    /// cases, or when the appeal has no case fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<ForwardCase>,
}

/// The case fields a forward carries: who (the citizen's card as the sender has it), what,
/// where and by when. Directory ids (service, district) are the sender's: partners that
/// exchange appeals share them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardCase {
    /// The citizen: name, phones, address, district…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen: Option<crate::cases::CitizenFields>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

/// What the partner answers to a forward, and we store: its appeal id and its reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardAccepted {
    /// The appeal the partner made (or had made for the same key).
    pub appeal_id: AppealId,
    /// `"<partner name>:<its appeal id>"`: kept as our appeal's `partner_ref`.
    pub partner_ref: String,
}

/// A status change on an appeal that came from the partner, reported back to the partner
/// (the body of `POST /api/v1/partner/appeals/{origin id}/status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMessage {
    /// The reporting centre's name (added by the sender when it sends).
    #[serde(default)]
    pub centre: String,
    /// The reporting centre's appeal id.
    pub appeal_id: AppealId,
    /// The status it had.
    pub from: Status,
    /// The status it has now.
    pub status: Status,
    /// Who changed it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// What was done, as the reporting centre's appeal now says (its `resolution`): sent
    /// when the appeal closes there and whenever the resolution is changed (then `from` and
    /// `status` are the same). Personal text: it travels, it is never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
}

/// A status move: what it was, what it is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusMove {
    /// The status it had.
    pub from: Status,
    /// The status it has now.
    pub to: Status,
}

impl StatusMove {
    /// From a closed status (`done`, `declined`) to an open one.
    pub fn is_reopen(self) -> bool {
        self.from.is_closed() && !self.to.is_closed()
    }
}

/// A change the origin made to an appeal it forwarded, reported to the partner (the body of
/// `POST /api/v1/partner/appeals/{origin id}/update`). Only what changed is present;
/// `due_at` and `resolution` may be `null` (cleared).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateMessage {
    /// The origin centre's name (added by the sender when it sends).
    #[serde(default)]
    pub centre: String,
    /// The status change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusMove>,
    /// The new due date (`null`: none any more).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::nullable"
    )]
    pub due_at: Option<Option<DateTime<Utc>>>,
    /// The origin's notes as they now read (personal text: it travels, it is never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// The origin's resolution as it now reads (`null`: none any more).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::nullable"
    )]
    pub resolution: Option<Option<String>>,
    /// Who changed it at the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When (the origin's clock).
    pub at: DateTime<Utc>,
}

impl UpdateMessage {
    /// True when it reports nothing.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.due_at.is_none()
            && self.notes.is_none()
            && self.resolution.is_none()
    }
}

/// A due date, or none.
pub type DueDate = Option<DateTime<Utc>>;

/// What a received update did to our copy ([`Store::receive_update`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateApplied {
    /// Our appeal (the copy the forward made).
    pub appeal_id: AppealId,
    /// False when the key had been seen: nothing changed this time.
    pub fresh: bool,
    /// Our status move, when the update moved it.
    pub status: Option<StatusMove>,
    /// Our due date before and after, when the update changed it.
    pub due_at: Option<(DueDate, DueDate)>,
    /// Whether the update carried notes or a resolution (recorded on the timeline).
    pub text: bool,
}

/// Which kind of message an outbox row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    /// An appeal sent to the partner.
    Forward,
    /// A status change reported back to the origin.
    Status,
    /// The origin's change to an appeal it forwarded.
    Update,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Forward => "forward",
            OutboxKind::Status => "status",
            OutboxKind::Update => "update",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "forward" => Some(OutboxKind::Forward),
            "status" => Some(OutboxKind::Status),
            "update" => Some(OutboxKind::Update),
            _ => None,
        }
    }
}

/// One message waiting to be sent.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxMessage {
    /// Its idempotency key.
    pub key: Uuid,
    /// What it is.
    pub kind: OutboxKind,
    /// Our appeal it is about.
    pub appeal_id: AppealId,
    /// Partner API path to POST it to.
    pub path: String,
    /// The JSON body (without `centre`).
    pub payload: serde_json::Value,
    /// Attempts so far.
    pub attempts: i64,
}

/// How an outbox row stands, for tests and operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    /// Idempotency key.
    pub key: Uuid,
    /// What it is.
    pub kind: OutboxKind,
    /// Our appeal.
    pub appeal_id: AppealId,
    /// Attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the partner accepted it.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it was given up (the partner refused it).
    pub failed_at: Option<DateTime<Utc>>,
}

/// A forward asked for through the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardOrder {
    /// Note for the partner.
    pub note: Option<String>,
    /// Destination organisation (also set on our appeal).
    pub destination_org: Option<String>,
    /// Who forwarded it.
    pub actor: String,
}

/// What a received forward did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// Our appeal for it.
    pub accepted: ForwardAccepted,
    /// False when the key had been seen: nothing new was made.
    pub created: bool,
}

/// Inserts an outbox row; `conn` is a transaction's connection.
async fn enqueue(
    conn: &mut AnyConnection,
    kind: OutboxKind,
    appeal: AppealId,
    path: &str,
    payload: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    let key = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO partner_outbox (id, kind, appeal_id, path, payload, created_at, attempts, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $6)",
    )
    .bind(key.to_string())
    .bind(kind.as_str())
    .bind(appeal.to_string())
    .bind(path.to_owned())
    .bind(payload.to_string())
    .bind(ms(now))
    .execute(&mut *conn)
    .await?;
    Ok(key)
}

/// Records a partner message's idempotency key in the inbox; false when the key was seen
/// before (the message was already applied). `conn` is a transaction's connection.
async fn first_delivery(
    conn: &mut AnyConnection,
    key: &str,
    kind: &str,
    appeal: AppealId,
    centre: &str,
    origin_appeal: AppealId,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "INSERT INTO partner_inbox (idempotency_key, kind, appeal_id, origin_centre, origin_appeal_id, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(key.to_owned())
    .bind(kind.to_owned())
    .bind(appeal.to_string())
    .bind(centre.to_owned())
    .bind(origin_appeal.to_string())
    .bind(ms(now))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0)
}

/// The partner's centre and appeal, when our appeal `id` came from the partner.
async fn origin_of(
    conn: &mut AnyConnection,
    id: AppealId,
) -> Result<Option<(String, AppealId)>, Error> {
    let row = sqlx::query(
        "SELECT origin_centre, origin_appeal_id FROM partner_inbox \
         WHERE appeal_id = $1 AND kind = 'forward'",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        None => Ok(None),
        Some(r) => Ok(Some((
            r.try_get("origin_centre")?,
            parsed(
                r.try_get("origin_appeal_id")?,
                "partner_inbox.origin_appeal_id",
            )?,
        ))),
    }
}

/// Queues the report of a change to an appeal that came from the partner (nothing for
/// others): its status move `from` → `to`, and its resolution as written now when it closes
/// or when `resolution_changed` (then `from` may equal `to`). Called inside the transaction
/// of the change, after its write ([`Store::set_status`], [`Store::update_case`]).
pub(crate) async fn status_changed(
    conn: &mut AnyConnection,
    id: AppealId,
    (from, to): (Status, Status),
    resolution_changed: bool,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if from == to && !resolution_changed {
        return Ok(());
    }
    let Some((_, origin)) = origin_of(conn, id).await? else {
        return Ok(());
    };
    let resolution = if to.is_closed() || resolution_changed {
        let r: Option<String> = sqlx::query("SELECT resolution FROM appeals WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?
            .flatten();
        r.filter(|r| !r.trim().is_empty())
    } else {
        None
    };
    if from == to && resolution.is_none() {
        return Ok(()); // a resolution cleared: nothing the origin needs
    }
    let msg = StatusMessage {
        centre: String::new(),
        appeal_id: id,
        from,
        status: to,
        actor: Some(actor.to_owned()),
        at: now,
        resolution,
    };
    let payload = payload_without_centre(&msg);
    enqueue(
        conn,
        OutboxKind::Status,
        id,
        &status_path(origin),
        &payload,
        now,
    )
    .await?;
    Ok(())
}

/// Queues `update` (built without `centre`) for the partner when appeal `id` was forwarded
/// to it (and the forward was not refused); nothing for other appeals or an empty update.
/// Called inside the transaction of the change it reports ([`Store::update_case`],
/// [`Store::set_status`], [`Store::set_notes`]). Returns whether a message was queued.
pub(crate) async fn forwarded_changed(
    conn: &mut AnyConnection,
    id: AppealId,
    update: &UpdateMessage,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    if update.is_empty() {
        return Ok(false);
    }
    let forwarded = sqlx::query(
        "SELECT id FROM partner_outbox WHERE appeal_id = $1 AND kind = 'forward' AND failed_at IS NULL",
    )
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .is_some();
    if !forwarded {
        return Ok(false);
    }
    enqueue(
        conn,
        OutboxKind::Update,
        id,
        &update_path(id),
        &payload_without_centre(update),
        now,
    )
    .await?;
    Ok(true)
}

/// Our appeal made from `centre`'s forward of its appeal `origin`, if any.
async fn copy_of(
    conn: &mut AnyConnection,
    centre: &str,
    origin: AppealId,
) -> Result<Option<AppealId>, Error> {
    let row = sqlx::query(
        "SELECT appeal_id FROM partner_inbox \
         WHERE origin_appeal_id = $1 AND origin_centre = $2 AND kind = 'forward'",
    )
    .bind(origin.to_string())
    .bind(centre.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|r| parsed(r.try_get(0)?, "partner_inbox.appeal_id"))
        .transpose()
}

/// The message as JSON without its `centre`, which the sender fills in.
fn payload_without_centre<T: Serialize>(msg: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(msg).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("centre");
    }
    v
}

/// An outbox row `o` that is pending (not sent, not given up) with no pending row of the
/// same appeal made before it: the head of its appeal's queue.
const PENDING_HEAD: &str = "o.sent_at IS NULL AND o.failed_at IS NULL AND NOT EXISTS ( \
    SELECT 1 FROM partner_outbox e WHERE e.appeal_id = o.appeal_id \
    AND e.sent_at IS NULL AND e.failed_at IS NULL \
    AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.id < o.id)))";

/// An outbox row's key, kind and appeal.
fn outbox_head(r: &sqlx::any::AnyRow) -> Result<(Uuid, OutboxKind, AppealId), Error> {
    let kind: String = r.try_get("kind")?;
    Ok((
        parsed(r.try_get("id")?, "partner_outbox.id")?,
        OutboxKind::parse(&kind).ok_or(Error::BadValue {
            column: "partner_outbox.kind",
            value: kind.clone(),
        })?,
        parsed(r.try_get("appeal_id")?, "partner_outbox.appeal_id")?,
    ))
}

fn opt_time(v: Option<i64>, column: &'static str) -> Result<Option<DateTime<Utc>>, Error> {
    v.map(|m| time(m, column)).transpose()
}

impl Store {
    /// Forwards appeal `id` to the partner: sets it `forwarded` (and its destination
    /// organisation, if given), records a `forwarded` event and queues the message, all in
    /// one transaction. Returns the message's idempotency key.
    ///
    /// Refused with [`Error::NotForwardable`] unless the appeal is `new` or `in_progress`,
    /// and with [`Error::AlreadyForwarded`] if it was sent to the partner before.
    pub async fn forward(&self, id: AppealId, order: &ForwardOrder) -> Result<Uuid, Error> {
        let now = now_ms();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let Some(appeal) = appeal_on(&mut tx, id).await? else {
            return Err(Error::NotFound(id));
        };
        if !matches!(appeal.status, Status::New | Status::InProgress) {
            return Err(Error::NotForwardable {
                id,
                status: appeal.status,
            });
        }
        let earlier =
            sqlx::query("SELECT id FROM partner_outbox WHERE appeal_id = $1 AND kind = 'forward'")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if earlier.is_some() {
            return Err(Error::AlreadyForwarded(id));
        }
        let destination_org = order.destination_org.clone().or(appeal.destination_org);
        sqlx::query(
            "UPDATE appeals SET status = 'forwarded', destination_org = $2, version = version + 1, \
             updated_at = $3 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(destination_org.clone())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        let c = &appeal.case;
        let citizen = match c.citizen_id {
            // read on another connection: the card is not part of this change
            Some(cid) => self.citizen(cid).await?.map(|x| {
                let mut card = x.card;
                // the consent was given to us; notes are ours
                card.consent = None;
                card.notes = None;
                card
            }),
            None => None,
        };
        let case = (citizen.is_some()
            || c.service.is_some()
            || c.address.is_some()
            || c.district.is_some()
            || c.due_at.is_some())
        .then(|| ForwardCase {
            citizen,
            service: c.service.clone(),
            address: c.address.clone(),
            district: c.district.clone(),
            due_at: c.due_at,
        });
        let msg = ForwardMessage {
            case,
            centre: String::new(),
            appeal_id: id,
            note: order.note.clone(),
            destination_org: destination_org.clone(),
            line: appeal.line,
            caller_number: appeal.caller_number,
            arrived_at: appeal.arrived_at,
            category: appeal.category,
            outcome: appeal.outcome,
            notes: appeal.notes,
        };
        let key = enqueue(
            &mut tx,
            OutboxKind::Forward,
            id,
            FORWARD_PATH,
            &payload_without_centre(&msg),
            now,
        )
        .await?;
        let data = serde_json::json!({
            "from": appeal.status,
            "to": Status::Forwarded,
            "note": order.note,
            "destination_org": destination_org,
            "idempotency_key": key,
        });
        db::append_event(
            &mut tx,
            id,
            Uuid::now_v7(),
            now,
            EventKind::Forwarded,
            &data,
            Some(&order.actor),
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Accepts a forward from the partner under idempotency `key`: makes a new appeal that
    /// points back (`partner_ref` = `"<centre>:<their id>"`, line `partner:<centre>`,
    /// status `new`, a `created` event naming the origin), or — when the key was seen
    /// before — returns the appeal made then and changes nothing. `our_centre` names us in
    /// the reference handed back.
    pub async fn receive_forward(
        &self,
        key: &str,
        msg: &ForwardMessage,
        our_centre: &str,
    ) -> Result<Received, Error> {
        let now = now_ms();
        let id = AppealId::new();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let fresh =
            first_delivery(&mut tx, key, "forward", id, &msg.centre, msg.appeal_id, now).await?;
        if !fresh {
            tx.rollback().await?;
            let row = sqlx::query(
                "SELECT appeal_id FROM partner_inbox WHERE idempotency_key = $1 AND kind = 'forward'",
            )
            .bind(key.to_owned())
            .fetch_one(self.pool())
            .await?;
            let existing: AppealId = parsed(row.try_get(0)?, "partner_inbox.appeal_id")?;
            return Ok(Received {
                accepted: ForwardAccepted {
                    appeal_id: existing,
                    partner_ref: format!("{our_centre}:{existing}"),
                },
                created: false,
            });
        }
        let partner_ref = format!("{}:{}", msg.centre, msg.appeal_id);
        sqlx::query(
            "INSERT INTO appeals (id, call_id, line, caller_number, arrived_at, category, outcome, status, \
               destination_org, notes, partner_ref, last_seq, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, 'new', $7, $8, $9, 0, $5)",
        )
        .bind(id.to_string())
        .bind(format!("partner:{partner_ref}"))
        .bind(format!("partner:{}", msg.centre))
        .bind(msg.caller_number.clone())
        .bind(ms(now))
        .bind(msg.category.clone())
        .bind(msg.destination_org.clone())
        .bind(msg.note.clone())
        .bind(partner_ref.clone())
        .execute(&mut *tx)
        .await?;
        if let Some(case) = &msg.case {
            let citizen = match &case.citizen {
                Some(card) => Some(crate::cases::find_or_create_citizen(&mut tx, card).await?),
                None => None,
            };
            use crate::cases::CaseValue::{Int, Text};
            let sets = vec![
                ("citizen_id", Text(citizen.map(|c| c.to_string()))),
                ("service", Text(case.service.clone())),
                ("address", Text(case.address.clone())),
                ("district", Text(case.district.clone())),
                ("due_at", Int(case.due_at.map(ms))),
            ];
            crate::cases::write_case(&mut tx, id, sets, crate::cases::CaseWrite::Fresh).await?;
        }
        let data = serde_json::json!({
            "from_partner": msg.centre,
            "partner_appeal": msg.appeal_id,
            "partner_line": msg.line,
            "arrived_at_partner": msg.arrived_at,
            "outcome_at_partner": msg.outcome,
            "notes_at_partner": msg.notes,
            "note": msg.note,
            "idempotency_key": key,
        });
        db::append_event(
            &mut tx,
            id,
            Uuid::now_v7(),
            now,
            EventKind::Created,
            &data,
            Some(&format!("partner:{}", msg.centre)),
        )
        .await?;
        tx.commit().await?;
        Ok(Received {
            accepted: ForwardAccepted {
                appeal_id: id,
                partner_ref: format!("{our_centre}:{id}"),
            },
            created: true,
        })
    }

    /// Accepts a status report from the partner about our appeal `id` under idempotency
    /// `key`: a `partner_update` event, and — for `resolved` while ours stands `forwarded`
    /// — our status set to `resolved` too (see the module docs). Returns false when the key
    /// had been seen (nothing changed); [`Error::NotFound`] when there is no such appeal.
    pub async fn receive_status(
        &self,
        key: &str,
        id: AppealId,
        msg: &StatusMessage,
    ) -> Result<bool, Error> {
        let now = now_ms();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let current: Option<String> = sqlx::query("SELECT status FROM appeals WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let Some(current) = current else {
            return Err(Error::NotFound(id));
        };
        let current: Status = parsed(current, "status")?;
        let fresh =
            first_delivery(&mut tx, key, "status", id, &msg.centre, msg.appeal_id, now).await?;
        if !fresh {
            tx.rollback().await?;
            return Ok(false);
        }
        let partner_actor = format!("partner:{}", msg.centre);
        let mut data = serde_json::json!({
            "partner": msg.centre,
            "partner_appeal": msg.appeal_id,
            "partner_actor": msg.actor,
            "at_partner": msg.at,
        });
        if msg.from != msg.status {
            data["from"] = serde_json::json!(msg.from);
            data["status"] = serde_json::json!(msg.status);
        }
        if let Some(r) = &msg.resolution {
            data["resolution"] = serde_json::json!(r);
        }
        db::append_event(
            &mut tx,
            id,
            Uuid::now_v7(),
            now,
            EventKind::PartnerUpdate,
            &data,
            Some(&partner_actor),
        )
        .await?;
        if msg.status.is_closed() && msg.from != msg.status && current == Status::Forwarded {
            sqlx::query(
                "UPDATE appeals SET status = $3, version = version + 1, updated_at = $2 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(ms(now))
            .bind(msg.status.as_str())
            .execute(&mut *tx)
            .await?;
            let data = serde_json::json!({ "from": current, "to": msg.status });
            db::append_event(
                &mut tx,
                id,
                Uuid::now_v7(),
                now,
                EventKind::StatusChanged,
                &data,
                Some(&partner_actor),
            )
            .await?;
            // the partner's result closes ours: it becomes our resolution when we have none
            if let Some(r) = &msg.resolution {
                let took = sqlx::query(
                    "UPDATE appeals SET resolution = $2 WHERE id = $1 \
                     AND (resolution IS NULL OR resolution = '')",
                )
                .bind(id.to_string())
                .bind(r)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if took {
                    let data = serde_json::json!({
                        "field": "resolution",
                        "from": serde_json::Value::Null,
                        "to": r,
                    });
                    db::append_event(
                        &mut tx,
                        id,
                        Uuid::now_v7(),
                        now,
                        EventKind::CaseUpdated,
                        &data,
                        Some(&partner_actor),
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Applies the origin's change `msg` (from centre `msg.centre`) to our copy of its
    /// appeal `origin`, once per idempotency `key`, in one transaction (see the module docs
    /// for what is applied how): a `partner_update` event with what the origin reported, and
    /// for what our copy takes a `status_changed` / `case_updated` event by
    /// `partner:<centre>` with the field written. Nothing is queued back (no echo).
    ///
    /// A key seen before changes nothing and answers `fresh: false`, whatever our copy's
    /// status is now. [`Error::NotFound`] (with `origin`) when no forward of that appeal
    /// from that centre made a copy here; [`Error::Transition`] when our copy cannot take
    /// the close, [`Error::NotReopenable`] for a reopen of a copy that is not closed: then
    /// nothing is written and the key is not recorded.
    pub async fn receive_update(
        &self,
        key: &str,
        origin: AppealId,
        msg: &UpdateMessage,
    ) -> Result<UpdateApplied, Error> {
        let now = now_ms();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let Some(id) = copy_of(&mut tx, &msg.centre, origin).await? else {
            return Err(Error::NotFound(origin));
        };
        let fresh = first_delivery(&mut tx, key, "update", id, &msg.centre, origin, now).await?;
        if !fresh {
            tx.rollback().await?;
            return Ok(UpdateApplied {
                appeal_id: id,
                fresh: false,
                status: None,
                due_at: None,
                text: false,
            });
        }
        // Takes the row's lock before reading it (PostgreSQL; SQLite's write transaction
        // holds the database already), so the checks below see what the write replaces.
        sqlx::query("UPDATE appeals SET version = version WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let Some(cur) = appeal_on(&mut tx, id).await? else {
            return Err(Error::NotFound(origin));
        };
        let status = match msg.status {
            None => None,
            Some(m) if m.is_reopen() => {
                if !cur.status.is_closed() {
                    return Err(Error::NotReopenable {
                        id,
                        status: cur.status,
                    });
                }
                Some(StatusMove {
                    from: cur.status,
                    to: Status::InProgress,
                })
            }
            Some(m) if m.to.is_closed() => {
                crate::cases::status_move(id, cur.status, m.to)?.map(|to| StatusMove {
                    from: cur.status,
                    to,
                })
            }
            // the origin's own workflow (taken back, pending…): recorded, not mirrored
            Some(_) => None,
        };
        let due_at = msg
            .due_at
            .filter(|d| *d != cur.case.due_at)
            .map(|d| (cur.case.due_at, d));

        use crate::cases::CaseValue::{Int, Text};
        let mut sets = Vec::new();
        if let Some(m) = status {
            sets.push(("status", Text(Some(m.to.as_str().to_owned()))));
        }
        if let Some((_, to)) = due_at {
            sets.push(("due_at", Int(to.map(ms))));
        }
        let how = crate::cases::CaseWrite::Edit {
            version: cur.case.version,
            at: now,
        };
        if !crate::cases::write_case(&mut tx, id, sets, how).await? {
            return Err(Error::Stale {
                what: "appeal",
                id: id.to_string(),
                current: cur.case.version,
            });
        }
        let actor = format!("partner:{}", msg.centre);
        let mut data = serde_json::json!({
            "partner": msg.centre,
            "partner_appeal": origin,
            "partner_actor": msg.actor,
            "at_partner": msg.at,
        });
        if let Some(m) = msg.status {
            data["from"] = serde_json::json!(m.from);
            data["status"] = serde_json::json!(m.to);
        }
        if let Some(d) = &msg.due_at {
            data["due_at"] = serde_json::json!(d);
        }
        if let Some(n) = &msg.notes {
            data["notes"] = serde_json::json!(n);
        }
        if let Some(r) = &msg.resolution {
            data["resolution"] = serde_json::json!(r);
        }
        let mut events = vec![(EventKind::PartnerUpdate, data)];
        if let Some(m) = status {
            let mut d = serde_json::json!({ "from": m.from, "to": m.to });
            if m.from.is_closed() {
                d["reopened"] = serde_json::json!(true);
            }
            events.push((EventKind::StatusChanged, d));
        }
        if let Some((from, to)) = due_at {
            events.push((
                EventKind::CaseUpdated,
                crate::cases::field_event(
                    "due_at",
                    &serde_json::json!(from),
                    &serde_json::json!(to),
                ),
            ));
        }
        for (kind, data) in &events {
            db::append_event(&mut tx, id, Uuid::now_v7(), now, *kind, data, Some(&actor)).await?;
        }
        tx.commit().await?;
        Ok(UpdateApplied {
            appeal_id: id,
            fresh: true,
            status,
            due_at,
            text: msg.notes.is_some() || msg.resolution.is_some(),
        })
    }

    /// Messages due to be sent at `now` (not sent, not given up, next attempt reached),
    /// oldest first, at most `limit`: of each appeal only its oldest message not yet sent
    /// or given up, so the messages about one appeal arrive in the order they were made.
    pub async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        let sql = format!(
            "SELECT id, kind, appeal_id, path, payload, attempts FROM partner_outbox o \
             WHERE {PENDING_HEAD} AND o.next_attempt_at <= $1 \
             ORDER BY o.created_at, o.id LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let (key, kind, appeal_id) = outbox_head(r)?;
                let payload: String = r.try_get("payload")?;
                Ok(OutboxMessage {
                    key,
                    kind,
                    appeal_id,
                    path: r.try_get("path")?,
                    payload: serde_json::from_str(&payload).map_err(|_| Error::BadValue {
                        column: "partner_outbox.payload",
                        value: payload.clone(),
                    })?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// When the next unsent message is due, if any.
    pub async fn outbox_next_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let sql =
            format!("SELECT MIN(o.next_attempt_at) FROM partner_outbox o WHERE {PENDING_HEAD}");
        let row = sqlx::query(&sql).fetch_one(self.pool()).await?;
        opt_time(row.try_get(0)?, "partner_outbox.next_attempt_at")
    }

    /// The partner accepted message `key`. For a forward, its answer's `partner_ref` is
    /// stored on our appeal with a `partner_update` event saying it was delivered. Marking a
    /// message sent twice changes nothing the second time.
    pub async fn outbox_sent(
        &self,
        msg: &OutboxMessage,
        accepted: Option<&ForwardAccepted>,
    ) -> Result<(), Error> {
        let now = now_ms();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let marked = sqlx::query(
            "UPDATE partner_outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL \
             WHERE id = $1 AND sent_at IS NULL",
        )
        .bind(msg.key.to_string())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if marked {
            if let Some(a) = accepted {
                sqlx::query("UPDATE appeals SET partner_ref = $2, updated_at = $3 WHERE id = $1")
                    .bind(msg.appeal_id.to_string())
                    .bind(a.partner_ref.clone())
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                let data = serde_json::json!({
                    "delivered": true,
                    "partner_ref": a.partner_ref,
                    "partner_appeal": a.appeal_id,
                });
                db::append_event(
                    &mut tx,
                    msg.appeal_id,
                    Uuid::now_v7(),
                    now,
                    EventKind::PartnerUpdate,
                    &data,
                    None,
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// An attempt to send `key` failed; try again at `next`.
    pub async fn outbox_retry(
        &self,
        key: Uuid,
        next: DateTime<Utc>,
        error: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "UPDATE partner_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
             WHERE id = $1 AND sent_at IS NULL",
        )
        .bind(key.to_string())
        .bind(ms(next))
        .bind(error.to_owned())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The partner refused message `key` for good (a 4xx other than auth or rate limits):
    /// it is not sent again, and our appeal's timeline says so.
    pub async fn outbox_failed(&self, msg: &OutboxMessage, error: &str) -> Result<(), Error> {
        let now = now_ms();
        let mut conn = self.pool().acquire().await?;
        let mut tx = db::begin_write(&mut conn).await?;
        let marked = sqlx::query(
            "UPDATE partner_outbox SET attempts = attempts + 1, failed_at = $2, last_error = $3 \
             WHERE id = $1 AND sent_at IS NULL AND failed_at IS NULL",
        )
        .bind(msg.key.to_string())
        .bind(ms(now))
        .bind(error.to_owned())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if marked && msg.kind == OutboxKind::Forward {
            // the partner has no copy: the updates queued behind the forward can never apply
            sqlx::query(
                "UPDATE partner_outbox SET failed_at = $2, last_error = $3 \
                 WHERE appeal_id = $1 AND kind = 'update' AND sent_at IS NULL AND failed_at IS NULL",
            )
            .bind(msg.appeal_id.to_string())
            .bind(ms(now))
            .bind("the forward was refused")
            .execute(&mut *tx)
            .await?;
        }
        if marked {
            let data = serde_json::json!({ "delivery_failed": error, "message": msg.kind });
            db::append_event(
                &mut tx,
                msg.appeal_id,
                Uuid::now_v7(),
                now,
                EventKind::PartnerUpdate,
                &data,
                None,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every outbox row about appeal `id` (all appeals when `None`), oldest first.
    pub async fn outbox(&self, id: Option<AppealId>) -> Result<Vec<OutboxRow>, Error> {
        let (filter, bind) = match id {
            Some(id) => (" WHERE appeal_id = $1", Some(id.to_string())),
            None => ("", None),
        };
        let sql = format!(
            "SELECT id, kind, appeal_id, attempts, last_error, sent_at, failed_at FROM partner_outbox{filter} \
             ORDER BY created_at, id"
        );
        let mut q = sqlx::query(&sql);
        if let Some(b) = bind {
            q = q.bind(b);
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                let (key, kind, appeal_id) = outbox_head(r)?;
                Ok(OutboxRow {
                    key,
                    kind,
                    appeal_id,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    sent_at: opt_time(r.try_get("sent_at")?, "partner_outbox.sent_at")?,
                    failed_at: opt_time(r.try_get("failed_at")?, "partner_outbox.failed_at")?,
                })
            })
            .collect()
    }
}
