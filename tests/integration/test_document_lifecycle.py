"""A document's life after ingest, on the embedded PostgreSQL: deleted (gone from every search
arm, statistics as if it had never been there), replaced (a search sees one version, whole),
synced away with its folder, uploaded from the console in every supported format, and the
questions that cited it."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import docx
import pytest

from bot.conversation import ConversationService
from bot.documents import (
    NotPermitted,
    cited_by,
    delete_document,
    replace_document,
    upload_document,
)
from bot.embeddings import HashEmbedder
from bot.errors import NotFound, UsageError
from bot.ingest import IngestReport, ingest
from bot.messages import IncomingMessage, ReplyStatus
from bot.settings import Settings
from storage import users
from storage.database import Database
from storage.retrieval import FUSED, ChunkHit, Reader, search_chunks
from tests.support import TEST_DIMENSION
from tests.support.documents import make_pdf
from tests.support.factories import add_user

EMBEDDER = HashEmbedder(TEST_DIMENSION)
ARMS = {"meaning": ("meaning",), "words": ("words",), "production": FUSED}

LEAVE_MD = """## Parental leave
Parents take sixteen weeks of parental leave on full pay.

## Sick leave
Call your manager before nine on the first day of sickness.
"""
TRAVEL_MD = """## Flights
Book economy class for flights under six hours through the travel portal.

## Hotels
Hotels cost at most 180 EUR a night in capitals.
"""
SECURITY_MD = """## Badges
A lost badge is blocked at once; the front desk prints a new badge.

## Laptops
Report a lost laptop within one hour; laptops are encrypted.
"""


async def run_ingest(
    db: Database, *paths: Path, department: str = "hr", tenant: str = "default", **options: bool
) -> IngestReport:
    return await ingest(
        db, EMBEDDER, tenant, paths, department, (), "test", progress=False, **options
    )


async def search(
    db: Database, user_id: int, question: str, arms: tuple[str, ...], tenant_id: int = 1
) -> list[ChunkHit]:
    """What the production search gives this reader (every candidate, however weak)."""
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn, Reader(tenant_id, user_id, "web", None, ()), await EMBEDDER.embed_query(question),
            question, limit=50, candidates=50, min_similarity=-1.0, arms=arms,
        )  # fmt: skip
    return found.items


async def user(db: Database, user_id: int) -> users.User:
    async with db.pool.acquire() as conn:
        found = await users.get_by_id(conn, 1, user_id)
    assert found is not None
    return found


async def make_head(db: Database, email: str, department: str) -> users.User:
    user_id = await add_user(db, email, [department])
    await db.pool.execute(
        "UPDATE users SET dept_head_for = $2 WHERE id = $1", user_id, [department]
    )
    return await user(db, user_id)


async def document_id(db: Database, name: str, department: str = "hr") -> int:
    return int(
        await db.pool.fetchval(
            "SELECT id FROM documents WHERE source_path LIKE '%/' || $1 AND department = $2",
            name,
            department,
        )
    )


async def statistics_match_the_chunks(db: Database) -> None:
    """keyword_corpus, lexicon and department_sizes say what the chunks themselves say."""
    async with db.pool.acquire() as conn:
        corpus = await conn.fetch(
            "SELECT tenant_id, chunks, total_terms FROM keyword_corpus ORDER BY tenant_id"
        )
        counted = await conn.fetch(
            "SELECT c.tenant_id, count(*) AS chunks, "
            "coalesce(sum((SELECT max(p.length) FROM chunk_postings p WHERE p.chunk_id = c.id)), 0)"
            " AS total_terms FROM document_chunks c GROUP BY c.tenant_id ORDER BY c.tenant_id"
        )
        sizes = await conn.fetch(
            "SELECT tenant_id, department, chunks FROM department_sizes WHERE chunks <> 0 "
            "ORDER BY 1, 2"
        )
        per_department = await conn.fetch(
            "SELECT tenant_id, department, count(*) AS chunks FROM document_chunks "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        wrong_df = await conn.fetchval(
            "SELECT count(*) FROM lexicon l WHERE l.df <> "
            "(SELECT count(*) FROM chunk_postings p WHERE p.term_id = l.id)"
        )
        orphans = await conn.fetchval(
            "SELECT count(*) FROM chunk_postings p "
            "WHERE NOT EXISTS (SELECT 1 FROM document_chunks c WHERE c.id = p.chunk_id)"
        )
    assert [tuple(r) for r in corpus if r["chunks"]] == [tuple(r) for r in counted]
    assert [tuple(r) for r in sizes] == [tuple(r) for r in per_department]
    assert (wrong_df, orphans) == (0, 0)


# --- delete ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arm", ARMS)
async def test_a_deleted_document_no_longer_answers_in_any_arm(
    db: Database, tmp_path: Path, arm: str
) -> None:
    (tmp_path / "leave.md").write_text(LEAVE_MD)
    (tmp_path / "travel.md").write_text(TRAVEL_MD)
    await run_ingest(db, tmp_path)
    boss = await add_user(db, "boss@example.com", super_user=True)
    question = "how many weeks of parental leave, or hours for flights"
    before = await search(db, boss, question, ARMS[arm])
    assert "leave" in {Path(hit.source_path).stem for hit in before}

    leave = await document_id(db, "leave.md")
    deleted = await delete_document(db, 1, leave, requester=await user(db, boss), actor="boss")

    assert deleted.chunks == 2 and deleted.document.title == "leave"
    after = await search(db, boss, question, ARMS[arm])
    assert after and {Path(hit.source_path).stem for hit in after} == {"travel"}
    await statistics_match_the_chunks(db)
    audit = await db.pool.fetchrow("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert (audit["action"], audit["actor"], audit["target_id"]) == (
        "document.delete", "boss", str(leave),
    )  # fmt: skip
    assert audit["before"]["source_path"].endswith("leave.md")
    assert audit["before"]["chunks"] == 2 and audit["after"] is None
    with pytest.raises(NotFound, match=f"no document {leave}"):
        await delete_document(db, 1, leave, requester=None, actor="boss")


QUESTIONS = [
    "lost badge or laptop",
    "parental leave weeks",
    "flights hours and hotels",
    "sixteen weeks of leave for a lost badge",
    "EUR a night in capitals",
]


async def test_keyword_scores_after_a_delete_equal_a_fresh_ingest_without_the_document(
    db: Database, tmp_path: Path
) -> None:
    """Tenant 1 ingests three documents and deletes one; tenant 2 ingests only the other two.
    Every keyword score (IDF, average length, lengths) must come out the same."""
    (tmp_path / "leave.md").write_text(LEAVE_MD)
    (tmp_path / "travel.md").write_text(TRAVEL_MD)
    (tmp_path / "security.md").write_text(SECURITY_MD)
    await db.pool.execute("INSERT INTO tenants (id, slug, name) VALUES (2, 'fresh', 'Fresh')")
    await run_ingest(db, tmp_path / "leave.md", tmp_path / "travel.md")
    await run_ingest(db, tmp_path / "security.md", department="ops")
    await run_ingest(db, tmp_path / "leave.md", tmp_path / "travel.md", tenant="fresh")
    boss = await add_user(db, "boss@example.com", super_user=True)
    fresh_boss = await db.pool.fetchval(
        "INSERT INTO users (tenant_id, email, display_name, is_super_user) "
        "VALUES (2, 'boss@example.com', 'Boss', true) RETURNING id"
    )

    security = await document_id(db, "security.md", "ops")
    await delete_document(db, 1, security, requester=None, actor="test")

    for question in QUESTIONS:
        for arms in (("words",), FUSED):
            after_delete = await search(db, boss, question, arms)
            fresh = await search(db, fresh_boss, question, arms, tenant_id=2)
            assert _scores(after_delete) == pytest.approx(_scores(fresh)), (question, arms)
            assert [_name(h) for h in after_delete] == [_name(h) for h in fresh]
    await statistics_match_the_chunks(db)
    sizes = dict(await db.pool.fetch("SELECT department, chunks FROM department_sizes "
                                     "WHERE tenant_id = 1"))  # fmt: skip
    assert sizes == {"hr": 4, "ops": 0}


def _name(hit: ChunkHit) -> tuple[str, str | None]:
    return Path(hit.source_path).name, hit.section_title


def _scores(hits: list[ChunkHit]) -> list[float]:
    return [value for hit in hits for value in (hit.score, hit.keyword_coverage)]


async def test_only_a_super_user_or_the_departments_head_may_delete(
    db: Database, tmp_path: Path
) -> None:
    (tmp_path / "leave.md").write_text(LEAVE_MD)
    await run_ingest(db, tmp_path)
    leave = await document_id(db, "leave.md")
    sales_head = await make_head(db, "sam@example.com", "sales")
    hr_reader = await user(db, await add_user(db, "rita@example.com", ["hr"]))

    for someone in (sales_head, hr_reader):
        with pytest.raises(NotPermitted, match="only a super user or the head of hr may delete"):
            await delete_document(db, 1, leave, requester=someone, actor=someone.email)
        with pytest.raises(NotPermitted):
            await replace_document(db, EMBEDDER, 1, leave, "leave.md", b"# Nothing",
                                   requester=someone, actor=someone.email)  # fmt: skip
    assert await db.pool.fetchval("SELECT count(*) FROM document_chunks") == 2
    assert (
        await db.pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'document.delete'")
        == 0
    )

    hr_head = await make_head(db, "hana@example.com", "hr")
    await delete_document(db, 1, leave, requester=hr_head, actor=hr_head.email)
    assert await db.pool.fetchval("SELECT count(*) FROM documents") == 0


# --- replace -----------------------------------------------------------------------------------


def revision(number: int) -> str:
    """A handbook whose every passage names its revision."""
    return "\n\n".join(
        f"## {topic}\n{topic} rules, revision r{number}: {text}"
        for topic, text in [
            ("Leave", "parents take sixteen weeks of leave."),
            ("Travel", "economy class for flights under six hours."),
            ("Badges", "a lost badge is blocked at once."),
        ]
    )


def revisions_seen(hits: list[ChunkHit], document: int) -> list[str]:
    return sorted(
        word
        for hit in hits
        if hit.document_id == document
        for word in hit.content.replace(":", " ").split()
        if word.startswith("r") and word[1:].isdigit()
    )


async def test_a_search_during_a_replace_sees_the_old_version_whole(
    db: Database, tmp_path: Path
) -> None:
    """The replace is held just before it commits (its audit row waits for a lock): every step
    before has run, and a search still finds exactly the old version; then exactly the new."""
    handbook = tmp_path / "handbook.md"
    handbook.write_text(revision(1))
    await run_ingest(db, handbook)
    doc = await document_id(db, "handbook.md")
    boss = await add_user(db, "boss@example.com", super_user=True)
    handbook.write_text(revision(2))

    blocker = await db.connect()
    try:
        held = blocker.transaction()
        await held.start()
        await blocker.execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        replacing = asyncio.create_task(run_ingest(db, handbook))
        await _waiting_for(db, "audit_log", replacing)
        for arms in ARMS.values():
            assert revisions_seen(await search(db, boss, "rules revision", arms), doc) == ["r1"] * 3
        await held.commit()
        report = await replacing
    finally:
        await blocker.close()
    assert len(report.updated) == 1
    for arms in ARMS.values():
        assert revisions_seen(await search(db, boss, "rules revision", arms), doc) == ["r2"] * 3


async def _waiting_for(db: Database, table: str, task: asyncio.Task[object]) -> None:
    for _ in range(600):
        waiting = await db.pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted", table
        )
        if waiting:
            return
        assert not task.done(), task
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing came to wait for {table}")


async def test_searches_during_repeated_replaces_each_see_one_whole_version(
    db: Database, tmp_path: Path
) -> None:
    handbook = tmp_path / "handbook.md"
    handbook.write_text(revision(0))
    await run_ingest(db, handbook)
    doc = await document_id(db, "handbook.md")
    boss = await add_user(db, "boss@example.com", super_user=True)
    seen: list[list[str]] = []
    done = asyncio.Event()

    async def searching() -> None:
        while not done.is_set():
            for arms in ARMS.values():
                seen.append(revisions_seen(await search(db, boss, "rules revision", arms), doc))

    searcher = asyncio.create_task(searching())
    try:
        for number in range(1, 7):
            handbook.write_text(revision(number))
            assert len((await run_ingest(db, handbook)).updated) == 1
    finally:
        done.set()
        await searcher
    assert seen
    for revisions in seen:
        assert len(revisions) == 3 and len(set(revisions)) == 1, revisions


async def test_the_console_replaces_a_document_under_the_same_id(
    db: Database, tmp_path: Path
) -> None:
    (tmp_path / "leave.md").write_text(LEAVE_MD)
    await run_ingest(db, tmp_path)
    leave = await document_id(db, "leave.md")
    head = await make_head(db, "hana@example.com", "hr")
    new_version = LEAVE_MD.replace("sixteen weeks", "twenty weeks").encode()

    replaced = await replace_document(
        db, EMBEDDER, 1, leave, "leave-2026.md", new_version, requester=head, actor=head.email
    )

    assert (replaced.id, replaced.status) == (leave, "ready")
    found = await search(db, head.id, "weeks of parental leave", FUSED)
    text = " ".join(hit.content for hit in found)
    assert "twenty weeks" in text and "sixteen weeks" not in text
    actions = await db.pool.fetch("SELECT action, actor FROM audit_log ORDER BY id")
    assert [tuple(a) for a in actions][-1] == ("document.update", "hana@example.com")


# --- sync --------------------------------------------------------------------------------------


async def test_sync_removes_only_the_vanished_files_of_that_folder(
    db: Database, tmp_path: Path
) -> None:
    hr = tmp_path / "hr"
    archive = tmp_path / "hr-archive"  # shares hr's name as a prefix: not below it
    for folder in (hr, archive):
        (folder / "policies").mkdir(parents=True)
        (folder / "leave.md").write_text(LEAVE_MD)
        (folder / "policies" / "travel.md").write_text(TRAVEL_MD)
    await run_ingest(db, hr)
    await run_ingest(db, archive)
    await run_ingest(db, hr, department="ops")
    (hr / "policies" / "travel.md").unlink()

    dry = await run_ingest(db, hr, sync=True, dry_run=True)
    assert dry.summary() == (
        "dry run, nothing changed: 1 file: 0 added, 0 updated, 1 unchanged, 0 failed, 1 removed"
    )
    assert dry.removed == [str((hr / "policies" / "travel.md").resolve())]
    assert await db.pool.fetchval("SELECT count(*) FROM documents") == 6

    report = await run_ingest(db, hr, sync=True)
    assert report.summary() == "1 file: 0 added, 0 updated, 1 unchanged, 0 failed, 1 removed"
    left = await db.pool.fetch("SELECT department, source_path FROM documents")
    assert sorted(
        (r["department"], Path(r["source_path"]).relative_to(tmp_path)) for r in left
    ) == [
        ("hr", Path("hr/leave.md")),
        ("hr", Path("hr-archive/leave.md")),
        ("hr", Path("hr-archive/policies/travel.md")),
        ("ops", Path("hr/leave.md")),
        ("ops", Path("hr/policies/travel.md")),  # another department's copy: not this sync's
    ]
    await statistics_match_the_chunks(db)
    audit = await db.pool.fetch("SELECT action FROM audit_log WHERE action = 'document.delete'")
    assert len(audit) == 1


async def test_sync_of_a_folder_left_empty_removes_nothing(db: Database, tmp_path: Path) -> None:
    """An unmounted share looks like an empty folder: that is no reason to forget a handbook."""
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "leave.md").write_text(LEAVE_MD)
    await run_ingest(db, tmp_path / "hr")
    (tmp_path / "hr" / "leave.md").unlink()
    with pytest.raises(UsageError, match="holds no supported document any more"):
        await run_ingest(db, tmp_path / "hr", sync=True)
    assert await db.pool.fetchval("SELECT count(*) FROM documents") == 1
    (tmp_path / "elsewhere.md").write_text(TRAVEL_MD)
    with pytest.raises(UsageError, match="--sync needs a folder"):
        await run_ingest(db, tmp_path / "elsewhere.md", sync=True)


# --- upload formats ----------------------------------------------------------------------------

RULE = "Zorblat badges are renewed every ninety days at the front desk."


def as_docx(text: str) -> bytes:
    document = docx.Document()
    document.add_heading("Badge rules", level=1)
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


UPLOADS = {
    "md": lambda text: f"# Badge rules\n\n{text}\n".encode(),
    "markdown": lambda text: f"Badge rules\n===========\n\n{text}\n".encode(),
    "txt": lambda text: text.encode("cp1252"),
    "html": lambda text: f"<html><body><h1>Badge rules</h1><p>{text}</p></body></html>".encode(),
    "htm": lambda text: f"<h2>Badge rules</h2><div>{text}</div>".encode(),
    "pdf": lambda text: make_pdf([[text]], "Badge rules"),
    "docx": as_docx,
}


@pytest.mark.parametrize("extension", UPLOADS)
async def test_an_uploaded_document_of_each_format_answers(db: Database, extension: str) -> None:
    head = await make_head(db, "hana@example.com", "hr")
    data = UPLOADS[extension](RULE)

    name = f"C:\\Users\\hana\\Badges.{extension.upper()}"  # as some browsers send it
    stored = await upload_document(db, EMBEDDER, 1, "hr", name, data,
                                   requester=head, actor=head.email)  # fmt: skip

    assert (stored.status, stored.department, stored.error) == ("ready", "hr", None)
    assert stored.source_path == f"upload:Badges.{extension.upper()}"
    found = await search(db, head.id, "when are zorblat badges renewed", ("words",))
    assert [hit.document_id for hit in found] == [stored.id]
    assert "renewed every ninety days" in " ".join(found[0].content.split())


async def test_an_upload_is_refused_when_unsupported_or_not_the_uploaders_department(
    db: Database,
) -> None:
    head = await make_head(db, "hana@example.com", "hr")
    with pytest.raises(UsageError, match="not a supported document"):
        await upload_document(db, EMBEDDER, 1, "hr", "logo.png", b"\x89PNG", requester=head,
                              actor=head.email)  # fmt: skip
    with pytest.raises(NotPermitted, match="head of sales"):
        await upload_document(db, EMBEDDER, 1, "sales", "a.md", b"# A", requester=head,
                              actor=head.email)  # fmt: skip
    assert await db.pool.fetchval("SELECT count(*) FROM documents") == 0


# --- which questions cited it ------------------------------------------------------------------


def dm(user_id: str, text: str) -> IncomingMessage:
    return IncomingMessage(
        platform="slack", user_id=user_id, conversation_id=f"D-{user_id}", text=text,
        is_direct=True,
    )  # fmt: skip


async def test_cited_lists_the_questions_answered_from_a_document_across_replaces(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    leave_file = tmp_path / "leave.md"
    leave_file.write_text(LEAVE_MD)
    (tmp_path / "travel.md").write_text(TRAVEL_MD)
    await run_ingest(db, tmp_path)
    await add_user(db, "rita@example.com", ["hr"], slack_id="U-RITA")
    service = ConversationService(settings, db, EMBEDDER)  # offline: passages are quoted
    leave = await document_id(db, "leave.md")
    head = await make_head(db, "hana@example.com", "hr")

    first = await service.handle(dm("U-RITA", "How many weeks of parental leave?"))
    assert first.status is ReplyStatus.OFFLINE
    assert leave in {source.document_id for source in first.sources}
    leave_file.write_text(LEAVE_MD.replace("sixteen weeks", "twenty weeks"))
    await run_ingest(db, tmp_path)  # new chunks: the citation is kept by document
    await service.handle(dm("U-RITA", "Who do I call on a sick day?"))

    document, cited = await cited_by(db, 1, leave, requester=head)
    assert document.title == "leave"
    assert [(c.question, c.user_email, c.platform, c.status) for c in cited] == [
        ("Who do I call on a sick day?", "rita@example.com", "slack", "offline"),
        ("How many weeks of parental leave?", "rita@example.com", "slack", "offline"),
    ]
    sales_head = await make_head(db, "sam@example.com", "sales")
    with pytest.raises(NotPermitted):
        await cited_by(db, 1, leave, requester=sales_head)

    await delete_document(db, 1, leave, requester=head, actor=head.email)
    gone = "SELECT count(*) FROM document_citations WHERE document_id = $1"
    assert await db.pool.fetchval(gone, leave) == 0
    with pytest.raises(NotFound):
        await cited_by(db, 1, leave, requester=head)


async def test_a_reply_with_malformed_sources_is_still_stored(db: Database) -> None:
    user_id = await add_user(db, "rita@example.com", ["hr"])
    session = await db.pool.fetchval(
        "INSERT INTO chat_sessions (tenant_id, user_id, platform, conversation_key, scope_date) "
        "VALUES (1, $1, 'web', 'dm:1', current_date) RETURNING id",
        user_id,
    )
    for number, metadata in enumerate(
        [{"sources": "none"}, {"sources": [{"chunk_id": "x1"}, {"title": "t"}, 7]}], start=1
    ):
        await db.pool.execute(
            "INSERT INTO session_messages (tenant_id, session_id, role, content, "
            "sequence_number, metadata) VALUES (1, $1, 'assistant', 'ok', $2, $3)",
            session,
            number,
            metadata,
        )
    assert await db.pool.fetchval("SELECT count(*) FROM session_messages") == 2
