//! Operators' saved work state, read back when the daemon starts.
//!
//! Every change is written like an appeal: [`AppealWriter::operator_state`] appends a line
//! to the spool and the writer task saves it in `operator_state` (one row per operator), so a
//! database outage never holds up a login or a pause. At start, [`load`] reads the table and
//! lays over it the changes still waiting in the spool (a previous run that could not reach
//! the database, or was killed before its writer caught up): the newest state of each
//! operator wins.
//!
//! [`AppealWriter::operator_state`]: crate::AppealWriter::operator_state

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use sqlx::Row;

use crate::model::OperatorStateRow;
use crate::store::{opt_time, time};
use crate::writer::Op;
use crate::{db, spool, Error};

/// What [`load`] found.
#[derive(Debug, Default)]
pub struct LoadedStates {
    /// Every operator with a saved state, by login order (sorted by name).
    pub states: Vec<OperatorStateRow>,
    /// Why the database part could not be read (the spool part is in `states` all the same):
    /// operators whose state only the database had start logged out.
    pub database_error: Option<Error>,
}

/// Reads the saved states: the database's `operator_state` rows (waiting at most `timeout`
/// for the database) with the spool's newer changes laid over them. Call it before
/// [`crate::AppealWriter::start`] opens the same spool, and after [`crate::spool::claim`]
/// said the spool is this database's.
pub async fn load(database_url: &str, spool_dir: &Path, timeout: Duration) -> LoadedStates {
    let mut by_operator: BTreeMap<String, OperatorStateRow> = BTreeMap::new();
    let database_error =
        match tokio::time::timeout(timeout, from_database(database_url, timeout)).await {
            Ok(Ok(rows)) => {
                for r in rows {
                    by_operator.insert(r.operator.clone(), r);
                }
                None
            }
            Ok(Err(e)) => Some(e),
            Err(_) => Some(Error::Db(sqlx::Error::PoolTimedOut)),
        };
    for r in from_spool(spool_dir) {
        match by_operator.get(&r.operator) {
            Some(old) if old.updated_at > r.updated_at => {}
            _ => {
                by_operator.insert(r.operator.clone(), r);
            }
        }
    }
    LoadedStates {
        states: by_operator.into_values().collect(),
        database_error,
    }
}

async fn from_database(url: &str, timeout: Duration) -> Result<Vec<OperatorStateRow>, Error> {
    let pool = db::connect(url, 1, timeout).await?;
    let rows = async {
        db::migrate(&pool).await?;
        let rows = sqlx::query(
            "SELECT operator, logged_in, queues, since, paused_since, pause_reason, updated_at \
             FROM operator_state ORDER BY operator",
        )
        .fetch_all(&pool)
        .await?;
        rows.iter()
            .map(|r| {
                let queues: Option<String> = r.try_get("queues")?;
                let queues = match queues {
                    None => Vec::new(),
                    Some(q) => serde_json::from_str(&q).map_err(|_| Error::BadValue {
                        column: "operator_state.queues",
                        value: q.clone(),
                    })?,
                };
                Ok(OperatorStateRow {
                    operator: r.try_get("operator")?,
                    logged_in: r.try_get::<i64, _>("logged_in")? != 0,
                    queues,
                    since: opt_time(r.try_get("since")?, "operator_state.since")?,
                    paused_since: opt_time(
                        r.try_get("paused_since")?,
                        "operator_state.paused_since",
                    )?,
                    pause_reason: r.try_get("pause_reason")?,
                    updated_at: time(r.try_get("updated_at")?, "operator_state.updated_at")?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()
    }
    .await;
    pool.close().await;
    rows
}

/// The operator states in the spool file, oldest first; lines that do not parse (a line cut
/// by a crash, other operations) are skipped.
fn from_spool(dir: &Path) -> Vec<OperatorStateRow> {
    let Ok(file) = std::fs::File::open(dir.join(spool::SPOOL_FILE)) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .split(b'\n')
        .map_while(Result::ok)
        .filter_map(|line| match serde_json::from_slice::<Op>(&line) {
            Ok(Op::OperatorState { state }) => Some(state),
            _ => None,
        })
        .collect()
}
