"""Department documents into the database: parse, chunk, embed, store (`deskmate ingest`)."""

from bot.ingest.pipeline import FileFailure, IngestReport, collect_files, ingest

__all__ = ["FileFailure", "IngestReport", "collect_files", "ingest"]
