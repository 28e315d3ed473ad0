-- Paths that keep retrieval's cost flat as the corpus grows (measured in bench/retrieval.py).
--
-- 1. How many chunks each department holds, kept by the same triggers as the keyword postings.
--    The vector arm reads it to choose its path: a reader who may read few chunks gets an exact
--    scan of them (through the department index), which is both faster and exact where an HNSW
--    scan would have to wade through everyone else's chunks to find enough readable ones.
-- 2. Each posting carries its chunk's length, so BM25 scores come from the postings alone and
--    only the best-scored chunks are fetched (and checked for access).
-- 3. Memories are searched per person by an exact scan of their own (memories_by_user); the
--    HNSW index over everyone's memories served no query and cost every write.
CREATE TABLE department_sizes (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    department text NOT NULL,
    chunks     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, department)
);

INSERT INTO department_sizes (tenant_id, department, chunks)
SELECT tenant_id, department, count(*) FROM document_chunks GROUP BY tenant_id, department;

CREATE FUNCTION deskmate_count_new_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO department_sizes AS s (tenant_id, department, chunks)
    SELECT tenant_id, department, count(*) FROM new_chunks
    GROUP BY tenant_id, department ORDER BY tenant_id, department
    ON CONFLICT (tenant_id, department) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks;
    RETURN NULL;
END
$$;

CREATE FUNCTION deskmate_count_old_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE department_sizes s SET chunks = s.chunks - gone.n
    FROM (SELECT tenant_id, department, count(*) AS n FROM old_chunks
          GROUP BY tenant_id, department) gone
    WHERE s.tenant_id = gone.tenant_id AND s.department = gone.department;
    RETURN NULL;
END
$$;

CREATE TRIGGER document_chunks_count AFTER INSERT ON document_chunks
    REFERENCING NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION deskmate_count_new_chunks();
CREATE TRIGGER document_chunks_uncount AFTER DELETE ON document_chunks
    REFERENCING OLD TABLE AS old_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION deskmate_count_old_chunks();

ALTER TABLE department_sizes ENABLE ROW LEVEL SECURITY;
CREATE POLICY department_sizes_of_tenant ON department_sizes FOR SELECT USING (
    tenant_id = (SELECT nullif(current_setting('deskmate.tenant_id', true), '')::bigint)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'deskmate_reader') THEN
        GRANT SELECT ON department_sizes TO deskmate_reader;
    END IF;
END
$$;

-- 2. The chunk's length on its postings, computed once with its terms: the BEFORE trigger that
--    computed it separately did the same text analysis twice for every chunk.
ALTER TABLE chunk_postings ADD COLUMN length integer NOT NULL DEFAULT 0;
UPDATE chunk_postings p SET length = c.term_count FROM document_chunks c WHERE c.id = p.chunk_id;
-- A term's postings in impact order (highest term frequency first), with what scoring needs:
-- a common term is read only as far as the question's postings budget allows, best first.
ALTER TABLE chunk_postings DROP CONSTRAINT chunk_postings_pkey;
CREATE INDEX chunk_postings_impact ON chunk_postings (term_id, tf DESC) INCLUDE (chunk_id, length);
DROP TRIGGER document_chunks_length ON document_chunks;
DROP FUNCTION deskmate_chunk_length();
ALTER TABLE document_chunks DROP COLUMN term_count;

CREATE OR REPLACE FUNCTION deskmate_index_new_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deskmate.keyword_corpus'), t.tenant_id::int)
    FROM (SELECT DISTINCT tenant_id FROM new_chunks ORDER BY tenant_id) t;

    CREATE TEMP TABLE IF NOT EXISTS deskmate_new_terms (
        tenant_id bigint, chunk_id bigint, lexeme text, tf integer, length integer
    ) ON COMMIT DROP;
    TRUNCATE deskmate_new_terms;
    INSERT INTO deskmate_new_terms
    SELECT c.tenant_id, c.id, p.lexeme, p.tf, sum(p.tf) OVER (PARTITION BY c.id)
    FROM new_chunks c
    JOIN documents d ON d.id = c.document_id,
    LATERAL deskmate_passage_terms(d.title, c.section_title, c.content) p;

    INSERT INTO lexicon AS l (tenant_id, lexeme, df)
    SELECT tenant_id, lexeme, count(*) FROM deskmate_new_terms
    GROUP BY tenant_id, lexeme ORDER BY tenant_id, lexeme
    ON CONFLICT (tenant_id, lexeme) DO UPDATE SET df = l.df + EXCLUDED.df;

    INSERT INTO chunk_postings (term_id, chunk_id, tf, length)
    SELECT l.id, n.chunk_id, least(n.tf, 32767), n.length
    FROM deskmate_new_terms n JOIN lexicon l ON l.tenant_id = n.tenant_id AND l.lexeme = n.lexeme;

    INSERT INTO keyword_corpus AS k (tenant_id, chunks, total_terms)
    SELECT c.tenant_id, count(*), coalesce(sum(n.length), 0)
    FROM new_chunks c
    LEFT JOIN (SELECT DISTINCT chunk_id, length FROM deskmate_new_terms) n ON n.chunk_id = c.id
    GROUP BY c.tenant_id
    ON CONFLICT (tenant_id) DO UPDATE
        SET chunks = k.chunks + EXCLUDED.chunks, total_terms = k.total_terms + EXCLUDED.total_terms;
    TRUNCATE deskmate_new_terms;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION deskmate_unindex_old_chunks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('deskmate.keyword_corpus'), t.tenant_id::int)
    FROM (SELECT DISTINCT tenant_id FROM old_chunks ORDER BY tenant_id) t;

    UPDATE keyword_corpus k
    SET chunks = k.chunks - gone.n, total_terms = k.total_terms - gone.terms
    FROM (SELECT o.tenant_id, count(*) AS n,
                 coalesce(sum((SELECT max(p.length) FROM chunk_postings p
                               WHERE p.chunk_id = o.id)), 0) AS terms
          FROM old_chunks o GROUP BY o.tenant_id) gone
    WHERE k.tenant_id = gone.tenant_id;

    UPDATE lexicon l SET df = l.df - gone.n
    FROM (SELECT p.term_id, count(*) AS n
          FROM old_chunks o JOIN chunk_postings p ON p.chunk_id = o.id
          GROUP BY p.term_id) gone
    WHERE l.id = gone.term_id;

    DELETE FROM chunk_postings p USING old_chunks o WHERE p.chunk_id = o.id;
    RETURN NULL;
END
$$;

-- 3. No HNSW over everyone's memories.
DROP INDEX IF EXISTS memories_embedding;

-- 4. A chunk's vector stays in its row. A 384-dimension vector is 1.5 kB, and with the text
--    beside it most rows passed PostgreSQL's 2 kB threshold, which moved the vector out to the
--    TOAST table: every distance computed then cost extra page reads. With the vector kept
--    inline the text is what gets compressed or moved out, and only the rows shown read it.
ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE PLAIN;
ALTER TABLE memories ALTER COLUMN embedding SET STORAGE PLAIN;
