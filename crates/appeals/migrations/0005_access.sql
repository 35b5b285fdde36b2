-- Access (issue 11): personal accounts, their sessions and API tokens, login throttling and
-- the audit trail. Portable SQL like the rest: times are UTC milliseconds (BIGINT), flags
-- 0/1 BIGINT, secrets only as hashes (argon2id PHC strings for passwords, SHA-256 hex for
-- session ids and tokens, which are random and long).

CREATE TABLE users (
    id              TEXT PRIMARY KEY,          -- the login: op1, supervisor, ivanova
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL,             -- operator|supervisor|admin|organisation
    organisation_id TEXT,                      -- set for (and only for) the organisation role
    password_hash   TEXT NOT NULL,             -- argon2id PHC string
    disabled        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE user_sessions (
    id_hash      TEXT PRIMARY KEY,             -- SHA-256 of the cookie's value
    user_id      TEXT NOT NULL,
    csrf         TEXT NOT NULL,                -- the token every state-changing request repeats
    address      TEXT,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    ended_at     BIGINT                        -- logout, disabled account, password change
);

CREATE INDEX user_sessions_user ON user_sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,             -- UUIDv7, names the token in lists and revocation
    user_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,         -- SHA-256 of the token
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- Failed logins counted per key: 'login:<name as typed>' and 'address:<ip>'.
CREATE TABLE login_throttle (
    key          TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

-- Append only: no route updates or deletes a row.
CREATE TABLE audit_log (
    id      TEXT PRIMARY KEY,                  -- UUIDv7: time-ordered
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,                     -- user id, 'admin-token', 'cli', 'system', 'partner'
    role    TEXT,
    address TEXT,
    action  TEXT NOT NULL,                     -- login_ok, login_refused, appeal_changed, …
    target  TEXT,                              -- what it was done to: an appeal id, a user id…
    details TEXT NOT NULL                      -- JSON: what changed
);

CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
CREATE INDEX audit_log_action ON audit_log (action, at);
