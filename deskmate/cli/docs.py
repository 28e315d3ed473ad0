"""`deskmate ingest …` and `deskmate docs list`: department documents."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from bot import tenancy
from bot.directory import parse_departments
from bot.errors import UsageError
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option
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
            actor=f"cli:{getpass.getuser()}",
        )
    finally:
        await embedder.aclose()
        await db.stop()
    if report.files == 0:
        print("deskmate ingest: no supported documents found", file=sys.stderr)
        return 1
    print(f"{report.summary()} (department {args.department})")
    for failure in report.failed:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    return 1 if len(report.failed) == report.files else 0


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
