-- The cards' search vector as a stored column (after 0009_search_order.sql). Walking the
-- cards by name and testing each against a query (the plan for a common word such as
-- «иван») computed hotline_search_vector() for every card it passed, ~25 µs each; stored,
-- the test is a comparison. The GIN index moves from the expression to the column (the
-- same vector: queries say `search_vector @@ …`, appeals::store::fts_match). Every insert
-- and update computes it; adding it computes it for the cards already there (a rewrite of
-- the table: seconds for 200 000 cards).
--
-- The appeals keep their expression index: a common word's first page already walks
-- appeals_arrived_at and tests few rows, and a stored column would rewrite the largest
-- table on upgrade.
ALTER TABLE citizens ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (hotline_search_vector(name, address, notes)) STORED;
DROP INDEX citizens_fts;
CREATE INDEX citizens_fts ON citizens USING GIN (search_vector);
