-- How often and when each memory was last used, kept beside the memories rather than on them:
-- counting a read rewrote the memory's row, vector included, and the new row version had to be
-- indexed again in HNSW (most such updates could not be HOT). A narrow row of its own is cheap
-- to bump, and retrieval no longer writes to the table it searches.
CREATE TABLE memory_reads (
    memory_id    bigint PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    read_count   integer NOT NULL DEFAULT 0,
    last_read_at timestamptz
);

INSERT INTO memory_reads (memory_id, tenant_id, read_count, last_read_at)
SELECT id, tenant_id, access_count, last_accessed FROM memories
WHERE access_count > 0 OR last_accessed IS NOT NULL;

ALTER TABLE memories DROP COLUMN access_count, DROP COLUMN last_accessed;
