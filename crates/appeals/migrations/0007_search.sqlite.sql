-- Full text search on SQLite (FTS5, after 0007_search.sql): one index over the appeals'
-- notes, address and resolution, one over the citizens' name, address and notes.
--
-- The unicode61 tokenizer folds the case of every script (Cyrillic included); ё is made е
-- here, so «Семенов» finds «Семёнов». Each index is an external-content FTS5 table over a
-- view that gives the text as indexed; rows are the base table's rowid. Triggers keep it in
-- step with every insert, update and delete (the writer, the admin API, the partner); a row
-- with no text at all is not indexed. A VACUUM may renumber rowids of these tables (their
-- key is TEXT): after one, rebuild both indexes with
--   INSERT INTO appeals_fts (appeals_fts) VALUES ('rebuild');
--   INSERT INTO citizens_fts (citizens_fts) VALUES ('rebuild');
-- (the daemon never runs VACUUM). Queries: appeals::store::fts_keys.

CREATE VIEW appeals_fts_text AS
    SELECT rowid AS rid,
           REPLACE(REPLACE(COALESCE(notes, '') || ' ' || COALESCE(address, '') || ' ' || COALESCE(resolution, ''), 'ё', 'е'), 'Ё', 'е') AS body
    FROM appeals
    WHERE COALESCE(notes, address, resolution) IS NOT NULL;

CREATE VIRTUAL TABLE appeals_fts USING fts5(
    body, content = 'appeals_fts_text', content_rowid = 'rid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER appeals_fts_insert AFTER INSERT ON appeals
WHEN COALESCE(new.notes, new.address, new.resolution) IS NOT NULL BEGIN
    INSERT INTO appeals_fts (rowid, body) VALUES (new.rowid,
        REPLACE(REPLACE(COALESCE(new.notes, '') || ' ' || COALESCE(new.address, '') || ' ' || COALESCE(new.resolution, ''), 'ё', 'е'), 'Ё', 'е'));
END;

CREATE TRIGGER appeals_fts_update AFTER UPDATE OF notes, address, resolution ON appeals BEGIN
    INSERT INTO appeals_fts (appeals_fts, rowid, body) SELECT 'delete', old.rowid,
        REPLACE(REPLACE(COALESCE(old.notes, '') || ' ' || COALESCE(old.address, '') || ' ' || COALESCE(old.resolution, ''), 'ё', 'е'), 'Ё', 'е')
        WHERE COALESCE(old.notes, old.address, old.resolution) IS NOT NULL;
    INSERT INTO appeals_fts (rowid, body) SELECT new.rowid,
        REPLACE(REPLACE(COALESCE(new.notes, '') || ' ' || COALESCE(new.address, '') || ' ' || COALESCE(new.resolution, ''), 'ё', 'е'), 'Ё', 'е')
        WHERE COALESCE(new.notes, new.address, new.resolution) IS NOT NULL;
END;

CREATE TRIGGER appeals_fts_delete AFTER DELETE ON appeals
WHEN COALESCE(old.notes, old.address, old.resolution) IS NOT NULL BEGIN
    INSERT INTO appeals_fts (appeals_fts, rowid, body) VALUES ('delete', old.rowid,
        REPLACE(REPLACE(COALESCE(old.notes, '') || ' ' || COALESCE(old.address, '') || ' ' || COALESCE(old.resolution, ''), 'ё', 'е'), 'Ё', 'е'));
END;

CREATE VIEW citizens_fts_text AS
    SELECT rowid AS rid,
           REPLACE(REPLACE(name || ' ' || COALESCE(address, '') || ' ' || COALESCE(notes, ''), 'ё', 'е'), 'Ё', 'е') AS body
    FROM citizens;

CREATE VIRTUAL TABLE citizens_fts USING fts5(
    body, content = 'citizens_fts_text', content_rowid = 'rid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER citizens_fts_insert AFTER INSERT ON citizens BEGIN
    INSERT INTO citizens_fts (rowid, body) VALUES (new.rowid,
        REPLACE(REPLACE(new.name || ' ' || COALESCE(new.address, '') || ' ' || COALESCE(new.notes, ''), 'ё', 'е'), 'Ё', 'е'));
END;

CREATE TRIGGER citizens_fts_update AFTER UPDATE OF name, address, notes ON citizens BEGIN
    INSERT INTO citizens_fts (citizens_fts, rowid, body) VALUES ('delete', old.rowid,
        REPLACE(REPLACE(old.name || ' ' || COALESCE(old.address, '') || ' ' || COALESCE(old.notes, ''), 'ё', 'е'), 'Ё', 'е'));
    INSERT INTO citizens_fts (rowid, body) VALUES (new.rowid,
        REPLACE(REPLACE(new.name || ' ' || COALESCE(new.address, '') || ' ' || COALESCE(new.notes, ''), 'ё', 'е'), 'Ё', 'е'));
END;

CREATE TRIGGER citizens_fts_delete AFTER DELETE ON citizens BEGIN
    INSERT INTO citizens_fts (citizens_fts, rowid, body) VALUES ('delete', old.rowid,
        REPLACE(REPLACE(old.name || ' ' || COALESCE(old.address, '') || ' ' || COALESCE(old.notes, ''), 'ё', 'е'), 'Ё', 'е'));
END;

-- Index the rows already there.
INSERT INTO appeals_fts (appeals_fts) VALUES ('rebuild');
INSERT INTO citizens_fts (citizens_fts) VALUES ('rebuild');
