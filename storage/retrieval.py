"""Retrieval: a user's memories and the document chunks they may read, with the access rule of
SPEC §3 inside the SQL.

Every search runs in its own transaction as the `deskmate_reader` role (when the database has
it), with the reader's rights in transaction-local settings: row-level security then checks each
row a second time, independently of the WHERE clauses written here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import asyncpg
import numpy as np

from storage.memories import Memory, ScoredMemory

READER_ROLE = "deskmate_reader"

# BM25's term-frequency saturation and length normalisation (the usual Lucene values).
BM25_K1 = 1.2
BM25_B = 0.75
# The most postings the keyword arm reads for one question: terms are taken rarest first, and
# the one that reaches the budget is read best postings first (highest term frequency), so
# what is left out is the common terms' weakest matches, which BM25 weighs least anyway. This
# is what keeps the arm's cost flat as the corpus grows.
POSTINGS_BUDGET = 5_000

# A reader who may read at most this many chunks gets an exact nearest-neighbour scan of them;
# above it, HNSW. Measured in bench/retrieval.py: below it the scan is faster than HNSW's
# filtered iterative scan, and always exact.
EXACT_SCAN_LIMIT = 20_000

# HNSW's candidate list: pgvector's default (40) found 70–80 % of the true 10 nearest over a
# large corpus in bench/retrieval.py; a longer list finds more of them for a few milliseconds.
HNSW_EF_SEARCH = 200
# A reader of part of a large corpus: the graph search meets everyone's chunks and keeps only
# theirs, so it needs a longer list for the same recall. At 1M chunks (bench/retrieval.py, 150
# questions) a 20 % reader's recall@10 was 0.937 with 200 and 0.976 with 400, at about the same
# latency; a super user's 0.978 with 200.
HNSW_EF_SEARCH_FILTERED = 400

# Reciprocal-rank fusion constant (Cormack et al. use 60): damps the head of each list so a
# chunk found by both searches beats one ranked first by only one of them.
RRF_K = 60

# A passage naming the exact code the person typed (SKU-TR-4417, HR-F12, ENG-4411) is almost
# surely what they want, however many other passages share their other words: codes get a
# third, heavier list of their own (BM25 over the codes' terms alone).
IDENTIFIER_WEIGHT = 2.0
_IDENTIFIER = re.compile(
    r"\b(?=[\w./-]*\d)(?=[\w./-]*[A-Za-z])[A-Za-z0-9]+(?:[-_./][A-Za-z0-9]+)*\b"  # Q3, HR-F12
    r"|\b[A-Z]{2,}(?:-[A-Z0-9]+)+\b"  # ENG-OPS
)


def identifiers(text: str) -> list[str]:
    """Codes in a question: words mixing letters and digits, or upper-case hyphenated codes."""
    return list(dict.fromkeys(m[0] for m in _IDENTIFIER.finditer(text)))[:8]


@dataclass(frozen=True)
class Reader:
    """Who is asking, and where: `channel_id` None means a direct message."""

    tenant_id: int
    user_id: int
    platform: str
    channel_id: str | None
    public_departments: tuple[str, ...]


@dataclass(frozen=True)
class ChunkHit:
    chunk_id: int
    document_id: int
    title: str
    section_title: str | None
    department: str
    source_path: str
    content: str
    score: float
    similarity: float
    text_match: bool
    # The share of the question's keyword weight (BM25 over IDF) this passage covers, 0–1.
    keyword_coverage: float = 0.0


@dataclass(frozen=True)
class Timed[T]:
    items: list[T]
    milliseconds: float


# One round trip sets everything a search needs for the rest of its transaction: the reader's
# rights for row-level security, the role (when this connection may take it) and the planner's
# and HNSW's options; it returns what the reader may read here (their scope). $1 tenant, $2 user,
# $3 public departments, $4 platform, $5 channel (NULL in a DM), $6 ef_search over the whole
# corpus, $7 over part of it.
_ENTER_READER = """
WITH rights AS (
    SELECT u.is_super_user,
           u.department_access || $3::text[] AS user_departments,
           (SELECT coalesce(array_agg(cc.department), '{}') FROM channel_clearances cc
            WHERE cc.tenant_id = $1 AND cc.platform = $4 AND cc.channel_id = $5)
             || $3::text[] AS channel_departments
    FROM users u WHERE u.tenant_id = $1 AND u.id = $2 AND u.is_active
),
settings AS (
    SELECT set_config('deskmate.tenant_id', $1::bigint::text, true),
           set_config('deskmate.user_id', $2::bigint::text, true),
           set_config('deskmate.super_user',
                      CASE WHEN (SELECT is_super_user FROM rights) THEN 'on' ELSE 'off' END, true),
           set_config('deskmate.user_departments',
                      coalesce(array_to_string((SELECT user_departments FROM rights), ','), ''),
                      true),
           set_config('deskmate.in_channel', CASE WHEN $5::text IS NULL THEN 'off' ELSE 'on' END,
                      true),
           set_config('deskmate.channel_departments',
                      coalesce(array_to_string((SELECT channel_departments FROM rights), ','),
                               ''), true),
           -- relaxed_order lets HNSW keep scanning past filtered-out rows; by_meaning re-sorts.
           set_config('hnsw.iterative_scan', 'relaxed_order', true),
           -- Plan the search for this reader's values: a generic plan cannot know whether the
           -- reader may read a few chunks (exact scan) or all of them (HNSW).
           set_config('plan_cache_mode', 'force_custom_plan', true)
),
-- The departments whose chunks this reader may read here (NULL: every one, a super user) and
-- how many chunks they hold: the search gets them as parameters, so its plan is made knowing
-- whether an exact scan of a few thousand rows or HNSW over most of the corpus is ahead.
scope AS (
    SELECT departments,
           CASE WHEN departments IS NULL
                THEN (SELECT coalesce(max(k.chunks), 0) FROM keyword_corpus k
                      WHERE k.tenant_id = $1)
                ELSE (SELECT coalesce(sum(d.chunks), 0) FROM department_sizes d
                      WHERE d.tenant_id = $1 AND d.department = ANY (departments)) END AS chunks
    FROM (SELECT CASE WHEN r.is_super_user AND $5::text IS NULL THEN NULL ELSE
                 own.departments
                 || ARRAY(SELECT DISTINCT doc.department FROM documents doc
                          WHERE doc.tenant_id = $1 AND doc.department_access && own.departments)
                 END AS departments
          FROM rights r,
               LATERAL (SELECT CASE
                   WHEN r.is_super_user THEN r.channel_departments
                   ELSE ARRAY(SELECT u FROM unnest(r.user_departments) AS u
                              WHERE $5::text IS NULL OR u = ANY (r.channel_departments))
                   END AS departments) own) readable
)
SELECT (SELECT count(*) FROM settings) = 1
       AND CASE WHEN coalesce((SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles
                               WHERE rolname = 'deskmate_reader'), false)
                -- SET LOCAL ROLE in the same round trip; it takes effect from the next statement.
                THEN set_config('role', 'deskmate_reader', true) IS NOT NULL
                ELSE false END AS entered,
       -- Known only now that the scope is: the whole corpus, or a part of it.
       set_config('hnsw.ef_search', CASE WHEN (SELECT departments FROM scope) IS NULL
                                         THEN $6::int ELSE $7::int END::text, true) AS ef_search,
       (SELECT departments FROM scope) AS departments,
       coalesce((SELECT chunks FROM scope), 0) AS chunks
"""

_CHUNKS_TEMPLATE = f"""
WITH reader AS MATERIALIZED (
    SELECT u.is_super_user, u.department_access || $3::text[] AS departments
    FROM users u WHERE u.tenant_id = $1 AND u.id = $2 AND u.is_active
),
channel AS MATERIALIZED (
    SELECT coalesce(array_agg(cc.department), '{{}}') || $3::text[] AS departments
    FROM channel_clearances cc
    WHERE cc.tenant_id = $1 AND cc.platform = $4 AND cc.channel_id = $5
),
readable AS NOT MATERIALIZED (
    SELECT c.* FROM document_chunks c
    WHERE c.tenant_id = $1
      AND ((SELECT is_super_user FROM reader)
           OR c.department = ANY ((SELECT departments FROM reader)::text[])
           OR c.department_access && (SELECT departments FROM reader))
      AND ($5::text IS NULL
           OR c.department = ANY ((SELECT departments FROM channel)::text[])
           OR c.department_access && (SELECT departments FROM channel))
),
scoped AS MATERIALIZED (
    -- Small readable sets ($16 the departments the reader may read here, NULL for all; $17 their
    -- chunks, both from the reader's entry): every readable chunk of those departments, read once
    -- through the department index with its distance to the question. Both arms use it: the exact
    -- nearest neighbours come from it, and the keyword arm checks its candidates against it instead
    -- of looking each up by primary key (a 1 % reader can read few of the keyword candidates, so
    -- that walked all 5,000 of them: one random heap page each, mostly outside the reader's
    -- departments and not in cache). As parameters, not a subquery, they are known when the search
    -- is planned: at a million chunks a subquery's unknown department list was planned as a
    -- whole-table scan.
    SELECT id, {{scoped_distance}} AS distance FROM readable
    WHERE $16::text[] IS NOT NULL AND $17 <= {EXACT_SCAN_LIMIT}
      AND department = ANY ($16::text[])
),
by_meaning AS (
    -- Small readable sets: an exact scan of `scoped`, exact and cheaper than making HNSW wade
    -- through everyone else's chunks. Large ones: HNSW with iterative scans.
    SELECT id, row_number() OVER (ORDER BY distance) AS rank, 1 - distance AS similarity
    FROM ((SELECT id, distance FROM scoped ORDER BY distance LIMIT $8)
          UNION ALL
          (SELECT id, embedding <=> $6 AS distance FROM readable
           WHERE NOT ($16::text[] IS NOT NULL AND $17 <= {EXACT_SCAN_LIMIT})
           ORDER BY embedding <=> $6 LIMIT $8)) nearest
    WHERE 1 - distance >= $9
),
-- The question's terms, with BM25's inverse document frequency, rarest first; common terms are
-- dropped once the postings read would pass the budget ($12), but the rarest is always kept.
-- A code the person typed (SKU-TR-4417) is its own term: the first lexeme of its tsvector.
query_terms AS MATERIALIZED (
    SELECT l.id, l.df, l.lexeme = ANY (codes.lexemes) AS is_code,
           ln(1 + (k.chunks - l.df + 0.5) / (l.df + 0.5)) AS idf,
           k.total_terms::float8 / greatest(k.chunks, 1) AS avg_length,
           sum(l.df) OVER (ORDER BY l.df, l.id) - l.df AS read_before
    FROM keyword_corpus k
    JOIN lexicon l ON l.tenant_id = k.tenant_id,
         (SELECT coalesce(array_agg(v.lexeme), '{{}}') AS lexemes
          FROM unnest($11::text[]) AS code, unnest(to_tsvector('english', code)) AS v
          WHERE 1 = ANY (v.positions)) AS codes
    WHERE k.tenant_id = $1 AND l.df > 0
      AND l.lexeme IN (SELECT v.lexeme FROM unnest(to_tsvector('english', $7)) AS v
                       UNION SELECT unnest(codes.lexemes))
),
-- Everything the question's known words weigh: the IDF of each of its terms the corpus holds.
-- A passage's score over this is the share of the question it covers, which tells "about
-- this" from "shares a common word with it" (bot/relevance.py draws the line).
question_weight AS MATERIALIZED (
    SELECT coalesce(sum(idf), 0) AS weight FROM query_terms
),
chosen_terms AS MATERIALIZED (
    -- How many postings of each term to read: all of a rare term's, only the best (highest term
    -- frequency) of the one that reaches the budget, none of the commoner ones. Codes: all.
    SELECT *, CASE WHEN is_code THEN df ELSE least(df, $12 - read_before) END AS reads
    FROM query_terms WHERE read_before < $12 OR is_code
),
-- BM25 from the postings alone (each carries its chunk's length); only the best-scored chunks
-- are then fetched, in score order, until enough readable ones are found.
keyword_scores AS MATERIALIZED (
    SELECT p.chunk_id AS id,
           sum(t.idf * p.tf / (p.tf + {BM25_K1} * (1 - {BM25_B}
                                                    + {BM25_B} * p.length / t.avg_length)))
               AS score,
           sum(t.idf * p.tf / (p.tf + {BM25_K1} * (1 - {BM25_B}
                                                    + {BM25_B} * p.length / t.avg_length)))
               FILTER (WHERE t.is_code) AS code_score
    FROM chosen_terms t
    CROSS JOIN LATERAL (SELECT chunk_id, tf, length FROM chunk_postings
                        WHERE term_id = t.id ORDER BY tf DESC LIMIT t.reads) p
    GROUP BY p.chunk_id
),
-- The best-scored readable candidates: for a small readable set, those in `scoped`; else best
-- score first, each candidate looked up by primary key (OFFSET 0 keeps it a lookup: as a join
-- the planner would rather scan every readable chunk) until $8 readable ones are found.
by_words AS (
    SELECT id, score, row_number() OVER (ORDER BY score DESC, id) AS rank
    FROM ((SELECT k.id, k.score FROM keyword_scores k JOIN scoped s ON s.id = k.id
           ORDER BY k.score DESC, k.id LIMIT $8)
          UNION ALL
          (SELECT k.id, k.score
           FROM (SELECT id, score FROM keyword_scores ORDER BY score DESC, id) k
           CROSS JOIN LATERAL (SELECT 1 FROM readable r WHERE r.id = k.id OFFSET 0) readable_one
           WHERE NOT ($16::text[] IS NOT NULL AND $17 <= {EXACT_SCAN_LIMIT})
           LIMIT $8)) matching
),
by_identifiers AS (
    SELECT id, row_number() OVER (ORDER BY code_score DESC, id) AS rank
    FROM ((SELECT k.id, k.code_score FROM keyword_scores k JOIN scoped s ON s.id = k.id
           WHERE k.code_score > 0
           ORDER BY k.code_score DESC, k.id LIMIT $8)
          UNION ALL
          (SELECT k.id, k.code_score
           FROM (SELECT id, code_score FROM keyword_scores WHERE code_score > 0
                 ORDER BY code_score DESC, id) k
           CROSS JOIN LATERAL (SELECT 1 FROM readable r WHERE r.id = k.id OFFSET 0) readable_one
           WHERE NOT ($16::text[] IS NOT NULL AND $17 <= {EXACT_SCAN_LIMIT})
           LIMIT $8)) matching
),
-- How much keywords count in the fused score. A question naming a code: fully ($14). Else when the
-- best keyword match covers at least $13 of the question: $14 times that coverage to the power
-- $18 (0: fully; with minilm 2, so a passage matching a third of the question's keywords counts
-- them at a ninth of the weight of one matching all). Below $13: $15 (with a semantic embedder
-- 0: a question in other words than the documents' is ranked by meaning alone; BM25 would only
-- offer passages that share its incidental words).
keyword_weight AS MATERIALIZED (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM by_identifiers) THEN $14::float8
                WHEN best.coverage >= $13 THEN $14::float8 * power(best.coverage, $18::float8)
                ELSE $15::float8 END AS weight
    FROM (SELECT coalesce((SELECT max(w.score) FROM by_words w)
                          / nullif((SELECT weight FROM question_weight), 0), 0) AS coverage) best
),
{{fusion}}
SELECT c.id AS chunk_id, c.document_id, d.title, c.section_title, c.department, d.source_path,
       c.content, ({{score}})::float8 AS score, f.text_match,
       (1 - (c.embedding <=> $6))::float8 AS similarity, f.coverage::float8 AS keyword_coverage
FROM fused f
JOIN document_chunks c ON c.id = f.id
JOIN documents d ON d.id = c.document_id AND d.is_active
ORDER BY score DESC, c.id
LIMIT $10
"""

# Each arm's ranked list and its weight in the fusion; `from_words` marks keyword matches.
ARMS = {
    "meaning": "SELECT id, rank, 1.0 AS weight, false AS from_words FROM by_meaning",
    "words": "SELECT id, rank, 1.0 AS weight, true AS from_words FROM by_words",
    "identifiers": (
        f"SELECT id, rank, {IDENTIFIER_WEIGHT} AS weight, true AS from_words FROM by_identifiers"
    ),
}
FUSED = tuple(ARMS)


# Production: the candidates of every arm, ranked by similarity plus the keyword weight times
# the share of the question's keywords they cover (a calibrated score per passage, unlike a
# rank: tuned in bench/quality.py, where reciprocal-rank fusion fell below each arm alone).
_SCORED = """fused AS (
    SELECT r.id, bool_or(r.from_words) AS text_match,
           coalesce(max(k.score) / nullif((SELECT weight FROM question_weight), 0), 0) AS coverage
    FROM ({arms}) r LEFT JOIN keyword_scores k ON k.id = r.id
    GROUP BY r.id
)"""
_SCORE = "(1 - (c.embedding <=> $6)) + (SELECT weight FROM keyword_weight) * f.coverage"
# Evaluation of some arms alone: their reciprocal-rank fusion, so one arm gives its own order.
_RANKED = f"""fused AS (
    SELECT r.id, r.score, r.text_match,
           coalesce((SELECT sum(t.idf * p.tf
                                / (p.tf + {BM25_K1} * (1 - {BM25_B}
                                                       + {BM25_B} * p.length / t.avg_length)))
                     FROM chosen_terms t JOIN chunk_postings p ON p.term_id = t.id
                     WHERE p.chunk_id = r.id)
                    / nullif((SELECT weight FROM question_weight), 0), 0) AS coverage
    FROM (SELECT id, sum(weight / ({RRF_K} + rank)) AS score, bool_or(from_words) AS text_match
          FROM ({{arms}}) ranked GROUP BY id) r
)"""


def chunks_sql(arms: tuple[str, ...] = FUSED) -> str:
    """The chunk search over these arms: the production fusion for all of them, their
    reciprocal-rank fusion for a subset (one arm alone gives that arm's own ranking)."""
    fusion, score = (_SCORED, _SCORE) if arms == FUSED else (_RANKED, "f.score")
    listed = "\n          UNION ALL ".join(ARMS[a] for a in arms)
    # Without the meaning arm, `scoped` only tells which chunks are readable: no distances.
    distance = "embedding <=> $6" if "meaning" in arms else "NULL::float8"
    return (
        _CHUNKS_TEMPLATE.replace("{fusion}", fusion.replace("{arms}", listed))
        .replace("{score}", score)
        .replace("{scoped_distance}", distance)
    )


_CHUNKS = chunks_sql()

_MEMORIES = """
SELECT id, user_id, content, importance, source_type, tags, created_at, updated_at,
       similarity, 0.7 * similarity + 0.3 * importance AS relevance
FROM (
    SELECT m.*, 1 - (m.embedding <=> $3) AS similarity
    FROM memories m
    JOIN users u ON u.id = m.user_id AND u.is_active
    WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.is_active
) scored
WHERE similarity >= $5
ORDER BY relevance DESC, id
LIMIT $4
"""


async def _enter_reader_role(
    conn: asyncpg.Connection, reader: Reader, ef_search: int = 40
) -> Scope:
    """Inside a transaction, in one round trip: this reader's rights in settings, the
    deskmate_reader role when this connection may take it, and what the reader may read."""
    row = await conn.fetchrow(
        _ENTER_READER, reader.tenant_id, reader.user_id, list(reader.public_departments),
        reader.platform, reader.channel_id, max(HNSW_EF_SEARCH, int(ef_search)),
        max(HNSW_EF_SEARCH_FILTERED, int(ef_search)),
    )  # fmt: skip
    departments = row["departments"]
    return Scope(None if departments is None else tuple(departments), int(row["chunks"]))


async def has_reader_role(conn: asyncpg.Connection) -> bool:
    """Whether this connection may act as deskmate_reader (row-level security in force)."""
    return bool(
        await conn.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", READER_ROLE)
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", READER_ROLE)
        else False
    )


@dataclass(frozen=True)
class Scope:
    """What a reader may read where they ask: departments (None: all) and their chunk count."""

    departments: tuple[str, ...] | None = None
    chunks: int = 0


@dataclass(frozen=True)
class Fusion:
    """How the arms' candidates are ranked together: similarity + weight × keyword coverage.
    The weight is `on_topic` when the question names a code; else, when the best keyword match
    covers at least `threshold` of the question, `on_topic` × that coverage ** `power` (power 0:
    `on_topic` itself), and `off_topic` below it. Per embedder: bot/relevance.py."""

    threshold: float = 0.35
    on_topic: float = 2.0
    off_topic: float = 0.0
    power: float = 0.0  # on topic, `on_topic` × the best match's coverage to this power


def chunk_arguments(
    reader: Reader,
    embedding: np.ndarray,
    text: str,
    limit: int,
    candidates: int,
    min_similarity: float,
    fusion: Fusion = Fusion(),
    scope: Scope = Scope(),
) -> tuple[object, ...]:
    """The parameters of the chunk search, in the order its SQL numbers them (`scope` as
    `_enter_reader_role` found it)."""
    departments = None if scope.departments is None else list(scope.departments)
    return (
        reader.tenant_id, reader.user_id, list(reader.public_departments), reader.platform,
        reader.channel_id, embedding, text, candidates, min_similarity, limit, identifiers(text),
        POSTINGS_BUDGET, fusion.threshold, fusion.on_topic, fusion.off_topic, departments,
        scope.chunks, fusion.power,
    )  # fmt: skip


async def search(
    conn: asyncpg.Connection,
    reader: Reader,
    embedding: np.ndarray,
    text: str,
    *,
    limit: int = 6,
    candidates: int = 40,
    min_similarity: float = 0.0,
    memory_limit: int = 0,
    memory_min_similarity: float = 0.0,
    arms: tuple[str, ...] = FUSED,
    fusion: Fusion = Fusion(),
) -> tuple[Timed[ChunkHit], Timed[ScoredMemory] | None]:
    """The chunks this reader may read here and, when `memory_limit` > 0, their own memories:
    one transaction, the reader's rights and role entered once (BEGIN, enter, chunks,
    memories, COMMIT)."""
    async with conn.transaction():
        scope = await _enter_reader_role(conn, reader, candidates)
        chunks = await _chunks(conn, reader, embedding, text, limit, candidates, min_similarity,
                               arms, fusion, scope)  # fmt: skip
        memories = None
        if memory_limit > 0:
            memories = await _memories(conn, reader, embedding, memory_limit,
                                       memory_min_similarity)  # fmt: skip
    return chunks, memories


async def search_chunks(
    conn: asyncpg.Connection,
    reader: Reader,
    embedding: np.ndarray,
    text: str,
    *,
    limit: int = 6,
    candidates: int = 40,
    min_similarity: float = 0.0,
    arms: tuple[str, ...] = FUSED,
    fusion: Fusion = Fusion(),
) -> Timed[ChunkHit]:
    """The chunks this reader may read here, best first: nearest by meaning (HNSW with
    iterative scans, so a filter that admits few rows still yields `candidates`) fused with
    BM25 over the keyword postings and the codes the text names: similarity plus `fusion`'s
    weight times the share of the question's keywords a passage covers. `arms` picks a subset
    (for evaluation, ranked by reciprocal rank: one arm alone is that arm's ranking)."""
    found, _ = await search(conn, reader, embedding, text, limit=limit, candidates=candidates,
                            min_similarity=min_similarity, arms=arms, fusion=fusion)  # fmt: skip
    return found


async def search_memories(
    conn: asyncpg.Connection,
    reader: Reader,
    embedding: np.ndarray,
    *,
    limit: int = 5,
    min_similarity: float = 0.0,
) -> Timed[ScoredMemory]:
    """The reader's own memories ranked by 0.7 × similarity + 0.3 × importance."""
    async with conn.transaction():
        await _enter_reader_role(conn, reader)
        return await _memories(conn, reader, embedding, limit, min_similarity)


async def _chunks(
    conn: asyncpg.Connection,
    reader: Reader,
    embedding: np.ndarray,
    text: str,
    limit: int,
    candidates: int,
    min_similarity: float,
    arms: tuple[str, ...],
    fusion: Fusion,
    scope: Scope,
) -> Timed[ChunkHit]:
    started = time.perf_counter()
    rows = await conn.fetch(
        _CHUNKS if arms == FUSED else chunks_sql(arms),
        *chunk_arguments(reader, embedding, text, limit, candidates, min_similarity, fusion,
                         scope),
    )  # fmt: skip
    return Timed([ChunkHit(**dict(r)) for r in rows], (time.perf_counter() - started) * 1000)


async def _memories(
    conn: asyncpg.Connection,
    reader: Reader,
    embedding: np.ndarray,
    limit: int,
    min_similarity: float,
) -> Timed[ScoredMemory]:
    started = time.perf_counter()
    rows = await conn.fetch(
        _MEMORIES, reader.tenant_id, reader.user_id, embedding, limit, min_similarity
    )
    scored = [
        ScoredMemory(
            Memory(
                id=r["id"], user_id=r["user_id"], content=r["content"],
                importance=float(r["importance"]), source_type=r["source_type"],
                tags=tuple(r["tags"]), created_at=r["created_at"], updated_at=r["updated_at"],
            ),
            similarity=float(r["similarity"]),
            relevance=float(r["relevance"]),
        )
        for r in rows
    ]  # fmt: skip
    return Timed(scored, (time.perf_counter() - started) * 1000)
