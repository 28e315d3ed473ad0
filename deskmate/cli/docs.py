"""`deskmate ingest …` and `deskmate docs list|delete|cited`: department documents."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from bot import tenancy
from bot.directory import parse_departments
from bot.errors import NotFound, UsageError
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option, print_table
from storage import documents
from storage.database import Database


def register(commands: Any) -> None:

    ingest = commands.add_parser(
        "ingest",
        help="load documents into a department",
        description=(
            "Load documents (.md, .txt, .html, .pdf, .docx; folders recursively) into a "
            "department. Unchanged files are skipped, changed ones replaced."
        ),
    )
    ingest.add_argument(
        "paths", nargs="+", metavar="PATH", type=_existing_path, help="files or folders"
    )
    ingest.add_argument(
        "--department", required=True, type=_department, help="the department that owns them"
    )
    ingest.add_argument(
        "--access",
        type=_departments,
        default=[],
        help="other departments that may read them, comma-separated (e.g. sales,ops)",
    )
    ingest.add_argument(
        "--sync",
        action="store_true",
        help="also remove the department's documents whose files are gone from these folders",
    )
    ingest.add_argument(
        "--dry-run",
        action="store_true",
        help="change nothing: show what would be added, updated and (with --sync) removed",
    )
    add_tenant_option(ingest)
    ingest.set_defaults(handler=run_ingest)

    docs = commands.add_parser(
        "docs", help="inspect ingested documents", description="Inspect ingested documents."
    )
    doc_commands = docs.add_subparsers(dest="docs_command", metavar="ACTION", required=True)
    listing = doc_commands.add_parser(
        "list",
        help="list documents with their status and chunk counts",
        description="List documents with their status, chunk count and, when failed, the error.",
    )
    listing.add_argument("--department", type=_department, help="only this department")
    add_tenant_option(listing)
    listing.set_defaults(handler=run_docs_list)

    delete = doc_commands.add_parser(
        "delete",
        help="delete a document: its passages leave retrieval at once",
        description="Delete a document and its passages (audited). Name it by its id (see "
        "'docs list') or by the path of the file it was ingested from.",
    )
    delete.add_argument("document", metavar="ID|PATH", help="the document's id or source file")
    delete.add_argument(
        "--department", type=_department, help="the department, when several ingested the file"
    )
    add_tenant_option(delete)
    delete.set_defaults(handler=run_docs_delete)

    cited = doc_commands.add_parser(
        "cited",
        help="list the recent questions whose answers cited a document",
        description="The most recent answers that cited the document, newest first, with the "
        "question each answered.",
    )
    cited.add_argument("document", metavar="ID", type=_document_id, help="the document's id")
    cited.add_argument(
        "--limit", type=_positive, default=20, help="at most this many (default: %(default)s)"
    )
    add_tenant_option(cited)
    cited.set_defaults(handler=run_docs_cited)


def _document_id(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a document id: {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return int(text)


def _existing_path(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {text!r}")
    return path


def _departments(text: str) -> list[str]:
    try:
        return parse_departments(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _department(text: str) -> str:
    names = _departments(text)
    if len(names) != 1:
        raise argparse.ArgumentTypeError("give exactly one department")
    return names[0]


async def run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 unless every file failed (1); the failures are listed one per line on stderr."""
    # Imported here: numpy and the parsers are not needed for `--help` or the other commands.
    from bot.embedders import create_embedder
    from bot.ingest import ingest

    embedder = create_embedder(settings)
    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        report = await ingest(
            db,
            embedder,
            args.tenant,
            args.paths,
            args.department,
            args.access,
            actor=_actor(),
            sync=args.sync,
            dry_run=args.dry_run,
        )
    finally:
        await embedder.aclose()
        await db.stop()
    if report.files == 0 and not report.removed:
        print("deskmate ingest: no supported documents found", file=sys.stderr)
        return 1
    print(f"{report.summary()} (department {args.department})")
    for source in report.removed or []:
        print(f"{'would remove' if report.dry_run else 'removed'}: {source}")
    for failure in report.failed:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    return 1 if report.files and len(report.failed) == report.files else 0


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


async def run_docs_list(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        tenant_id = await tenancy.tenant_id(db, args.tenant)
        async with db.pool.acquire() as conn:
            summaries = await documents.list_documents(conn, tenant_id, args.department)
    finally:
        await db.stop()
    if not summaries:
        print("(no documents yet: load some with 'deskmate ingest PATH --department D')")
        return 0
    _print_documents(summaries)
    return 0


def _print_documents(summaries: list[documents.DocumentSummary]) -> None:
    """A table; a failed document gets its error on the line below its row."""
    header = ("ID", "DEPARTMENT", "ACCESS", "TITLE", "STATUS", "CHUNKS", "UPDATED", "SOURCE")
    rows = [
        (
            str(d.id),
            d.department,
            ",".join(d.department_access) or "-",
            d.title,
            d.status,
            str(s.chunk_count),
            d.updated_at.strftime("%Y-%m-%d %H:%M"),
            d.source_path,
        )
        for s in summaries
        for d in (s.document,)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row, summary in zip([header, *rows], [None, *summaries], strict=True):
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
        if summary is not None and summary.document.error:
            print(f"    error: {summary.document.error}")


async def run_docs_delete(args: argparse.Namespace, settings: Settings) -> int:
    from bot.documents import delete_document

    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        tenant_id = await tenancy.tenant_id(db, args.tenant)
        document_id = await _resolve(db, tenant_id, args.document, args.department)
        deleted = await delete_document(db, tenant_id, document_id, requester=None, actor=_actor())
    finally:
        await db.stop()
    document = deleted.document
    print(
        f"deleted document {document.id} {document.title!r} ({document.department}): "
        f"{deleted.chunks} passage{'s' if deleted.chunks != 1 else ''} out of retrieval"
    )
    return 0


async def _resolve(db: Database, tenant_id: int, named: str, department: str | None) -> int:
    """The id of the document named by its id or by the file it was ingested from (the path as
    given, or resolved as `ingest` stores it: the file may be gone)."""
    if named.isdigit():
        return int(named)
    async with db.pool.acquire() as conn:
        for source in _source_paths(named):
            found = await documents.find_by_source(conn, tenant_id, source, department)
            if found:
                break
    if not found:
        where = f" in {department}" if department else ""
        raise NotFound(f"no document ingested from {named}{where} (see 'deskmate docs list')")
    if len(found) > 1:
        departments = ", ".join(d.department for d in found)
        raise UsageError(f"{named} is a document of several departments ({departments}): "
                         "choose one with --department, or give the id")  # fmt: skip
    return found[0].id


def _source_paths(named: str) -> list[str]:
    return list(dict.fromkeys([named, str(Path(named).expanduser().resolve())]))


async def run_docs_cited(args: argparse.Namespace, settings: Settings) -> int:
    from bot.documents import cited_by

    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        tenant_id = await tenancy.tenant_id(db, args.tenant)
        document, citations = await cited_by(
            db, tenant_id, args.document, requester=None, limit=args.limit
        )
    finally:
        await db.stop()
    if not citations:
        print(f"(no answer has cited document {document.id} {document.title!r} yet)")
        return 0
    rows = [("WHEN", "WHO", "PLATFORM", "STATUS", "QUESTION")]
    rows += [
        (
            c.answered_at.strftime("%Y-%m-%d %H:%M"),
            c.user_email or "-",
            c.platform,
            c.status or "-",
            " ".join((c.question or "-").split())[:100],
        )
        for c in citations
    ]
    print_table(rows)
    return 0
