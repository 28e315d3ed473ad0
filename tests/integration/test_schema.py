"""Schema v1: the daily-session key, pgvector through asyncpg, tenant scoping constraints."""

from __future__ import annotations

import datetime as dt

import asyncpg
import numpy as np
import pytest
from pgvector import Vector

from storage.database import Database
from tests.support import TEST_DIMENSION


async def _user(conn: asyncpg.Connection, email: str = "ana@example.com") -> int:
    return await conn.fetchval(
        "INSERT INTO users (tenant_id, email, display_name) VALUES (1, $1, 'Ana') RETURNING id",
        email,
    )


async def _session(conn: asyncpg.Connection, user_id: int, day: dt.date, key: str = "D1") -> int:
    return await conn.fetchval(
        """
        INSERT INTO chat_sessions (tenant_id, user_id, platform, conversation_key, scope_date)
        VALUES (1, $1, 'slack', $2, $3) RETURNING id
        """,
        user_id,
        key,
        day,
    )


async def test_one_session_per_user_conversation_and_day(db: Database) -> None:
    today = dt.date(2026, 11, 22)
    async with db.pool.acquire() as conn:
        user_id = await _user(conn)
        await _session(conn, user_id, today)
        with pytest.raises(asyncpg.UniqueViolationError):
            await _session(conn, user_id, today)
        # Another day or another conversation is another session.
        await _session(conn, user_id, today + dt.timedelta(days=1))
        await _session(conn, user_id, today, key="C42:1700000000.1")
        assert await conn.fetchval("SELECT count(*) FROM chat_sessions") == 3


async def test_sequence_numbers_are_unique_per_session(db: Database) -> None:
    async with db.pool.acquire() as conn:
        session_id = await _session(conn, await _user(conn), dt.date(2026, 11, 22))
        insert = """
            INSERT INTO session_messages (tenant_id, session_id, role, content, sequence_number)
            VALUES (1, $1, 'user', 'hi', $2)
        """
        await conn.execute(insert, session_id, 1)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, session_id, 1)


async def test_embedding_round_trip_through_asyncpg(db: Database) -> None:
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(TEST_DIMENSION).astype(np.float32)
    async with db.pool.acquire() as conn:
        user_id = await _user(conn)
        memory_id = await conn.fetchval(
            """
            INSERT INTO memories (tenant_id, user_id, content, embedding)
            VALUES (1, $1, 'manages the Berlin warehouse', $2) RETURNING id
            """,
            user_id,
            vector,
        )
        stored = await conn.fetchval("SELECT embedding FROM memories WHERE id = $1", memory_id)
        distance = await conn.fetchval(
            "SELECT embedding <=> $1 FROM memories WHERE id = $2", vector, memory_id
        )
    assert isinstance(stored, Vector)
    np.testing.assert_allclose(stored.to_numpy(), vector, rtol=1e-6)
    assert distance == pytest.approx(0.0, abs=1e-6)


async def test_embedding_of_the_wrong_size_is_refused(db: Database) -> None:
    async with db.pool.acquire() as conn:
        user_id = await _user(conn)
        with pytest.raises(asyncpg.DataError):
            await conn.execute(
                "INSERT INTO memories (tenant_id, user_id, content, embedding) "
                "VALUES (1, $1, 'x', $2)",
                user_id,
                np.ones(TEST_DIMENSION + 1, dtype=np.float32),
            )


async def test_chunks_get_a_full_text_vector(db: Database) -> None:
    async with db.pool.acquire() as conn:
        doc = await conn.fetchval(
            """
            INSERT INTO documents (tenant_id, department, source_path, title)
            VALUES (1, 'hr', 'handbook.md', 'Handbook') RETURNING id
            """
        )
        await conn.execute(
            """
            INSERT INTO document_chunks (tenant_id, document_id, department, section_title,
                                         chunk_index, content, token_count, embedding)
            VALUES (1, $1, 'hr', 'Parental leave', 0, 'Employees receive sixteen weeks.', 5, $2)
            """,
            doc,
            np.ones(TEST_DIMENSION, dtype=np.float32),
        )
        found = await conn.fetchval(
            "SELECT count(*) FROM document_chunks "
            "WHERE search_vector @@ websearch_to_tsquery('english', 'parental weeks')"
        )
    assert found == 1


async def test_emails_are_unique_within_a_tenant_only(db: Database) -> None:
    async with db.pool.acquire() as conn:
        await _user(conn)
        with pytest.raises(asyncpg.UniqueViolationError):
            await _user(conn)
        other = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO users (tenant_id, email, display_name) "
            "VALUES ($1, 'ana@example.com', 'Ana')",
            other,
        )
