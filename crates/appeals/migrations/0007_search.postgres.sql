-- Full text search on PostgreSQL (tsvector + GIN, after 0007_search.sql): one index over
-- the appeals' notes, address and resolution, one over the citizens' name, address and
-- notes. Expression indexes: nothing to keep in sync, every insert and update indexes
-- itself, and creating them indexes the rows already there.
--
-- The 'simple' configuration (no stemming: names and addresses are not Russian prose, and
-- prefix search covers word endings as people type them). Lower-casing by lower() follows
-- the database's locale, which may be C (scripts/with-postgres.sh makes one): Cyrillic and
-- Belarusian capitals are mapped by translate(), which does not depend on it, and ё is
-- made е. Queries call the same function (appeals::store::fts_keys).

CREATE FUNCTION hotline_search_vector(a TEXT, b TEXT, c TEXT) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_tsvector('simple'::regconfig,
        translate(lower(COALESCE(a, '') || ' ' || COALESCE(b, '') || ' ' || COALESCE(c, '')),
                  'АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯёІЎ',
                  'абвгдеежзийклмнопрстуфхцчшщъыьэюяеіў'))
$$;

CREATE INDEX appeals_fts ON appeals
    USING GIN (hotline_search_vector(notes, address, resolution));
CREATE INDEX citizens_fts ON citizens
    USING GIN (hotline_search_vector(name, address, notes));
