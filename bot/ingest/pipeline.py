"""`ingest`: files → text → chunks → embeddings → rows, safe to run again and again.

Choices a reader should know:
- A document is identified by (tenant, department, source_path), where source_path is the file's
  resolved absolute path: the same file named through any folder or symlink is the same document,
  and re-runs find it as long as the file stays where it is.
- A file is skipped when its sha256 matches the stored hash of a `ready` document: nothing is
  parsed, embedded or written (only a changed `--access` is applied, to the rows in place).
- A file that fails to parse leaves the last good version's chunks in place and marks the document
  `failed` with the error: people keep getting answers from the handbook they had, and `docs list`
  shows what needs fixing. A new file that fails gets a `failed` row without chunks.
- An embedding provider failure stops the run (it is not the file's fault, and recording it as a
  document error would hide an outage); files already stored stay stored, and the next run skips
  them.
- A changed file's new chunks replace the old ones in one transaction with the document row: a
  search sees the old version or the new one, never both and never neither.
- `sync` also deletes the department's documents whose files are gone from the folders given
  (only documents whose source_path lies below one of them), after the files are stored, so a
  failed run removes nothing. A folder with no supported file left is refused before anything
  is written: an unmounted share looks exactly like that.
- `dry_run` writes nothing: each file is only read and hashed, so a file that would fail to
  parse is counted as added or updated.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePath

from tqdm import tqdm

from bot import tenancy
from bot.directory import parse_departments
from bot.embeddings import Embedder
from bot.errors import UsageError
from bot.ingest.chunking import Chunk, chunk_document
from bot.ingest.parsers import SUPPORTED_EXTENSIONS, ParseError, is_supported, parse_document
from storage import audit, documents
from storage.database import Connection, Database

logger = logging.getLogger("deskmate.ingest")


class Outcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


# Where a document uploaded through the console (no file on this server) comes from.
UPLOAD_PREFIX = "upload:"


@dataclass(frozen=True)
class FileFailure:
    path: str
    error: str


@dataclass
class IngestReport:
    """What one run did, file by file (paths as stored in `source_path`)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[FileFailure] = field(default_factory=list)
    # With sync: the source paths of the documents deleted (or, in a dry run, to be deleted).
    removed: list[str] | None = None
    dry_run: bool = False

    @property
    def files(self) -> int:
        return len(self.added) + len(self.updated) + len(self.unchanged) + len(self.failed)

    def summary(self) -> str:
        """One line for people: "4 files: 2 added, 1 updated, 0 unchanged, 1 failed", then
        ", 1 removed" after a sync; a dry run says so first."""
        line = (
            f"{self.files} file{'s' if self.files != 1 else ''}: {len(self.added)} added, "
            f"{len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed"
        )
        if self.removed is not None:
            line += f", {len(self.removed)} removed"
        return f"dry run, nothing changed: {line}" if self.dry_run else line


@dataclass(frozen=True)
class Target:
    """Where and by whom the files of one run are stored."""

    tenant_id: int
    department: str
    access: tuple[str, ...]
    actor: str


async def ingest(
    db: Database,
    embedder: Embedder,
    tenant_slug: str,
    paths: Sequence[str | Path],
    department: str,
    access: Sequence[str] = (),
    actor: str = "cli",
    progress: bool = True,
    *,
    sync: bool = False,
    dry_run: bool = False,
) -> IngestReport:
    """Load the supported files under `paths` into `department` (readable also by `access`);
    with `sync`, also delete the department's documents whose files are gone from the folders
    among `paths` (see the module docstring for both and for `dry_run`).

    Every file ends up in exactly one list of the report. Raises UsageError for a bad department
    name, a path that does not exist or a synced folder left without files (before anything is
    written), NotFound for an unknown
    tenant, and EmbeddingError when the embedding provider fails.
    """
    target_department, target_access = _check_departments(department, access)
    files, report_failures = collect_files(paths)
    folders = _sync_folders(paths) if sync else []
    tenant_id = await tenancy.tenant_id(db, tenant_slug)
    target = Target(tenant_id, target_department, target_access, actor)
    vanished = await _vanished(db, target, folders, files) if sync else None
    report = IngestReport(failed=report_failures, dry_run=dry_run)
    show = progress and sys.stderr.isatty() and not dry_run
    with tqdm(total=len(files), unit="file", file=sys.stderr, disable=not show) as bar:
        for path in files:
            bar.set_postfix_str(path.name, refresh=False)
            try:
                if dry_run:
                    outcome = await _classify(db, target, path)
                else:
                    outcome = await _ingest_file(db, embedder, target, path)
            except ParseError as exc:
                logger.debug("could not ingest %s: %s", path, exc)  # the report carries it
                report.failed.append(FileFailure(str(path), str(exc)))
            else:
                getattr(report, outcome.value).append(str(path))
            bar.update()
    if vanished is not None:
        if not dry_run:
            await _remove(db, vanished, actor)
        report.removed = [d.source_path for d in vanished]
    if (report.added or report.updated or report.removed) and not dry_run:
        async with db.pool.acquire() as conn:
            await documents.refresh_statistics(conn)
    return report


def _check_departments(department: str, access: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    names = parse_departments(department)
    if len(names) != 1:
        raise UsageError("give exactly one department, e.g. --department hr")
    extra = parse_departments(",".join(access))
    # Sorted, so "--access a,b" and "--access b,a" are the same access on a re-run.
    return names[0], tuple(sorted(set(extra) - {names[0]}))


def collect_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[FileFailure]]:
    """The supported files under `paths` (folders searched recursively, each folder's files in
    sorted order, duplicates dropped), resolved; and, as failures, the files named explicitly
    that are of an unsupported type. Hidden files and Office lock files (`~$x.docx`) in folders
    are skipped. Raises UsageError for a path that does not exist."""
    if isinstance(paths, str | Path):  # one path, not a sequence of one-letter paths
        paths = [paths]
    if not paths:
        raise UsageError("give at least one file or folder to ingest")
    found: dict[Path, None] = {}
    rejected: list[FileFailure] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise UsageError(f"no such file or folder: {raw}")
        path = path.resolve()
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path)
                if file.is_file() and is_supported(file) and not _hidden(relative):
                    found.setdefault(file.resolve())
        elif is_supported(path):
            found.setdefault(path)
        else:
            supported = ", ".join(SUPPORTED_EXTENSIONS)
            rejected.append(FileFailure(str(path), f"unsupported file type ({supported})"))
    return list(found), rejected


def _hidden(relative: Path) -> bool:
    return any(part.startswith((".", "~$")) for part in relative.parts)


def _sync_folders(paths: Sequence[str | Path]) -> list[Path]:
    """The folders among `paths`, resolved as `collect_files` resolves their files."""
    if isinstance(paths, str | Path):
        paths = [paths]
    resolved = [Path(raw).expanduser().resolve() for raw in paths]
    folders = [path for path in resolved if path.is_dir()]
    if not folders:
        raise UsageError("--sync needs a folder: it removes the documents whose files are gone")
    return folders


async def _vanished(
    db: Database, target: Target, folders: list[Path], files: list[Path]
) -> list[documents.Document]:
    """The target department's documents below `folders` whose file is not among `files`.
    UsageError when a folder has no file left at all (see the module docstring)."""
    present = {str(f) for f in files}
    gone: dict[int, documents.Document] = {}
    async with db.pool.acquire() as conn:
        for folder in folders:
            stored = await documents.documents_under(
                conn, target.tenant_id, target.department, str(folder)
            )
            vanished = [d for d in stored if d.source_path not in present]
            if vanished and not any(f.is_relative_to(folder) for f in files):
                raise UsageError(
                    f"{folder} holds no supported document any more: not removing the "
                    f"{len(vanished)} documents synced from it (is it mounted? to remove them, "
                    "use 'deskmate docs delete')"
                )
            gone |= {d.id: d for d in vanished}
    return sorted(gone.values(), key=lambda d: d.source_path)


async def _remove(db: Database, gone: list[documents.Document], actor: str) -> None:
    """Delete each document in a transaction of its own (audited)."""
    for document in gone:
        async with db.transaction() as conn:
            await remove_document(conn, document, actor)


async def remove_document(conn: Connection, document: documents.Document, actor: str) -> int:
    """Delete a document with its chunks and write the audit row, in the caller's transaction;
    returns how many chunks went out of retrieval."""
    count = await documents.delete_document(conn, document)
    await audit.record(
        conn,
        tenant_id=document.tenant_id,
        actor=actor,
        action="document.delete",
        target_type="document",
        target_id=str(document.id),
        before={**document.as_dict(), "chunks": count},
        after=None,
    )
    return count


async def _stored(db: Database, target: Target, source: str) -> documents.Document | None:
    async with db.pool.acquire() as conn:
        return await documents.find_document(conn, target.tenant_id, target.department, source)


async def _classify(db: Database, target: Target, path: Path) -> Outcome:
    """What ingesting the file would do, from its hash alone (a dry run)."""
    digest = hashlib.sha256(_read(path)).hexdigest()
    before = await _stored(db, target, str(path))
    if before is None:
        return Outcome.ADDED
    fresh = before.status == "ready" and before.content_hash == digest
    if fresh and before.department_access == target.access:
        return Outcome.UNCHANGED
    return Outcome.UPDATED


async def _ingest_file(db: Database, embedder: Embedder, target: Target, path: Path) -> Outcome:
    """Bring one file's document up to date. Raises ParseError after recording the failure."""
    try:
        data = _read(path)
    except ParseError as exc:
        before = await _stored(db, target, str(path))
        await _record_failure(db, target, str(path), path.name, str(exc), before)
        raise
    return await store_file(db, embedder, target, str(path), path.name, data)


async def store_file(
    db: Database, embedder: Embedder, target: Target, source: str, filename: str, data: bytes
) -> Outcome:
    """Bring the document stored from `source` up to date with `data`, the bytes of a file
    called `filename` (its extension picks the parser). Raises ParseError after recording
    the failure."""
    before = await _stored(db, target, source)
    digest = hashlib.sha256(data).hexdigest()
    if before is not None and before.status == "ready" and before.content_hash == digest:
        return await _apply_access(db, target, before)
    try:
        parsed = parse_document(data, filename)
    except ParseError as exc:
        await _record_failure(db, target, source, filename, str(exc), before)
        raise
    chunks = chunk_document(parsed)
    vectors = await embedder.embed_documents([embedding_text(parsed.title, c) for c in chunks])
    stored = [
        documents.NewChunk(c.section_title, c.chunk_index, c.content, c.token_count, vector)
        for c, vector in zip(chunks, vectors, strict=True)
    ]
    new = _new_document(target, source, parsed.title, parsed.mime_type)
    await _store(db, target, new, digest, stored, before)
    return Outcome.UPDATED if before else Outcome.ADDED


async def _store(
    db: Database,
    target: Target,
    new: documents.NewDocument,
    digest: str,
    chunks: list[documents.NewChunk],
    before: documents.Document | None,
) -> None:
    """The document, its chunks and the audit row, in one transaction: a reader sees the old
    version or the new one, never a document without its chunks."""
    async with db.transaction() as conn:
        document = await documents.save_ready(conn, new, digest)
        count = await documents.replace_chunks(conn, document, chunks)
        await audit.record(
            conn,
            tenant_id=target.tenant_id,
            actor=target.actor,
            action="document.update" if before else "document.ingest",
            target_type="document",
            target_id=str(document.id),
            before=before.as_dict() if before else None,
            after={**document.as_dict(), "chunks": count},
        )


def embedding_text(title: str, chunk: Chunk) -> str:
    """What is embedded for a chunk: its document and section titles above its content, so a
    question naming a topic finds passages that only name it in their heading."""
    return passage_text(title, chunk.section_title, chunk.content)


def passage_text(title: str, section_title: str | None, content: str) -> str:
    """`embedding_text` of a stored chunk (`deskmate reindex` embeds it again)."""
    header = f"Document: {title}"
    if section_title:
        header += f"\nSection: {section_title}"
    return f"{header}\n\n{content}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read the file: {exc.strerror or exc}") from exc


def _new_document(
    target: Target, source: str, title: str, mime: str | None
) -> documents.NewDocument:
    return documents.NewDocument(
        tenant_id=target.tenant_id,
        department=target.department,
        department_access=target.access,
        source_path=source,
        title=title,
        mime_type=mime,
        created_by=target.actor,
    )


async def _apply_access(db: Database, target: Target, before: documents.Document) -> Outcome:
    """An unchanged file: nothing to do unless this run gives it other `--access` departments."""
    if before.department_access == target.access:
        return Outcome.UNCHANGED
    async with db.transaction() as conn:
        document = await documents.set_access(conn, before, target.access)
        await audit.record(
            conn,
            tenant_id=target.tenant_id,
            actor=target.actor,
            action="document.update",
            target_type="document",
            target_id=str(document.id),
            before=before.as_dict(),
            after=document.as_dict(),
        )
    return Outcome.UPDATED


async def _record_failure(
    db: Database,
    target: Target,
    source: str,
    filename: str,
    error: str,
    before: documents.Document | None,
) -> None:
    """Mark the document failed (audited), unless it already failed with this very error: a
    broken file retried by every run should not fill the audit log."""
    if before is not None and before.status == "failed" and before.error == error:
        return
    mime = mimetypes.guess_type(filename)[0]
    new = _new_document(target, source, PurePath(filename).stem, mime)
    async with db.transaction() as conn:
        document = await documents.save_failed(conn, new, error)
        await audit.record(
            conn,
            tenant_id=target.tenant_id,
            actor=target.actor,
            action="document.fail",
            target_type="document",
            target_id=str(document.id),
            before=before.as_dict() if before else None,
            after=document.as_dict(),
        )
