-- The keyword arm ranks with BM25 over a postings list kept at ingest, so that its cost follows
-- the postings of the question's informative terms instead of the size of the corpus.
--
-- Why not the GIN index on search_vector: under row-level security `@@` is not leakproof, so the
-- planner may not use the index before the policy has been checked, and every readable row of
-- the tenant was ranked. A btree on integer term ids is usable under row-level security
-- (integer equality is leakproof), and the final join to document_chunks is still checked by the
-- policy, so row-level security stays the second wall for every arm.
--
-- lexicon:        one row per (tenant, lexeme): its id and document frequency (chunks holding it)
-- chunk_postings: (term, chunk, weighted term frequency); term ids are per tenant
-- keyword_corpus: per tenant, the number of chunks and the sum of their lengths (for avgdl)
-- document_chunks.term_count: the chunk's length in weighted terms (BM25's dl)
--
-- The document's title and the chunk's section title count twice per occurrence: a passage
-- under a title that names the question's subject is more likely about it.

CREATE TABLE lexicon (
    id        integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    lexeme    text NOT NULL,
    df        integer NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, lexeme)
);

-- No foreign key: the triggers below keep postings in step with chunks (a cascade would delete
-- them before the statement trigger could read which document frequencies to lower).
CREATE TABLE chunk_postings (
    term_id  integer NOT NULL,
    chunk_id bigint NOT NULL,
    tf       smallint NOT NULL,
    PRIMARY KEY (term_id, chunk_id)
);
CREATE INDEX chunk_postings_chunk ON chunk_postings (chunk_id);

CREATE TABLE keyword_corpus (
    tenant_id    bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    chunks       bigint NOT NULL DEFAULT 0,
    total_terms  bigint NOT NULL DEFAULT 0
);

ALTER TABLE document_chunks ADD COLUMN term_count integer NOT NULL DEFAULT 0;

-- The weighted terms of a passage: the same English configuration as the questions use.
CREATE FUNCTION deskmate_passage_terms(title text, section text, content text)
RETURNS TABLE (lexeme text, tf integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT t.lexeme,
           least(sum(CASE WHEN t.weight IN ('A', 'B') THEN 2 ELSE 1 END), 32767)::integer
    FROM (
        SELECT v.lexeme, unnest(v.weights) AS weight
        FROM unnest(setweight(to_tsvector('english', coalesce(title, '')), 'A')
                    || setweight(to_tsvector('english', coalesce(section, '')), 'B')
                    || to_tsvector('english', coalesce(content, ''))) AS v
    ) t
    GROUP BY t.lexeme
$$;

CREATE FUNCTION deskmate_chunk_length() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT coalesce(sum(p.tf), 0) INTO NEW.term_count
    FROM documents d, deskmate_passage_terms(d.title, NEW.section_title, NEW.content) p
    WHERE d.id = NEW.document_id;
    RETURN NEW;
END
$$;

CREATE TRIGGER document_chunks_length BEFORE INSERT ON document_chunks
    FOR EACH ROW EXECUTE FUNCTION deskmate_chunk_length();

-- Ingests of one tenant take turns on its statistics (in lexeme order they could not deadlock
-- within a statement, but a replacement deletes then inserts, two statements).
CREATE FUNCTION deskmate_index_new_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deskmate.keyword_corpus'), t.tenant_id::int)
    FROM (SELECT DISTINCT tenant_id FROM new_chunks ORDER BY tenant_id) t;

    CREATE TEMP TABLE IF NOT EXISTS deskmate_new_terms (
        tenant_id bigint, chunk_id bigint, lexeme text, tf integer
    ) ON COMMIT DROP;
    TRUNCATE deskmate_new_terms;
    INSERT INTO deskmate_new_terms
    SELECT c.tenant_id, c.id, p.lexeme, p.tf
    FROM new_chunks c
    JOIN documents d ON d.id = c.document_id,
    LATERAL deskmate_passage_terms(d.title, c.section_title, c.content) p;

    INSERT INTO lexicon AS l (tenant_id, lexeme, df)
    SELECT tenant_id, lexeme, count(*) FROM deskmate_new_terms
    GROUP BY tenant_id, lexeme ORDER BY tenant_id, lexeme
    ON CONFLICT (tenant_id, lexeme) DO UPDATE SET df = l.df + EXCLUDED.df;

    INSERT INTO chunk_postings (term_id, chunk_id, tf)
    SELECT l.id, n.chunk_id, least(n.tf, 32767)
    FROM deskmate_new_terms n JOIN lexicon l ON l.tenant_id = n.tenant_id AND l.lexeme = n.lexeme;

    INSERT INTO keyword_corpus AS k (tenant_id, chunks, total_terms)
    SELECT tenant_id, count(*), sum(term_count) FROM new_chunks GROUP BY tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
        SET chunks = k.chunks + EXCLUDED.chunks, total_terms = k.total_terms + EXCLUDED.total_terms;
    TRUNCATE deskmate_new_terms;
    RETURN NULL;
END
$$;

CREATE FUNCTION deskmate_unindex_old_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deskmate.keyword_corpus'), t.tenant_id::int)
    FROM (SELECT DISTINCT tenant_id FROM old_chunks ORDER BY tenant_id) t;

    UPDATE lexicon l SET df = l.df - gone.n
    FROM (SELECT p.term_id, count(*) AS n
          FROM old_chunks o JOIN chunk_postings p ON p.chunk_id = o.id
          GROUP BY p.term_id) gone
    WHERE l.id = gone.term_id;

    DELETE FROM chunk_postings p USING old_chunks o WHERE p.chunk_id = o.id;

    UPDATE keyword_corpus k
    SET chunks = k.chunks - gone.n, total_terms = k.total_terms - gone.terms
    FROM (SELECT tenant_id, count(*) AS n, sum(term_count) AS terms
          FROM old_chunks GROUP BY tenant_id) gone
    WHERE k.tenant_id = gone.tenant_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER document_chunks_index AFTER INSERT ON document_chunks
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION deskmate_index_new_chunks();
CREATE TRIGGER document_chunks_unindex AFTER DELETE ON document_chunks
    REFERENCING OLD TABLE AS old_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION deskmate_unindex_old_chunks();

-- The chunks already stored.
UPDATE document_chunks c SET term_count = coalesce((
    SELECT sum(p.tf) FROM documents d, deskmate_passage_terms(d.title, c.section_title, c.content) p
    WHERE d.id = c.document_id), 0);

CREATE TEMP TABLE deskmate_existing_terms AS
SELECT c.tenant_id, c.id AS chunk_id, p.lexeme, p.tf
FROM document_chunks c
JOIN documents d ON d.id = c.document_id,
LATERAL deskmate_passage_terms(d.title, c.section_title, c.content) p;

INSERT INTO lexicon (tenant_id, lexeme, df)
SELECT tenant_id, lexeme, count(*) FROM deskmate_existing_terms GROUP BY tenant_id, lexeme;

INSERT INTO chunk_postings (term_id, chunk_id, tf)
SELECT l.id, e.chunk_id, least(e.tf, 32767)
FROM deskmate_existing_terms e JOIN lexicon l ON l.tenant_id = e.tenant_id AND l.lexeme = e.lexeme;

INSERT INTO keyword_corpus (tenant_id, chunks, total_terms)
SELECT tenant_id, count(*), sum(term_count) FROM document_chunks GROUP BY tenant_id;

DROP TABLE deskmate_existing_terms;

-- Retrieval no longer reads search_vector through its GIN index (see above); the column stays.
DROP INDEX IF EXISTS document_chunks_search;

-- Row-level security: the reader sees its own tenant's term statistics. Postings carry no text
-- and no tenant; term ids are reached only through the tenant's lexicon, and every chunk they
-- lead to is checked again by chunks_readable when it is read.
ALTER TABLE lexicon ENABLE ROW LEVEL SECURITY;
CREATE POLICY lexicon_of_tenant ON lexicon FOR SELECT USING (
    tenant_id = (SELECT nullif(current_setting('deskmate.tenant_id', true), '')::bigint)
);
ALTER TABLE keyword_corpus ENABLE ROW LEVEL SECURITY;
CREATE POLICY keyword_corpus_of_tenant ON keyword_corpus FOR SELECT USING (
    tenant_id = (SELECT nullif(current_setting('deskmate.tenant_id', true), '')::bigint)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_reader') THEN
        GRANT SELECT ON lexicon, chunk_postings, keyword_corpus TO deskmate_reader;
    END IF;
END
$$;
