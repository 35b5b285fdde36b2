-- Cases (issue 12): citizens, and the appeal as the case record the services work from.
-- Portable SQL (SQLite and PostgreSQL); times are UTC milliseconds like everywhere else.
-- Nothing existing is dropped or rewritten, except the status `resolved`, now `done`.

-- Citizens (заявители). JSON text for the small lists, as appeal_events.data does.
CREATE TABLE citizens (
    id          TEXT PRIMARY KEY,                 -- UUIDv7
    name        TEXT NOT NULL,
    address     TEXT,
    district    TEXT,                             -- districts.toml id
    birth_year  BIGINT,
    categories  TEXT NOT NULL DEFAULT '[]',       -- JSON array of social category ids
    flags       TEXT NOT NULL DEFAULT '[]',       -- JSON [{"flag": id, "until": "YYYY-MM-DD"|null}]
    consent_by  TEXT,                             -- who recorded the consent to data processing
    consent_at  BIGINT,                           -- and when
    notes       TEXT,
    version     BIGINT NOT NULL DEFAULT 1,        -- bumped by every change; edits name it
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX citizens_name ON citizens (name);

-- A citizen's phone numbers: as written, and the key calls are matched by (digits only,
-- +7/8 and Belarus' 80 prefixes made one form; see appeals::phone_key).
CREATE TABLE citizen_phones (
    citizen_id TEXT NOT NULL,
    position   BIGINT NOT NULL,                   -- order on the card
    phone      TEXT NOT NULL,
    phone_key  TEXT NOT NULL,
    PRIMARY KEY (citizen_id, phone_key)
);

CREATE INDEX citizen_phones_key ON citizen_phones (phone_key);

-- The appeal as a case record.
ALTER TABLE appeals ADD COLUMN caller_key TEXT;     -- the caller's number as a phone key
ALTER TABLE appeals ADD COLUMN citizen_id TEXT;
ALTER TABLE appeals ADD COLUMN service TEXT;        -- services.toml id
ALTER TABLE appeals ADD COLUMN address TEXT;
ALTER TABLE appeals ADD COLUMN district TEXT;       -- districts.toml id
ALTER TABLE appeals ADD COLUMN organisation TEXT;   -- organisations.toml id (destination)
ALTER TABLE appeals ADD COLUMN assignee TEXT;
ALTER TABLE appeals ADD COLUMN due_at BIGINT;
ALTER TABLE appeals ADD COLUMN pending_until BIGINT;
ALTER TABLE appeals ADD COLUMN disposition TEXT;    -- cases.toml disposition id
ALTER TABLE appeals ADD COLUMN resolution TEXT;
ALTER TABLE appeals ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

UPDATE appeals SET status = 'done' WHERE status = 'resolved';

-- The phone key of the calls already stored, by the same rule as appeals::phone_key:
-- + space - ( ) removed; 11 digits 80… (Belarus, national) → 375…; 11 digits 8… → 7…;
-- 10 digits 9… (Russian mobile without a prefix) → 79….
UPDATE appeals SET caller_key =
    REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(caller_number, '+', ''), ' ', ''), '-', ''), '(', ''), ')', '');
UPDATE appeals SET caller_key = CASE
    WHEN LENGTH(caller_key) = 11 AND SUBSTR(caller_key, 1, 2) = '80' THEN '375' || SUBSTR(caller_key, 3)
    WHEN LENGTH(caller_key) = 11 AND SUBSTR(caller_key, 1, 1) = '8' THEN '7' || SUBSTR(caller_key, 2)
    WHEN LENGTH(caller_key) = 10 AND SUBSTR(caller_key, 1, 1) = '9' THEN '7' || caller_key
    ELSE caller_key END;

-- Callbacks get the same key for their number: a done callback reaches a missed caller.
ALTER TABLE callbacks ADD COLUMN number_key TEXT;
UPDATE callbacks SET number_key =
    REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(number, '+', ''), ' ', ''), '-', ''), '(', ''), ')', '');
UPDATE callbacks SET number_key = CASE
    WHEN LENGTH(number_key) = 11 AND SUBSTR(number_key, 1, 2) = '80' THEN '375' || SUBSTR(number_key, 3)
    WHEN LENGTH(number_key) = 11 AND SUBSTR(number_key, 1, 1) = '8' THEN '7' || SUBSTR(number_key, 2)
    WHEN LENGTH(number_key) = 10 AND SUBSTR(number_key, 1, 1) = '9' THEN '7' || number_key
    ELSE number_key END;

CREATE INDEX appeals_citizen ON appeals (citizen_id, arrived_at);
-- The missed worklist: a caller's abandoned calls, their answered ones, done callbacks.
CREATE INDEX appeals_abandoned ON appeals (caller_key, arrived_at) WHERE outcome = 'abandoned';
CREATE INDEX appeals_answered ON appeals (caller_key, arrived_at) WHERE answered_at IS NOT NULL;
CREATE INDEX callbacks_done ON callbacks (number_key, completed_at) WHERE status = 'done';
CREATE INDEX appeals_due ON appeals (due_at);
CREATE INDEX appeals_assignee ON appeals (assignee, due_at);

-- Missed callers a supervisor closed by hand (the `missed` worklist): every missed call of
-- that number up to closed_at is done with.
CREATE TABLE missed_closures (
    id         TEXT PRIMARY KEY,                  -- UUIDv7
    caller_key TEXT NOT NULL,
    closed_at  BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL
);

CREATE INDEX missed_closures_caller ON missed_closures (caller_key, closed_at);
