//! Retention (`[retention]`, off by default): recordings deleted `recordings_days` after
//! the call, caller numbers masked (all but the last two digits) in appeals, their
//! timelines, their callbacks and the messages about them sent to the partner
//! `mask_callers_days` after the call. [`spawn`] runs it at start and then every
//! day; `POST /api/v1/retention/run` runs it at once. Every run — even one with nothing
//! to do — is a `retention_run` line in the audit log with what it did.

use std::path::Path;
use std::time::Duration;

use appeals::{AuditEntry, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::admin::{AccessSettings, StoreSlot};

/// What one run did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RetentionRun {
    /// Recordings whose file was deleted (or already gone) and forgotten.
    pub recordings_deleted: u64,
    /// Recordings whose file could not be deleted (kept, tried again next run).
    pub recordings_failed: u64,
    /// Appeals whose caller number was masked.
    pub appeals_masked: u64,
    /// Callback rows whose number was masked.
    pub callbacks_masked: u64,
    /// Recordings of calls before this were deleted (none when off).
    pub recordings_before: Option<DateTime<Utc>>,
    /// Numbers of calls before this were masked (none when off).
    pub callers_before: Option<DateTime<Utc>>,
}

/// One run at `now`, recorded in the audit log as `actor`'s.
pub async fn run(
    store: &Store,
    a: &AccessSettings,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<RetentionRun, appeals::Error> {
    let mut out = RetentionRun::default();
    if a.recordings_days > 0 {
        let before = now - chrono::Duration::days(i64::from(a.recordings_days));
        out.recordings_before = Some(before);
        for (id, file) in store.recordings_before(before).await? {
            let path = Path::new(&file);
            let path = if path.is_absolute() || path.exists() {
                path.to_path_buf()
            } else {
                a.recordings_dir.join(path)
            };
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(appeal = %id, error = %e, "retention: recording not deleted");
                    out.recordings_failed += 1;
                    continue;
                }
            }
            store.clear_recording(id).await?;
            out.recordings_deleted += 1;
        }
    }
    if a.mask_callers_days > 0 {
        let before = now - chrono::Duration::days(i64::from(a.mask_callers_days));
        out.callers_before = Some(before);
        let m = store.mask_callers_before(before).await?;
        out.appeals_masked = m.appeals;
        out.callbacks_masked = m.callbacks;
    }
    store
        .audit(&AuditEntry {
            at: Utc::now(),
            actor: actor.to_owned(),
            role: None,
            address: None,
            action: "retention_run".into(),
            target: None,
            details: json!(out),
        })
        .await?;
    tracing::info!(
        recordings = out.recordings_deleted,
        appeals = out.appeals_masked,
        callbacks = out.callbacks_masked,
        "retention run"
    );
    Ok(out)
}

/// Runs retention a minute after start (once the store is connected) and then every 24 h
/// until `stop`; does nothing when both settings are 0.
pub fn spawn(
    slot: StoreSlot,
    a: std::sync::Arc<AccessSettings>,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if a.recordings_days == 0 && a.mask_callers_days == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut wait = Duration::from_secs(60);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => return,
            }
            wait = match slot.get() {
                None => Duration::from_secs(60),
                Some(store) => {
                    if let Err(e) = run(store, &a, Utc::now(), "system").await {
                        tracing::warn!(error = %e, "retention run failed; tried again in an hour");
                        Duration::from_secs(3600)
                    } else {
                        Duration::from_secs(24 * 3600)
                    }
                }
            };
        }
    }))
}
