"""`deskmate reindex`: re-embed every chunk and memory with the configured embedder."""

from __future__ import annotations

import argparse
from typing import Any

from bot.settings import Settings
from storage.database import Database


def _batch_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 1 <= size <= 2048:
        raise argparse.ArgumentTypeError(f"{size} is not between 1 and 2048")
    return size


def register(commands: Any) -> None:
    reindex = commands.add_parser(
        "reindex",
        help="re-embed every chunk and memory with the configured embedder",
        description=(
            "Re-embed every document chunk and memory (of every organisation) with the "
            "embedder the settings name, after a change of EMBEDDING_PROVIDER, EMBEDDING_MODEL "
            "or EMBEDDING_DIMENSION. Batches commit as they go: a stopped run continues where "
            "it stopped, and the service may keep answering with its old settings meanwhile. "
            "Restart it with the new settings when the command has finished."
        ),
    )
    reindex.add_argument(
        "--batch-size",
        type=_batch_size,
        default=64,
        help="texts embedded and committed together (default: %(default)s)",
    )
    reindex.set_defaults(handler=run_reindex)


async def run_reindex(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: the embedders and the ingest pipeline are not needed for `--help`.
    from bot.embedders import create_embedder
    from bot.reindex import reindex

    embedder = create_embedder(settings)
    db = Database(settings.database)
    try:
        # Without the embedding check: a database of another embedder is what it is here for.
        await db.start(migrate=True, check_embeddings=False)
        report = await reindex(db, embedder, settings.embedding_space, batch_size=args.batch_size)
    finally:
        await embedder.aclose()
        await db.stop()
    print(report.summary())
    return 0
