-- Which answers cited which document, kept by document rather than by chunk.
--
-- An answer records its sources by chunk id (session_messages.metadata -> 'sources'), and a
-- document's chunks are replaced every time its file changes: looked up through the chunks, a
-- handbook updated this morning would show no question ever citing it. So the document behind
-- each cited chunk is written down when the answer is stored, by the trigger below, while those
-- chunks still exist.
--
-- Deleting a document deletes its citations (there is nothing left to list them for); deleting
-- an answer (its session, its user) deletes them too.
CREATE TABLE document_citations (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    message_id  bigint NOT NULL REFERENCES session_messages (id) ON DELETE CASCADE,
    cited_at    timestamptz NOT NULL,
    PRIMARY KEY (message_id, document_id)
);
-- A document's most recent citations first.
CREATE INDEX document_citations_recent ON document_citations (document_id, cited_at DESC);

-- Once per INSERT statement (a stored turn is one): the cited chunks' documents, each looked up
-- by primary key. A malformed source (no array, a chunk id that is not a number) is skipped, never an error: a
-- reply must be stored whatever its metadata holds.
CREATE FUNCTION deskmate_record_citations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO document_citations (tenant_id, document_id, message_id, cited_at)
    SELECT DISTINCT m.tenant_id, c.document_id, m.id, m.created_at
    FROM new_messages m
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(m.metadata -> 'sources') = 'array'
             THEN m.metadata -> 'sources' ELSE '[]'::jsonb END) AS s(source)
    JOIN document_chunks c
      ON c.id = CASE WHEN s.source ->> 'chunk_id' ~ '^[0-9]{1,18}$'
                     THEN (s.source ->> 'chunk_id')::bigint END
     AND c.tenant_id = m.tenant_id
    WHERE m.role = 'assistant'
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER session_messages_citations AFTER INSERT ON session_messages
    REFERENCING NEW TABLE AS new_messages
    FOR EACH STATEMENT EXECUTE FUNCTION deskmate_record_citations();

-- The answers already stored, as far as their chunks still exist.
INSERT INTO document_citations (tenant_id, document_id, message_id, cited_at)
SELECT DISTINCT m.tenant_id, c.document_id, m.id, m.created_at
FROM session_messages m
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(m.metadata -> 'sources') = 'array'
         THEN m.metadata -> 'sources' ELSE '[]'::jsonb END) AS s(source)
JOIN document_chunks c
  ON c.id = CASE WHEN s.source ->> 'chunk_id' ~ '^[0-9]{1,18}$'
                 THEN (s.source ->> 'chunk_id')::bigint END
 AND c.tenant_id = m.tenant_id
WHERE m.role = 'assistant'
ON CONFLICT DO NOTHING;
