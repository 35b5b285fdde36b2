-- Portable SQL: the same text runs on SQLite and PostgreSQL.
-- Times are UTC milliseconds since the Unix epoch (BIGINT), so range filters and
-- ordering are plain integer comparisons on both backends.

CREATE TABLE appeals (
    id              TEXT PRIMARY KEY,          -- UUIDv7, made by the daemon
    call_id         TEXT NOT NULL,
    line            TEXT NOT NULL,
    caller_number   TEXT NOT NULL,
    arrived_at      BIGINT NOT NULL,
    answered_at     BIGINT,
    ended_at        BIGINT,
    ivr_path        TEXT,
    category        TEXT,
    queue           TEXT,
    wait_seconds    BIGINT,
    talk_seconds    BIGINT,
    operator        TEXT,
    outcome         TEXT,                      -- answered|abandoned|callback|message|transferred|info_only|rejected
    recording       TEXT,
    status          TEXT NOT NULL DEFAULT 'new', -- new|in_progress|forwarded|resolved
    destination_org TEXT,
    notes           TEXT,
    partner_ref     TEXT,
    last_seq        BIGINT NOT NULL DEFAULT 0, -- highest appeal_events.seq handed out
    updated_at      BIGINT NOT NULL
);

CREATE INDEX appeals_arrived_at ON appeals (arrived_at);
CREATE INDEX appeals_line ON appeals (line, arrived_at);
CREATE INDEX appeals_category ON appeals (category, arrived_at);
CREATE INDEX appeals_status ON appeals (status, arrived_at);
CREATE INDEX appeals_caller ON appeals (caller_number);

CREATE TABLE appeal_events (
    id        TEXT PRIMARY KEY,                -- UUIDv7, made when the event happened
    appeal_id TEXT NOT NULL,
    seq       BIGINT NOT NULL,                 -- 1, 2, 3… within the appeal
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    data      TEXT NOT NULL,                   -- JSON
    actor     TEXT
);

CREATE UNIQUE INDEX appeal_events_seq ON appeal_events (appeal_id, seq);

CREATE TABLE callbacks (
    id           TEXT PRIMARY KEY,
    appeal_id    TEXT NOT NULL,
    number       TEXT NOT NULL,
    queue        TEXT,
    requested_at BIGINT NOT NULL,
    due_at       BIGINT,
    status       TEXT NOT NULL DEFAULT 'pending', -- pending|dialling|done|failed|cancelled
    attempts     BIGINT NOT NULL DEFAULT 0,
    operator     TEXT,
    completed_at BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX callbacks_status ON callbacks (status, due_at);

CREATE TABLE operator_sessions (
    id         TEXT PRIMARY KEY,
    operator   TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    queues     TEXT,                           -- JSON array of queue names
    end_reason TEXT
);

CREATE INDEX operator_sessions_operator ON operator_sessions (operator, started_at);
