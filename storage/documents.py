"""Department documents and their chunks: what `deskmate ingest` writes and `docs delete`
removes, what `docs list` and `docs cited` read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

if TYPE_CHECKING:
    import numpy as np

_FIELDS = (
    "id",
    "tenant_id",
    "department",
    "department_access",
    "source_path",
    "title",
    "content_hash",
    "mime_type",
    "status",
    "error",
    "created_by",
    "created_at",
    "updated_at",
)
_COLUMNS = ", ".join(_FIELDS)


@dataclass(frozen=True)
class Document:
    id: int
    tenant_id: int
    department: str
    department_access: tuple[str, ...]
    source_path: str
    title: str
    content_hash: str | None
    mime_type: str | None
    status: str  # 'pending' | 'ready' | 'failed'
    error: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """The fields an audit row records (JSON-ready; timestamps left out)."""
        return {
            "id": self.id,
            "department": self.department,
            "department_access": list(self.department_access),
            "source_path": self.source_path,
            "title": self.title,
            "content_hash": self.content_hash,
            "mime_type": self.mime_type,
            "status": self.status,
            "error": self.error,
        }


@dataclass(frozen=True)
class NewDocument:
    """What an ingestion knows about a file before it is stored."""

    tenant_id: int
    department: str
    department_access: tuple[str, ...]
    source_path: str
    title: str
    mime_type: str | None
    created_by: str


@dataclass(frozen=True)
class NewChunk:
    section_title: str | None
    chunk_index: int
    content: str
    token_count: int
    embedding: np.ndarray


@dataclass(frozen=True)
class DocumentSummary:
    """One line of `deskmate docs list`."""

    document: Document
    chunk_count: int


def _document(row: asyncpg.Record | dict[str, Any] | None) -> Document | None:
    if row is None:
        return None
    data = dict(row)
    data["department_access"] = tuple(data["department_access"])
    return Document(**data)


async def find_document(
    conn: asyncpg.Connection, tenant_id: int, department: str, source_path: str
) -> Document | None:
    """The document stored for this file in this department, if any."""
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM documents
        WHERE tenant_id = $1 AND department = $2 AND source_path = $3
        """,
        tenant_id,
        department,
        source_path,
    )
    return _document(row)


async def save_ready(conn: asyncpg.Connection, new: NewDocument, content_hash: str) -> Document:
    """Create or update the document as successfully indexed from content `content_hash`;
    clears any earlier error. Pair it with `replace_chunks` in the same transaction."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO documents (tenant_id, department, department_access, source_path, title,
                               mime_type, created_by, content_hash, status, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'ready', NULL)
        ON CONFLICT (tenant_id, department, source_path) DO UPDATE SET
            department_access = EXCLUDED.department_access,
            title = EXCLUDED.title,
            mime_type = EXCLUDED.mime_type,
            content_hash = EXCLUDED.content_hash,
            status = 'ready',
            error = NULL,
            is_active = true,
            updated_at = now()
        RETURNING {_COLUMNS}
        """,
        *_new_document_values(new),
        content_hash,
    )
    document = _document(row)
    assert document is not None
    return document


async def save_failed(conn: asyncpg.Connection, new: NewDocument, error: str) -> Document:
    """Record that the file could not be indexed. A new document is created without content;
    an existing one keeps its title, hash and chunks from the last good version and only gets
    the failed status and the error (so answers keep working from that version)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO documents (tenant_id, department, department_access, source_path, title,
                               mime_type, created_by, status, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7, 'failed', $8)
        ON CONFLICT (tenant_id, department, source_path) DO UPDATE SET
            status = 'failed',
            error = EXCLUDED.error,
            updated_at = now()
        RETURNING {_COLUMNS}
        """,
        *_new_document_values(new),
        error,
    )
    document = _document(row)
    assert document is not None
    return document


def _new_document_values(new: NewDocument) -> tuple[object, ...]:
    """$1…$7 of the two INSERTs above."""
    return (
        new.tenant_id,
        new.department,
        list(new.department_access),
        new.source_path,
        new.title,
        new.mime_type,
        new.created_by,
    )


async def replace_chunks(
    conn: asyncpg.Connection, document: Document, chunks: Sequence[NewChunk]
) -> int:
    """Swap the document's chunks for `chunks`, all or nothing, and return how many were stored.

    Each chunk gets the document's department and department_access, so retrieval can check
    access on the chunk row itself. COPY loads a large manual in one round trip.
    """
    records = [
        (
            document.tenant_id,
            document.id,
            document.department,
            list(document.department_access),
            chunk.section_title,
            chunk.chunk_index,
            chunk.content,
            chunk.token_count,
            chunk.embedding,
        )
        for chunk in chunks
    ]
    async with conn.transaction():  # a savepoint when the caller already holds a transaction
        await conn.execute("DELETE FROM document_chunks WHERE document_id = $1", document.id)
        await conn.copy_records_to_table(
            "document_chunks",
            records=records,
            columns=[
                "tenant_id",
                "document_id",
                "department",
                "department_access",
                "section_title",
                "chunk_index",
                "content",
                "token_count",
                "embedding",
            ],
        )
    return len(records)


async def set_access(
    conn: asyncpg.Connection, document: Document, department_access: Sequence[str]
) -> Document:
    """Change which extra departments may read the document, on the document and its chunks."""
    access = list(department_access)
    row = await conn.fetchrow(
        f"""
        UPDATE documents SET department_access = $2, updated_at = now()
        WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        document.id,
        access,
    )
    await conn.execute(
        "UPDATE document_chunks SET department_access = $2 WHERE document_id = $1",
        document.id,
        access,
    )
    updated = _document(row)
    assert updated is not None
    return updated


async def list_documents(
    conn: asyncpg.Connection, tenant_id: int, department: str | None = None
) -> list[DocumentSummary]:
    """The tenant's documents (of one department when given) with their chunk counts, by
    department then title."""
    rows = await conn.fetch(
        f"""
        SELECT {", ".join(f"d.{name}" for name in _FIELDS)},
               (SELECT count(*) FROM document_chunks c WHERE c.document_id = d.id) AS chunk_count
        FROM documents d
        WHERE d.tenant_id = $1 AND ($2::text IS NULL OR d.department = $2)
        ORDER BY d.department, lower(d.title), d.id
        """,
        tenant_id,
        department,
    )
    summaries = []
    for row in rows:
        data = dict(row)
        count = data.pop("chunk_count")
        document = _document(data)
        assert document is not None
        summaries.append(DocumentSummary(document, count))
    return summaries


async def get_document(
    conn: asyncpg.Connection, tenant_id: int, document_id: int, *, lock: bool = False
) -> Document | None:
    """The tenant's document `document_id`; `lock` holds it until the transaction ends, so a
    delete and a replace of the same document take turns."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM documents WHERE tenant_id = $1 AND id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        document_id,
    )
    return _document(row)


async def find_by_source(
    conn: asyncpg.Connection, tenant_id: int, source_path: str, department: str | None = None
) -> list[Document]:
    """The documents stored from `source_path` (one per department that ingested it)."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM documents
        WHERE tenant_id = $1 AND source_path = $2 AND ($3::text IS NULL OR department = $3)
        ORDER BY department
        """,
        tenant_id,
        source_path,
        department,
    )
    return [d for d in map(_document, rows) if d is not None]


async def documents_under(
    conn: asyncpg.Connection, tenant_id: int, department: str, folder: str
) -> list[Document]:
    """The department's documents whose file lies anywhere below `folder` (an absolute path
    without a trailing separator), by path."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM documents
        WHERE tenant_id = $1 AND department = $2
          AND left(source_path, length($3) + 1) = $3 || '/'
        ORDER BY source_path
        """,
        tenant_id,
        department,
        folder.rstrip("/"),
    )
    return [d for d in map(_document, rows) if d is not None]


async def delete_document(conn: asyncpg.Connection, document: Document) -> int:
    """Delete the document and its chunks; returns how many chunks went. The chunk triggers
    take them out of the keyword postings, the corpus statistics and the department sizes in
    the same transaction, so no search sees the document after it commits, and none before
    sees it half gone."""
    async with conn.transaction():  # a savepoint when the caller already holds a transaction
        result = await conn.execute(
            "DELETE FROM document_chunks WHERE document_id = $1", document.id
        )
        await conn.execute("DELETE FROM documents WHERE id = $1", document.id)
    return int(result.split()[-1])


@dataclass(frozen=True)
class Citation:
    """An answer that cited a document, and the question it answered."""

    message_id: int
    answered_at: datetime
    platform: str
    status: str | None
    user_email: str | None
    user_name: str | None
    question: str | None


async def citations(
    conn: asyncpg.Connection, tenant_id: int, document_id: int, limit: int = 50
) -> list[Citation]:
    """The most recent answers that cited the document, newest first, each with the question
    before it in its conversation."""
    rows = await conn.fetch(
        """
        SELECT a.id AS message_id, a.created_at AS answered_at, s.platform,
               a.metadata ->> 'status' AS status, u.email AS user_email,
               u.display_name AS user_name, q.content AS question
        FROM document_citations dc
        JOIN session_messages a ON a.id = dc.message_id
        JOIN chat_sessions s ON s.id = a.session_id
        LEFT JOIN users u ON u.id = s.user_id
        LEFT JOIN LATERAL (
            SELECT m.content FROM session_messages m
            WHERE m.session_id = a.session_id AND m.role = 'user'
              AND m.sequence_number < a.sequence_number
            ORDER BY m.sequence_number DESC LIMIT 1
        ) q ON true
        WHERE dc.tenant_id = $1 AND dc.document_id = $2
        ORDER BY dc.cited_at DESC, dc.message_id DESC
        LIMIT $3
        """,
        tenant_id,
        document_id,
        limit,
    )
    return [Citation(**dict(row)) for row in rows]


async def refresh_statistics(conn: asyncpg.Connection) -> None:
    """ANALYZE what retrieval plans with, after an ingest changed it: otherwise the planner
    keeps the old row counts until autovacuum gets to it, and the same question can be planned,
    and ranked, differently a minute later."""
    await conn.execute("ANALYZE document_chunks, chunk_postings, lexicon, department_sizes")
