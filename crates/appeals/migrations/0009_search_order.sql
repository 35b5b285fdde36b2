-- Search at size, the first page of a common word (issue 12): see appeals::store (the
-- appeals' text search) and appeals::cases (the cards'). This file is portable; PostgreSQL
-- adds 0009_search_order.postgres.sql in the same transaction.
--
-- The cards are listed by name, then id: one index gives that whole order, so a search for
-- a common word walks it and stops at the page instead of sorting every match.
DROP INDEX citizens_name;
CREATE INDEX citizens_name ON citizens (name, id);
