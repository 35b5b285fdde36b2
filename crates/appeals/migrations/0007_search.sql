-- Search and worklists at scale (issue 12 items 4 and 5). This file is portable; the full
-- text indexes differ by backend: 0007_search.sqlite.sql (FTS5) and 0007_search.postgres.sql
-- (tsvector + GIN), run right after it in the same transaction.

-- The `missed` worklist as a table the writer keeps (appeals::missed): one row per caller
-- who hung up without reaching a person and has not been reached since, so the list's first
-- page is an index lookup. The rows are derived from appeals, callbacks and missed_closures
-- by appeals::missed::refresh, which the migration runs once over every caller to fill it.
CREATE TABLE missed_callers (
    caller_key TEXT PRIMARY KEY,                 -- appeals.caller_key
    appeal_id  TEXT NOT NULL,                    -- their latest missed call
    first_at   BIGINT NOT NULL,                  -- the first missed call not reached since
    last_at    BIGINT NOT NULL,
    calls      BIGINT NOT NULL                   -- missed calls since last reached
);

CREATE INDEX missed_callers_first ON missed_callers (first_at, caller_key);

-- The filters of the appeal list that had no index (line, status, assignee, due_at have).
CREATE INDEX appeals_service ON appeals (service, arrived_at);
CREATE INDEX appeals_district ON appeals (district, arrived_at);
CREATE INDEX appeals_organisation ON appeals (organisation, arrived_at);
CREATE INDEX appeals_operator ON appeals (operator, arrived_at);
