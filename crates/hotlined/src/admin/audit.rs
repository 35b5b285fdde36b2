//! The one place every change to a citizen or an appeal made through the API is reported
//! for audit. Until the access work's audit table lands it goes to the log under the
//! `hotline::audit` target — ids only, never the personal data itself; then this function
//! writes the audit row instead and every caller stays as it is.

/// Records that `actor` did `action` (`citizen.create`, `citizen.update`, `appeal.update`,
/// `missed.close`) to `subject` (the record's id).
pub(crate) fn record(actor: &str, action: &'static str, subject: &str) {
    tracing::info!(target: "hotline::audit", actor, action, subject, "audit");
}
