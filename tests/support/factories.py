"""Test data written straight into the database: users, clearances, documents, memories."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.embeddings import Embedder
from storage.database import Database


async def add_user(
    db: Database,
    email: str,
    departments: Sequence[str] = (),
    *,
    super_user: bool = False,
    active: bool = True,
    timezone: str = "UTC",
    slack_id: str | None = None,
) -> int:
    async with db.pool.acquire() as conn:
        user_id = await conn.fetchval(
            """
            INSERT INTO users (tenant_id, email, display_name, timezone, department_access,
                               is_super_user, is_active)
            VALUES (1, $1, $2, $3, $4, $5, $6) RETURNING id
            """,
            email,
            email.split("@")[0].title(),
            timezone,
            list(departments),
            super_user,
            active,
        )
        if slack_id:
            await conn.execute(
                "INSERT INTO platform_identities (tenant_id, user_id, platform, platform_user_id) "
                "VALUES (1, $1, 'slack', $2)",
                user_id,
                slack_id,
            )
    return user_id


async def clear_channel(db: Database, platform: str, channel: str, department: str) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO channel_clearances (tenant_id, platform, channel_id, department) "
            "VALUES (1, $1, $2, $3)",
            platform,
            channel,
            department,
        )


async def add_document(
    db: Database,
    embedder: Embedder,
    department: str,
    title: str,
    sections: dict[str, str],
    *,
    access: Sequence[str] = (),
) -> int:
    """A ready document with one chunk per section."""
    vectors = await embedder.embed_documents([f"{s}\n\n{t}" for s, t in sections.items()])
    async with db.pool.acquire() as conn:
        doc_id = await conn.fetchval(
            """
            INSERT INTO documents (tenant_id, department, department_access, source_path, title,
                                   status)
            VALUES (1, $1, $2, $3, $4, 'ready') RETURNING id
            """,
            department,
            list(access),
            f"/docs/{department}/{title}.md",
            title,
        )
        for index, ((section, text), vector) in enumerate(
            zip(sections.items(), vectors, strict=True)
        ):
            await conn.execute(
                """
                INSERT INTO document_chunks (tenant_id, document_id, department, department_access,
                                             section_title, chunk_index, content, token_count,
                                             embedding)
                VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8)
                """,
                doc_id,
                department,
                list(access),
                section,
                index,
                text,
                len(text) // 4,
                np.asarray(vector, dtype=np.float32),
            )
    return doc_id
