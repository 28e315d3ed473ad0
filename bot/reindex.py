"""`deskmate reindex`: every chunk and memory embedded again with the configured embedder.

After a change of EMBEDDING_PROVIDER, EMBEDDING_MODEL or EMBEDDING_DIMENSION the database's
vectors no longer compare with the questions' (the service refuses to start until they do).
The run is batched and resumable, and the service may keep answering with its old settings
meanwhile: storage/reindex.py stages the new vectors beside the old and swaps them in at the end,
the dimension changing with them. Restart the service with the new settings afterwards.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from tqdm import tqdm

from bot.embeddings import Embedder, EmbeddingError
from bot.errors import DeskmateError
from bot.ingest.pipeline import passage_text
from storage import reindex as staging
from storage.database import Database
from storage.meta import EmbeddingSpace
from storage.migrate import embedding_space

BATCH_SIZE = 64
# Rows the service adds between the last batch and the swap are embedded and the swap is tried
# again; a service adding rows faster than that for this many rounds makes the run give up.
SWAP_ATTEMPTS = 5


class ReindexError(DeskmateError):
    """The reindex could not finish (its progress is kept)."""


@dataclass(frozen=True)
class ReindexReport:
    before: EmbeddingSpace | None  # the vectors' embedder before the run (None: no database)
    after: EmbeddingSpace
    chunks: int  # embedded by this run
    memories: int
    resumed: bool  # continued a run that had stopped

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def summary(self) -> str:
        if not self.changed:
            return f"nothing to re-embed: the vectors are already {self.after}"
        resumed = ", continuing an interrupted run" if self.resumed else ""
        return (
            f"re-embedded {self.chunks} chunks and {self.memories} memories with "
            f"{self.after}{resumed}; the database held {self.before} before"
        )


@dataclass
class _Progress:
    bar: tqdm
    chunks: int = 0
    memories: int = 0


async def reindex(
    db: Database,
    embedder: Embedder,
    space: EmbeddingSpace,
    *,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
) -> ReindexReport:
    """Re-embed every chunk and memory with `embedder` (whose vectors are of `space`) and record
    `space`; a database already of `space` is left alone. `db` is started without the
    embedding check. Raises EmbeddingError (progress kept) when the embedder fails."""
    async with db.pool.acquire() as conn:
        # A new database takes the configured embedder here, as at any start: nothing to do.
        before = await embedding_space(conn, space, unrecorded=db.config.unrecorded_embedder)
        if before == space:
            if await staging.target(conn) is not None:
                await staging.abandon(conn)  # a run for an embedder since given up
            return ReindexReport(before, space, 0, 0, resumed=False)
        resumed = await staging.begin(conn, space)
        todo = await staging.pending(conn)
    show = progress and sys.stderr.isatty()
    with tqdm(
        total=todo.total, desc="re-embedding", unit="text", file=sys.stderr, disable=not show
    ) as bar:
        done = _Progress(bar)
        for _ in range(SWAP_ATTEMPTS):
            try:
                await _embed_chunks(db, embedder, batch_size, done)
                await _embed_memories(db, embedder, batch_size, done)
            except EmbeddingError as exc:
                raise EmbeddingError(
                    f"{exc} (the vectors made so far are kept: run `deskmate reindex` again "
                    "to continue)"
                ) from exc
            async with db.pool.acquire() as conn:
                await staging.build_indexes(conn)
                if await staging.swap(conn, space):
                    return ReindexReport(before, space, done.chunks, done.memories, resumed)
    raise ReindexError(
        "rows kept arriving faster than they were embedded; the vectors made so far are kept: "
        "run `deskmate reindex` again to finish"
    )


async def _embed_chunks(db: Database, embedder: Embedder, size: int, done: _Progress) -> None:
    """Every chunk still without its new vector, in id order; then once more from the start for
    any that an earlier pass could not see."""
    after = 0
    while True:
        async with db.pool.acquire() as conn:
            batch = await staging.next_chunks(conn, after, size)
        if not batch:
            if after == 0:
                return
            after = 0
            continue
        vectors = await embedder.embed_documents(
            [passage_text(c.title, c.section_title, c.content) for c in batch]
        )
        async with db.pool.acquire() as conn:
            await staging.stage_chunks(conn, batch, vectors)
        after = batch[-1].id
        done.chunks += len(batch)
        done.bar.update(len(batch))


async def _embed_memories(db: Database, embedder: Embedder, size: int, done: _Progress) -> None:
    """As `_embed_chunks`, for memories: embedded as the service embeds them (as queries)."""
    after = 0
    while True:
        async with db.pool.acquire() as conn:
            batch = await staging.next_memories(conn, after, size)
        if not batch:
            if after == 0:
                return
            after = 0
            continue
        vectors = [await embedder.embed_query(m.content) for m in batch]
        async with db.pool.acquire() as conn:
            await staging.stage_memories(conn, batch, vectors)
        after = batch[-1].id
        done.memories += len(batch)
        done.bar.update(len(batch))
