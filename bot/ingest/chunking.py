"""Cut a parsed document into passages of about 300–500 tokens that follow its headings.

Token counts are estimated, not computed with a model's tokenizer (each embedding provider has its
own): `max(words × 1.3, characters / 4)`. Both are the usual rules of thumb for English; taking the
larger errs on the side of smaller chunks for dense text (numbers, URLs, code), so a chunk never
surprises a provider's input limit.

Rules, in order:
- a chunk never spans two top-level sections (two H2s of a handbook titled by its H1);
- a section longer than MAX_TOKENS is cut into near-equal pieces at paragraph boundaries, then at
  sentence boundaries, then (a single endless sentence) at word boundaries;
- a piece smaller than TAIL_TOKENS left at the end of a section joins the piece before it;
- consecutive small sections under the same top-level heading share a chunk while it stays under
  MAX_TOKENS; the chunk is titled by their common heading path and keeps their own headings as
  lines in its text, so nothing that named the text is lost.
No overlap between chunks: sections already give each chunk its context, and the section title is
embedded with every chunk.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import groupby

from bot.ingest.parsed import ParsedDocument, Section

MIN_TOKENS = 300
MAX_TOKENS = 500
TAIL_TOKENS = 100

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


@dataclass(frozen=True)
class Chunk:
    chunk_index: int
    section_title: str | None
    content: str
    token_count: int


@dataclass(frozen=True)
class _Piece:
    """Text on its way to becoming a chunk: the (heading path, text) parts it is made of."""

    parts: tuple[tuple[tuple[str, ...], str], ...]
    tokens: int
    whole_section: bool


def estimate_tokens(text: str) -> int:
    """Estimated token count of `text` (see the module docstring for the rule)."""
    return math.ceil(max(len(text.split()) * 1.3, len(text) / 4))


def chunk_document(document: ParsedDocument) -> list[Chunk]:
    """The document's chunks in reading order, numbered from 0. Deterministic: the same document
    always gives the same chunks."""
    chunks: list[Chunk] = []
    for _, group in groupby(document.sections, key=lambda s: s.heading_path[:1]):
        pieces = [piece for section in group for piece in _split_section(section)]
        for piece in _merge_small_sections(pieces):
            title, content = _render(piece.parts)
            chunks.append(Chunk(len(chunks), title, content, estimate_tokens(content)))
    return chunks


def _split_section(section: Section) -> list[_Piece]:
    """One section as pieces of at most MAX_TOKENS (bar a short tail), balanced in size."""
    text = section.text.strip()
    total = estimate_tokens(text)
    if total <= MAX_TOKENS:
        return [_Piece(((section.heading_path, text),), total, whole_section=True)]
    # Aim at equal parts: 1,100 tokens become 3 × ~370, not 500 + 500 + 100.
    target = total / math.ceil(total / MAX_TOKENS)
    groups: list[list[_Unit]] = [[]]
    for unit in _units(text):
        if groups[-1] and estimate_tokens(_join([*groups[-1], unit])) > MAX_TOKENS:
            groups.append([])
        groups[-1].append(unit)
        if estimate_tokens(_join(groups[-1])) >= target:
            groups.append([])
    groups = [g for g in groups if g]
    if len(groups) > 1 and estimate_tokens(_join(groups[-1])) < TAIL_TOKENS:
        groups[-2:] = [groups[-2] + groups[-1]]
    path = section.heading_path
    texts = [_join(g) for g in groups]
    return [_Piece(((path, t),), estimate_tokens(t), whole_section=False) for t in texts]


# A unit of text and the separator that goes before it when it follows another unit: a blank
# line between paragraphs, a space between sentences of one paragraph.
_Unit = tuple[str, str]


def _units(text: str) -> list[_Unit]:
    """The smallest pieces a section may be cut into: paragraphs, or sentences of a paragraph too
    long for one chunk, or word runs of a sentence that is itself too long."""
    units: list[_Unit] = []
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if estimate_tokens(paragraph) <= MAX_TOKENS:
            units.append(("\n\n", paragraph))
            continue
        pieces: list[str] = []
        for sentence in _SENTENCE_END.split(paragraph):
            fits = estimate_tokens(sentence) <= MAX_TOKENS
            pieces.extend([sentence] if fits else _word_runs(sentence))
        units += [("\n\n" if i == 0 else " ", piece) for i, piece in enumerate(pieces)]
    return units


def _word_runs(sentence: str) -> list[str]:
    words = sentence.split()
    # 1.3 tokens per word, with room for long words: a run stays under MAX_TOKENS.
    size = max(1, int(MAX_TOKENS / 1.3 * 0.8))
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


def _join(units: list[_Unit]) -> str:
    return "".join(text if i == 0 else sep + text for i, (sep, text) in enumerate(units))


def _merge_small_sections(pieces: list[_Piece]) -> list[_Piece]:
    """Let whole small sections share a chunk with the next whole section while both fit."""
    merged: list[_Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.whole_section
            and piece.whole_section
            and last.tokens < MIN_TOKENS
            and last.tokens + piece.tokens <= MAX_TOKENS
        ):
            parts = last.parts + piece.parts
            merged[-1] = _Piece(parts, estimate_tokens(_render(parts)[1]), True)
        else:
            merged.append(piece)
    return merged


def _render(parts: tuple[tuple[tuple[str, ...], str], ...]) -> tuple[str | None, str]:
    """(section title, content): one part as it is; several under their common heading path,
    each starting with the rest of its own path."""
    if len(parts) == 1:
        path, text = parts[0]
        return " > ".join(path) or None, text
    common = _common_prefix([path for path, _ in parts])
    texts = []
    for path, text in parts:
        own = " > ".join(path[len(common) :])
        texts.append(f"{own}\n{text}" if own else text)
    return " > ".join(common) or None, "\n\n".join(texts)


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    prefix = paths[0]
    for path in paths[1:]:
        length = 0
        while length < min(len(prefix), len(path)) and prefix[length] == path[length]:
            length += 1
        prefix = prefix[:length]
    return prefix
