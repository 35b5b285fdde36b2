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
//! its own status alone, with one exception: the partner's `resolved` resolves the origin's
//! appeal too if it still stands `forwarded` (the work was handed over; the partner finishing
//! it finishes it for us). A later reopening by the partner is recorded, not mirrored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::db::{self, ms};
use crate::model::{AppealId, EventKind, Outcome, Status};
use crate::store::{appeal_from_row, parsed, time, APPEAL_COLUMNS};
use crate::writer::now_ms;
use crate::{Error, Store};

/// Partner API path a forward is POSTed to.
pub const FORWARD_PATH: &str = "/api/v1/partner/appeals";

/// Partner API path a status update for the partner's appeal `origin` is POSTed to.
pub fn status_path(origin: AppealId) -> String {
    format!("/api/v1/partner/appeals/{origin}/status")
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
}

/// Which kind of message an outbox row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    /// An appeal sent to the partner.
    Forward,
    /// A status change reported back to the origin.
    Status,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Forward => "forward",
            OutboxKind::Status => "status",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "forward" => Some(OutboxKind::Forward),
            "status" => Some(OutboxKind::Status),
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

/// Queues the status change of an appeal that came from the partner; nothing for others.
/// Called inside [`Store::set_status`]'s transaction.
pub(crate) async fn status_changed(
    conn: &mut AnyConnection,
    id: AppealId,
    from: Status,
    to: Status,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some((_, origin)) = origin_of(conn, id).await? else {
        return Ok(());
    };
    let msg = StatusMessage {
        centre: String::new(),
        appeal_id: id,
        from,
        status: to,
        actor: Some(actor.to_owned()),
        at: now,
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

/// The message as JSON without its `centre`, which the sender fills in.
fn payload_without_centre<T: Serialize>(msg: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(msg).unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.remove("centre");
    }
    v
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
        let sql = format!("SELECT {APPEAL_COLUMNS} FROM appeals WHERE id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(Error::NotFound(id));
        };
        let appeal = appeal_from_row(&row)?;
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
        let data = serde_json::json!({
            "partner": msg.centre,
            "partner_appeal": msg.appeal_id,
            "from": msg.from,
            "status": msg.status,
            "partner_actor": msg.actor,
            "at_partner": msg.at,
        });
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
        if msg.status.is_closed() && current == Status::Forwarded {
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
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Messages due to be sent at `now` (not sent, not given up, next attempt reached),
    /// oldest first, at most `limit`.
    pub async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxMessage>, Error> {
        sqlx::query(
            "SELECT id, kind, appeal_id, path, payload, attempts FROM partner_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY created_at, id LIMIT $2",
        )
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            let kind: String = r.try_get("kind")?;
            let payload: String = r.try_get("payload")?;
            Ok(OutboxMessage {
                key: parsed(r.try_get("id")?, "partner_outbox.id")?,
                kind: OutboxKind::parse(&kind).ok_or(Error::BadValue {
                    column: "partner_outbox.kind",
                    value: kind.clone(),
                })?,
                appeal_id: parsed(r.try_get("appeal_id")?, "partner_outbox.appeal_id")?,
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
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) FROM partner_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
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
                let kind: String = r.try_get("kind")?;
                Ok(OutboxRow {
                    key: parsed(r.try_get("id")?, "partner_outbox.id")?,
                    kind: OutboxKind::parse(&kind).ok_or(Error::BadValue {
                        column: "partner_outbox.kind",
                        value: kind.clone(),
                    })?,
                    appeal_id: parsed(r.try_get("appeal_id")?, "partner_outbox.appeal_id")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    sent_at: opt_time(r.try_get("sent_at")?, "partner_outbox.sent_at")?,
                    failed_at: opt_time(r.try_get("failed_at")?, "partner_outbox.failed_at")?,
                })
            })
            .collect()
    }
}
