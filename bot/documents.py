"""Department documents as the people who run deskmate manage them: upload, replace, delete,
and which answers cited one (`deskmate docs …`, the admin console).

Who may (SPEC §3, decided by `bot.roles.may_manage`): a super user, or the head of the
document's department (`dept_head_for`). `requester` None is the operator at the server's
command line, who may do everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath, PureWindowsPath

from bot import roles
from bot.directory import parse_departments
from bot.embeddings import Embedder
from bot.errors import DeskmateError, NotFound, UsageError
from bot.ingest.parsers import is_supported
from bot.ingest.pipeline import UPLOAD_PREFIX, Outcome, Target, remove_document, store_file
from storage import documents, users
from storage.database import Database


class NotPermitted(DeskmateError):
    """The person may not manage this department's documents."""

    http_status = 403


@dataclass(frozen=True)
class Deleted:
    document: documents.Document
    chunks: int


def _check(requester: users.User | None, tenant_id: int, department: str, doing: str) -> None:
    if requester is None:
        return
    if requester.tenant_id != tenant_id:
        raise NotPermitted(f"you may not {doing}: it belongs to another organisation")
    if not roles.may_manage(requester, department):
        raise NotPermitted(f"only a super user or the head of {department} may {doing}")


async def _get(db: Database, tenant_id: int, document_id: int) -> documents.Document:
    async with db.pool.acquire() as conn:
        document = await documents.get_document(conn, tenant_id, document_id)
    if document is None:
        raise NotFound(f"no document {document_id}")
    return document


async def delete_document(
    db: Database,
    tenant_id: int,
    document_id: int,
    *,
    requester: users.User | None,
    actor: str,
) -> Deleted:
    """Delete the document: its chunks leave retrieval when this returns (one transaction
    with the audit row). NotFound, or NotPermitted for someone who may not manage its
    department."""
    async with db.transaction() as conn:
        document = await documents.get_document(conn, tenant_id, document_id, lock=True)
        if document is None:
            raise NotFound(f"no document {document_id}")
        _check(requester, tenant_id, document.department, f"delete document {document_id}")
        chunks = await remove_document(conn, document, actor)
    return Deleted(document, chunks)


async def replace_document(
    db: Database,
    embedder: Embedder,
    tenant_id: int,
    document_id: int,
    filename: str,
    data: bytes,
    *,
    requester: users.User | None,
    actor: str,
) -> documents.Document:
    """A new version of the document from the bytes of a file called `filename`: same
    document, department and access, its chunks swapped for the new ones in one transaction.
    ParseError (the old version stays searchable, the document is marked failed)."""
    document = await _get(db, tenant_id, document_id)
    _check(requester, tenant_id, document.department, f"replace document {document_id}")
    target = Target(tenant_id, document.department, document.department_access, actor)
    outcome = await store_file(db, embedder, target, document.source_path, filename, data)
    return await _stored(db, tenant_id, document.department, document.source_path, outcome)


async def upload_document(
    db: Database,
    embedder: Embedder,
    tenant_id: int,
    department: str,
    filename: str,
    data: bytes,
    *,
    access: Sequence[str] = (),
    requester: users.User | None,
    actor: str,
) -> documents.Document:
    """Store an uploaded file in `department` (readable also by `access`). The same file name
    uploaded again into the department is a new version of that document. UsageError for a
    bad department or an unsupported file type, ParseError for a file that cannot be read."""
    names = parse_departments(department)
    if len(names) != 1:
        raise UsageError("give exactly one department")
    # A browser may send the uploader's whole path, with either kind of separator.
    name = PureWindowsPath(filename).name
    if not name or not is_supported(PurePath(name)):
        raise UsageError(f"{filename or 'the file'} is not a supported document (md, txt, html, "
                         "pdf, docx)")  # fmt: skip
    _check(requester, tenant_id, names[0], "upload documents")
    readers = tuple(sorted(set(parse_departments(",".join(access))) - {names[0]}))
    source = f"{UPLOAD_PREFIX}{name}"
    target = Target(tenant_id, names[0], readers, actor)
    outcome = await store_file(db, embedder, target, source, name, data)
    return await _stored(db, tenant_id, names[0], source, outcome)


async def _stored(
    db: Database, tenant_id: int, department: str, source: str, outcome: Outcome
) -> documents.Document:
    """The document as stored now; after a change, with the planner's statistics brought up
    to date (as after `deskmate ingest`)."""
    async with db.pool.acquire() as conn:
        if outcome is not Outcome.UNCHANGED:
            await documents.refresh_statistics(conn)
        document = await documents.find_document(conn, tenant_id, department, source)
    assert document is not None
    return document


async def cited_by(
    db: Database,
    tenant_id: int,
    document_id: int,
    *,
    requester: users.User | None,
    limit: int = 50,
) -> tuple[documents.Document, list[documents.Citation]]:
    """The document and the most recent answers that cited it (newest first), for those who
    manage its department."""
    document = await _get(db, tenant_id, document_id)
    _check(requester, tenant_id, document.department, f"see who cited document {document_id}")
    async with db.pool.acquire() as conn:
        return document, await documents.citations(conn, tenant_id, document_id, limit)
