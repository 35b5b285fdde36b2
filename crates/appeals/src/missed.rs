//! The `missed` worklist as a table (migration 7): `missed_callers` holds one row per caller
//! who hung up without reaching a person (outcome `abandoned`) and has not been reached since
//! — no later call of theirs answered, no callback to their number done, not closed by a
//! supervisor — so the list's first page is an index lookup instead of an aggregate over
//! every appeal.
//!
//! Rows are never edited piecemeal: [`refresh`] recomputes the rows of the callers a change
//! touched from the appeals, callbacks and closures themselves, in the transaction of that
//! change — the writer's batch (calls ending, callbacks progressing), a supervisor's close —
//! so the table always says what the full query over the history would say. Migration 7
//! runs it once over every caller.

use std::collections::BTreeSet;

use sqlx::{AnyConnection, Row};

use crate::model::AppealId;
use crate::store::{bind_all, marks, Bind};

/// Keys per statement.
pub(crate) const CHUNK: usize = 500;

/// Recomputes the `missed_callers` rows of these caller keys (every caller with `None`).
pub(crate) async fn refresh(
    conn: &mut AnyConnection,
    keys: Option<&BTreeSet<String>>,
) -> Result<(), sqlx::Error> {
    match keys {
        None => refresh_chunk(conn, None).await,
        Some(keys) => {
            let keys: Vec<&String> = keys.iter().filter(|k| !k.is_empty()).collect();
            for chunk in keys.chunks(CHUNK) {
                let chunk: Vec<String> = chunk.iter().map(|k| (*k).clone()).collect();
                refresh_chunk(conn, Some(&chunk)).await?;
            }
            Ok(())
        }
    }
}

async fn refresh_chunk(
    conn: &mut AnyConnection,
    keys: Option<&[String]>,
) -> Result<(), sqlx::Error> {
    let (only, only_a, binds) = match keys {
        None => (String::new(), String::new(), Vec::new()),
        Some(keys) => {
            let m = marks(1, keys.len());
            (
                format!(" WHERE caller_key IN ({m})"),
                format!(" AND a.caller_key IN ({m})"),
                keys.to_vec(),
            )
        }
    };
    let text = |b: &[String]| b.iter().cloned().map(Bind::Text).collect::<Vec<_>>();
    bind_all(
        sqlx::query(&format!("DELETE FROM missed_callers{only}")),
        text(&binds),
    )
    .execute(&mut *conn)
    .await?;
    let sql = format!(
        "INSERT INTO missed_callers (caller_key, appeal_id, first_at, last_at, calls) \
         SELECT g.caller_key, \
                (SELECT l.id FROM appeals l WHERE l.caller_key = g.caller_key \
                 AND l.outcome = 'abandoned' AND l.arrived_at = g.last_at \
                 ORDER BY l.id DESC LIMIT 1), \
                g.first_at, g.last_at, g.calls \
         FROM (SELECT a.caller_key, MIN(a.arrived_at) AS first_at, \
                      MAX(a.arrived_at) AS last_at, COUNT(*) AS calls \
               FROM appeals a \
               WHERE a.outcome = 'abandoned' AND a.caller_key IS NOT NULL \
               AND a.caller_key <> ''{only_a} \
               AND NOT EXISTS (SELECT 1 FROM appeals b WHERE b.caller_key = a.caller_key \
                   AND b.arrived_at > a.arrived_at AND b.answered_at IS NOT NULL) \
               AND NOT EXISTS (SELECT 1 FROM callbacks c WHERE c.number_key = a.caller_key \
                   AND c.status = 'done' AND c.completed_at > a.arrived_at) \
               AND NOT EXISTS (SELECT 1 FROM missed_closures m \
                   WHERE m.caller_key = a.caller_key AND m.closed_at >= a.arrived_at) \
               GROUP BY a.caller_key) g"
    );
    bind_all(sqlx::query(&sql), text(&binds))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The caller keys of these appeals.
pub(crate) async fn keys_of_appeals(
    conn: &mut AnyConnection,
    ids: &[AppealId],
) -> Result<BTreeSet<String>, sqlx::Error> {
    keys_where(conn, "SELECT caller_key FROM appeals WHERE id IN", ids).await
}

/// The number keys of the callbacks booked on these appeals or with these ids.
pub(crate) async fn keys_of_callbacks(
    conn: &mut AnyConnection,
    appeals: &[AppealId],
    ids: &[uuid::Uuid],
) -> Result<BTreeSet<String>, sqlx::Error> {
    let mut keys = keys_where(
        conn,
        "SELECT number_key FROM callbacks WHERE appeal_id IN",
        appeals,
    )
    .await?;
    keys.extend(keys_where(conn, "SELECT number_key FROM callbacks WHERE id IN", ids).await?);
    Ok(keys)
}

async fn keys_where<T: ToString>(
    conn: &mut AnyConnection,
    select: &str,
    ids: &[T],
) -> Result<BTreeSet<String>, sqlx::Error> {
    let mut keys = BTreeSet::new();
    for chunk in ids.chunks(CHUNK) {
        let sql = format!("{select} ({})", marks(1, chunk.len()));
        let binds = chunk.iter().map(|i| Bind::Text(i.to_string())).collect();
        for row in bind_all(sqlx::query(&sql), binds)
            .fetch_all(&mut *conn)
            .await?
        {
            if let Some(k) = row.try_get::<Option<String>, _>(0)? {
                keys.insert(k);
            }
        }
    }
    Ok(keys)
}
