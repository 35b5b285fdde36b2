-- Operators' work state (issue 5 item 1): who is logged in, to which queues, and who is
-- paused with what reason, so that the daemon restores it at start. One row per operator,
-- replaced on every change (the history is in operator_sessions). Ringing, on-call and
-- wrap-up are not kept: those calls do not survive a restart.
CREATE TABLE operator_state (
    operator     TEXT PRIMARY KEY,
    logged_in    BIGINT NOT NULL,                -- 0 or 1
    queues       TEXT,                           -- JSON array of queue names
    since        BIGINT,                         -- login time, ms
    paused_since BIGINT,                         -- NULL when not paused
    pause_reason TEXT,
    updated_at   BIGINT NOT NULL
);
