-- The partner-centre exchange (portable SQL: SQLite and PostgreSQL).
--
-- partner_outbox: messages to the partner centre, written in the same transaction as the
-- change they report, sent by the daemon's sender task until the partner answers 2xx.
-- Its id is the message's idempotency key: made once, sent with every attempt.
CREATE TABLE partner_outbox (
    id              TEXT PRIMARY KEY,          -- idempotency key (UUIDv7)
    kind            TEXT NOT NULL,             -- forward|status
    appeal_id       TEXT NOT NULL,             -- our appeal the message is about
    path            TEXT NOT NULL,             -- partner API path it is POSTed to
    payload         TEXT NOT NULL,             -- JSON body
    created_at      BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    sent_at         BIGINT,                    -- set only after a 2xx answer
    failed_at       BIGINT                     -- set when the partner refused it for good (4xx)
);

CREATE INDEX partner_outbox_due ON partner_outbox (sent_at, failed_at, next_attempt_at);
CREATE INDEX partner_outbox_appeal ON partner_outbox (appeal_id);

-- partner_inbox: every message accepted from the partner, by its idempotency key, so a
-- message sent twice (the partner retried after losing our answer) is applied once.
CREATE TABLE partner_inbox (
    idempotency_key  TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,            -- forward|status
    appeal_id        TEXT NOT NULL,            -- our appeal it created or updated
    origin_centre    TEXT NOT NULL,            -- the partner's name
    origin_appeal_id TEXT NOT NULL,            -- the partner's appeal
    received_at      BIGINT NOT NULL
);

CREATE INDEX partner_inbox_appeal ON partner_inbox (appeal_id, kind);
