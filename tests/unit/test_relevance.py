"""The relevance gate and per-document diversity of the passages put in a prompt."""

from __future__ import annotations

from bot.relevance import RelevanceGate, diverse
from bot.settings import load_settings
from storage.retrieval import ChunkHit


def hit(chunk: int, document: int, similarity: float = 0.5, coverage: float = 0.0) -> ChunkHit:
    return ChunkHit(
        chunk_id=chunk, document_id=document, title=f"Doc {document}", section_title=None,
        department="general", source_path=f"/d/{document}.md", content="text", score=1.0,
        similarity=similarity, text_match=coverage > 0, keyword_coverage=coverage,
    )  # fmt: skip


def test_at_most_two_passages_of_one_document_keep_their_order() -> None:
    hits = [hit(1, 10), hit(2, 10), hit(3, 10), hit(4, 20), hit(5, 10), hit(6, 30)]
    assert [h.chunk_id for h in diverse(hits, limit=4)] == [1, 2, 4, 6]
    assert [h.chunk_id for h in diverse(hits, limit=2)] == [1, 2]


def test_the_gate_passes_close_meaning_or_a_strong_keyword_match_only() -> None:
    gate = RelevanceGate(load_settings(env_file=None, embedding_provider="wordllama"))
    far, close, covered = hit(1, 1, 0.05, 0.3), hit(2, 2, 0.25, 0.0), hit(3, 3, 0.05, 0.9)
    assert [h.chunk_id for h in gate.passages([far, close, covered])] == [2, 3]
    lexical = RelevanceGate(load_settings(env_file=None, embedding_provider="hash"))
    assert [h.chunk_id for h in lexical.passages([far, close])] == [1]  # keywords lead
    assert gate.fusion.off_topic == 0.0 and lexical.fusion.off_topic > 0


def test_minilm_has_its_own_gate_above_its_unrelated_similarities() -> None:
    """minilm gives unrelated text similarities of 0.2–0.3: wordllama's 0.20 would let a
    question the documents do not answer quote them anyway."""
    settings = load_settings(env_file=None, embedding_provider="minilm", embedding_dimension=384)
    gate = RelevanceGate(settings)
    unrelated, related = hit(1, 1, 0.27, 0.2), hit(2, 2, 0.45, 0.0)
    assert [h.chunk_id for h in gate.passages([unrelated, related])] == [2]
    assert gate.similarity == 0.30 and gate.fusion.off_topic == 0.0
