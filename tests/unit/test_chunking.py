"""Chunking: sizes within bounds, headings respected, section titles kept, deterministic."""

from __future__ import annotations

import itertools

from bot.ingest.chunking import (
    MAX_TOKENS,
    TAIL_TOKENS,
    Chunk,
    chunk_document,
    estimate_tokens,
)
from bot.ingest.parsed import ParsedDocument, Section

_TEXT = (
    "employees may request parental leave of up to sixteen weeks with full pay after "
    "six months of service and must tell their manager eight weeks before"
)
_WORDS = itertools.cycle(_TEXT.split())


def sentences(count: int, words: int = 15) -> str:
    """`count` sentences of `words` words (≈ 20 tokens each at 15 words)."""
    return " ".join(
        " ".join(next(_WORDS) for _ in range(words)).capitalize() + "." for _ in range(count)
    )


def paragraphs(count: int, sentences_each: int = 5) -> str:
    return "\n\n".join(sentences(sentences_each) for _ in range(count))


def document(*sections: tuple[tuple[str, ...], str]) -> ParsedDocument:
    return ParsedDocument("Handbook", [Section(path, text) for path, text in sections], "text/md")


def test_token_estimate_takes_the_larger_rule() -> None:
    assert estimate_tokens("one two three four") == 6  # 4 words × 1.3 → 5.2 → 6
    assert estimate_tokens("x" * 400) == 100  # one "word" of 400 characters → 400 / 4


def test_long_section_is_cut_into_balanced_chunks_within_bounds() -> None:
    doc = document((("Leave",), paragraphs(30)))  # ≈ 3,000 tokens
    chunks = chunk_document(doc)
    assert len(chunks) >= 6
    for chunk in chunks:
        assert chunk.section_title == "Leave"
        assert TAIL_TOKENS <= chunk.token_count <= MAX_TOKENS
        assert chunk.token_count == estimate_tokens(chunk.content)
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    # Cut at paragraph boundaries: every chunk starts and ends a paragraph, none is lost.
    original = doc.sections[0].text.split("\n\n")
    assert [p for c in chunks for p in c.content.split("\n\n")] == original


def test_endless_paragraph_is_cut_at_sentences_then_words() -> None:
    one_paragraph = sentences(80)
    chunks = chunk_document(document((("Policy",), one_paragraph)))
    assert all(c.token_count <= MAX_TOKENS for c in chunks)
    assert all(c.content.endswith(".") for c in chunks)
    assert " ".join(c.content for c in chunks) == one_paragraph

    no_full_stop = " ".join(["word"] * 3000)
    chunks = chunk_document(document((("Policy",), no_full_stop)))
    assert all(c.token_count <= MAX_TOKENS for c in chunks)
    assert " ".join(c.content for c in chunks).split() == no_full_stop.split()


def test_top_level_sections_never_share_a_chunk() -> None:
    chunks = chunk_document(
        document(
            (("Leave",), sentences(2)),
            (("Expenses",), sentences(2)),
            (("Travel",), sentences(2)),
        )
    )
    assert [c.section_title for c in chunks] == ["Leave", "Expenses", "Travel"]


def test_small_subsections_share_a_chunk_under_their_common_heading() -> None:
    chunks = chunk_document(
        document(
            (("Leave", "Parental leave"), "Sixteen weeks, full pay."),
            (("Leave", "Sick leave"), "Call your manager before nine."),
            (("Expenses",), "Submit receipts within 30 days."),
        )
    )
    assert [c.section_title for c in chunks] == ["Leave", "Expenses"]
    assert chunks[0].content == (
        "Parental leave\nSixteen weeks, full pay.\n\nSick leave\nCall your manager before nine."
    )


def test_large_subsections_keep_their_own_title() -> None:
    chunks = chunk_document(
        document(
            (("Leave", "Parental leave"), paragraphs(4)),  # ≈ 400 tokens: a chunk of its own
            (("Leave", "Sick leave"), paragraphs(4)),
        )
    )
    assert [c.section_title for c in chunks] == ["Leave > Parental leave", "Leave > Sick leave"]


def test_a_tiny_tail_joins_the_previous_chunk_of_its_section() -> None:
    # Two paragraphs of 494 tokens and a one-sentence tail that fits next to neither.
    paragraph = " ".join(["word"] * 380) + "."
    assert estimate_tokens(paragraph) == 494
    text = "\n\n".join([paragraph, paragraph, "Ask HR for the form."])
    chunks = chunk_document(document((("Leave",), text)))
    assert [c.content for c in chunks] == [paragraph, f"{paragraph}\n\nAsk HR for the form."]


def test_text_before_the_first_heading_has_no_section_title() -> None:
    chunks = chunk_document(document(((), "Welcome."), (("Leave",), "Rules.")))
    assert [c.section_title for c in chunks] == [None, "Leave"]


def test_chunking_is_deterministic() -> None:
    doc = document(
        ((), sentences(3)),
        (("Leave", "Parental"), paragraphs(12)),
        (("Leave", "Sick"), sentences(4)),
        (("Expenses",), paragraphs(3)),
    )
    first: list[Chunk] = chunk_document(doc)
    assert chunk_document(doc) == first
    assert len({c.chunk_index for c in first}) == len(first)
