"""Check the judged retrieval evaluation set in this folder (standard library only).

Run from anywhere:  python bench/data/eval/check.py

What it checks, exiting 1 and listing every violation if anything fails:
- questions.json is a list of {"id", "question", "kind", "relevant"} with unique ids and questions;
- every relevant (path, section) exists: "demo/..." is relative to bot/demo/documents/, "corpus/..."
  to bench/data/eval/corpus/, and "section" is the exact text of a `## ` heading in that file;
- "paraphrase" questions share no content word with any relevant section (its text, including
  `###` subsections, its heading and the document's `# ` title). Content words are lowercase
  letter/digit tokens of 3+ characters that are not stopwords; two words count as the same when
  their crude stems are equal or when they share their first 5 letters;
- "identifier" questions name a code or number (a token with a digit, or an upper-case code such
  as HR-F12) that appears verbatim in a relevant section;
- at least 180 questions, at least one third of them "paraphrase";
- the corpus: at least 48 documents in at least 8 departments, each with one `# ` title and 4-8
  `## ` sections of 40-150 words; every document (demo and corpus) has at least one question.

Counts per kind, per source and per department are printed either way.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SOURCES = {"demo": ROOT / "bot" / "demo" / "documents", "corpus": HERE / "corpus"}
KINDS = ("lexical", "paraphrase", "identifier")
MIN_QUESTIONS = 180
MIN_DOCUMENTS = 48
MIN_DEPARTMENTS = 8
SECTIONS_PER_DOCUMENT = (4, 8)
WORDS_PER_SECTION = (40, 150)

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "nor",
        "so",
        "yet",
        "if",
        "then",
        "else",
        "than",
        "that",
        "this",
        "these",
        "those",
        "there",
        "here",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "whether",
        "whatever",
        "whenever",
        "wherever",
        "however",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "done",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "need",
        "needs",
        "needed",
        "ought",
        "i",
        "me",
        "my",
        "mine",
        "myself",
        "we",
        "us",
        "our",
        "ours",
        "ourselves",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "her",
        "hers",
        "herself",
        "it",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "one",
        "ones",
        "someone",
        "somebody",
        "something",
        "anyone",
        "anybody",
        "anything",
        "everyone",
        "everybody",
        "everything",
        "nobody",
        "nothing",
        "no",
        "not",
        "none",
        "nor",
        "only",
        "own",
        "same",
        "other",
        "others",
        "another",
        "such",
        "about",
        "above",
        "across",
        "after",
        "against",
        "along",
        "among",
        "amongst",
        "around",
        "as",
        "at",
        "before",
        "behind",
        "below",
        "beneath",
        "beside",
        "besides",
        "between",
        "beyond",
        "by",
        "down",
        "during",
        "except",
        "for",
        "from",
        "in",
        "inside",
        "into",
        "near",
        "of",
        "off",
        "on",
        "onto",
        "out",
        "outside",
        "over",
        "past",
        "per",
        "since",
        "through",
        "throughout",
        "till",
        "to",
        "toward",
        "towards",
        "under",
        "underneath",
        "until",
        "unto",
        "up",
        "upon",
        "via",
        "with",
        "within",
        "without",
        "all",
        "any",
        "both",
        "each",
        "either",
        "every",
        "few",
        "more",
        "most",
        "less",
        "least",
        "much",
        "many",
        "several",
        "some",
        "enough",
        "also",
        "just",
        "very",
        "too",
        "really",
        "quite",
        "rather",
        "still",
        "already",
        "again",
        "ever",
        "never",
        "always",
        "often",
        "sometimes",
        "usually",
        "now",
        "soon",
        "once",
        "twice",
        "there's",
        "it's",
        "i'm",
        "i've",
        "i'd",
        "i'll",
        "we're",
        "we've",
        "you're",
        "long",
        "get",
        "gets",
        "got",
        "getting",
        "go",
        "goes",
        "going",
        "gone",
        "went",
        "make",
        "makes",
        "made",
        "making",
        "take",
        "takes",
        "took",
        "taking",
        "want",
        "wants",
        "wanted",
        "like",
        "know",
        "knows",
        "tell",
        "tells",
        "let",
        "lets",
        "happen",
        "happens",
        "happened",
        "say",
        "says",
        "said",
        "see",
        "look",
        "looks",
        "way",
        "ways",
        "thing",
        "things",
        "kind",
        "sort",
        "lot",
        "lots",
        "bit",
        "okay",
        "ok",
        "please",
        "thanks",
        "hey",
        "anyway",
        "actually",
        "exactly",
        "who's",
        "what's",
        "where's",
        "how's",
        "able",
        "allowed",
        "supposed",
        "going",
        "gonna",
        "wanna",
        "while",
        "whilst",
        "come",
        "comes",
        "came",
        "coming",
        "back",
    ]
)
SUFFIXES = ("ments", "ment", "ions", "ion", "ings", "ing", "ers", "er", "ed", "es", "ly", "s")
TOKEN = re.compile(r"[^\W_]+")
# Codes and numbers: a token with a digit (HR-F12, orders.order-placed.v2, 9457, #D9622B) or at
# least two capitals (FJB, PII_READER, LEG-IP3).
CANDIDATE = re.compile(r"#?[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def stem(word: str) -> str:
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def content_words(text: str) -> set[str]:
    return {
        token for token in TOKEN.findall(text.lower()) if len(token) >= 3 and token not in STOPWORDS
    }


def same_word(a: str, b: str) -> bool:
    if a == b or stem(a) == stem(b):
        return True
    return len(a) >= 5 and len(b) >= 5 and a[:5] == b[:5]


class Document:
    """A Markdown handbook: its `# ` title and its `## ` sections (with their `###` parts)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.titles: list[str] = []
        self.sections: dict[str, str] = {}
        self.duplicate_headings: list[str] = []
        current: str | None = None  # the `## ` heading whose text is being read
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                self.titles.append(line[2:].strip())
                current = None
            elif line.startswith("## "):
                current = line[3:].strip()
                if current in self.sections:
                    self.duplicate_headings.append(current)
                self.sections[current] = ""
            elif current is not None:
                self.sections[current] += line + "\n"

    @property
    def title(self) -> str:
        return self.titles[0] if self.titles else ""


def load_documents() -> dict[str, Document]:
    documents = {}
    for prefix, folder in SOURCES.items():
        for path in sorted(folder.glob("*/*.md")):
            documents[f"{prefix}/{path.relative_to(folder).as_posix()}"] = Document(path)
    return documents


def check_corpus(documents: dict[str, Document], errors: list[str]) -> None:
    corpus = {key: doc for key, doc in documents.items() if key.startswith("corpus/")}
    departments = {key.split("/")[1] for key in corpus}
    if len(corpus) < MIN_DOCUMENTS:
        errors.append(f"corpus: {len(corpus)} documents, need at least {MIN_DOCUMENTS}")
    if len(departments) < MIN_DEPARTMENTS:
        errors.append(f"corpus: {len(departments)} departments, need at least {MIN_DEPARTMENTS}")
    low, high = SECTIONS_PER_DOCUMENT
    words_low, words_high = WORDS_PER_SECTION
    for key, doc in corpus.items():
        if len(doc.titles) != 1:
            errors.append(f"{key}: {len(doc.titles)} '# ' titles, need exactly 1")
        if not low <= len(doc.sections) <= high:
            errors.append(f"{key}: {len(doc.sections)} sections, need {low}-{high}")
        for heading in doc.duplicate_headings:
            errors.append(f"{key}: heading '{heading}' appears twice")
        for heading, text in doc.sections.items():
            count = len(WORD.findall(text))
            if not words_low <= count <= words_high:
                errors.append(f"{key} / {heading}: {count} words, need {words_low}-{words_high}")


def check_questions(
    questions: object, documents: dict[str, Document], errors: list[str]
) -> list[dict]:
    if not isinstance(questions, list):
        errors.append("questions.json: top level must be a list")
        return []
    valid = []
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    for number, item in enumerate(questions):
        where = f"question #{number + 1}"
        if not isinstance(item, dict):
            errors.append(f"{where}: not an object")
            continue
        qid = item.get("id")
        where = f"{qid or where}"
        if set(item) != {"id", "question", "kind", "relevant"}:
            errors.append(f"{where}: keys must be id, question, kind, relevant; got {sorted(item)}")
        if not isinstance(qid, str) or not re.fullmatch(r"q\d{3,}", qid):
            errors.append(f"{where}: id must look like q001")
        elif qid in seen_ids:
            errors.append(f"{where}: duplicate id")
        seen_ids.add(str(qid))
        text = item.get("question")
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}: empty question")
            continue
        if text.strip().lower() in seen_texts:
            errors.append(f"{where}: duplicate question text")
        seen_texts.add(text.strip().lower())
        kind = item.get("kind")
        if kind not in KINDS:
            errors.append(f"{where}: kind must be one of {KINDS}, got {kind!r}")
            continue
        relevant = item.get("relevant")
        if not isinstance(relevant, list) or not relevant:
            errors.append(f"{where}: relevant must be a non-empty list")
            continue
        targets = []
        for ref in relevant:
            if not isinstance(ref, dict) or set(ref) != {"path", "section"}:
                errors.append(f"{where}: each relevant entry needs exactly path and section")
                continue
            path, section = ref["path"], ref["section"]
            doc = documents.get(path)
            if doc is None:
                errors.append(f"{where}: no document {path!r} (prefix demo/ or corpus/)")
                continue
            if section not in doc.sections:
                errors.append(f"{where}: {path} has no '## {section}' heading")
                continue
            if (path, section) in targets:
                errors.append(f"{where}: {path} / {section} listed twice")
            targets.append((path, section))
        if len(targets) != len(relevant):
            continue
        if kind == "paraphrase":
            check_paraphrase(where, text, targets, documents, errors)
        elif kind == "identifier":
            codes = [
                token
                for token in CANDIDATE.findall(text)
                if any(ch.isdigit() for ch in token) or sum(ch.isupper() for ch in token) >= 2
            ]
            found = [
                code
                for code in codes
                for path, section in targets
                if re.search(
                    rf"(?<![\w#]){re.escape(code)}(?!\w)",
                    section + "\n" + documents[path].sections[section],
                )
            ]
            if not found:
                errors.append(
                    f"{where}: identifier question names no code or number of its section "
                    f"(found in question: {codes})"
                )
        valid.append(item)
    return valid


def check_paraphrase(
    where: str,
    text: str,
    targets: list[tuple[str, str]],
    documents: dict[str, Document],
    errors: list[str],
) -> None:
    words = content_words(text)
    for path, section in targets:
        doc = documents[path]
        answer = content_words(" ".join((doc.title, section, doc.sections[section])))
        shared = sorted(
            {f"{q}~{a}" if q != a else q for q in words for a in answer if same_word(q, a)}
        )
        if shared:
            errors.append(
                f"{where}: paraphrase shares words with {path} / {section}: {', '.join(shared)}"
            )


def main() -> int:
    errors: list[str] = []
    documents = load_documents()
    check_corpus(documents, errors)
    try:
        questions = json.loads((HERE / "questions.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read questions.json: {exc}")
        return 1
    valid = check_questions(questions, documents, errors)

    total = len(questions) if isinstance(questions, list) else 0
    kinds = Counter(q["kind"] for q in valid)
    if total < MIN_QUESTIONS:
        errors.append(f"{total} questions, need at least {MIN_QUESTIONS}")
    if kinds["paraphrase"] * 3 < total:
        errors.append(
            f"{kinds['paraphrase']} paraphrase questions, need at least a third of {total}"
        )

    asked = Counter(ref["path"] for q in valid for ref in q["relevant"])
    for key in documents:
        if key not in asked:
            errors.append(f"{key}: no question has a relevant section in this document")

    corpus = [k for k in documents if k.startswith("corpus/")]
    sections = sum(len(documents[k].sections) for k in corpus)
    words = sum(len(WORD.findall(documents[k].path.read_text(encoding="utf-8"))) for k in corpus)
    print(f"corpus: {len(corpus)} documents, {sections} sections, {words} words")
    print(f"questions: {total}")
    for kind in KINDS:
        share = kinds[kind] / total if total else 0
        print(f"  {kind:<11} {kinds[kind]:>4}  ({share:.0%})")
    by_source = Counter(q["relevant"][0]["path"].split("/")[0] for q in valid)
    print(
        "by source (first relevant section): "
        + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items()))
    )
    by_department = Counter("/".join(q["relevant"][0]["path"].split("/")[:2]) for q in valid)
    print("by department: " + ", ".join(f"{k} {v}" for k, v in sorted(by_department.items())))
    multi = sum(1 for q in valid if len(q["relevant"]) > 1)
    print(f"questions with more than one relevant section: {multi}")

    if errors:
        print(f"\n{len(errors)} violation(s):")
        for error in errors:
            print(f"  - {error}")
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
