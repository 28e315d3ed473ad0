"""Text as PostgreSQL can keep it: what a platform may send that the database refuses.

PostgreSQL's text and jsonb cannot hold NUL, and a lone UTF-16 surrogate (which JSON may carry as
`\\ud800`) cannot be encoded as UTF-8. Such a message would be accepted and then fail to store,
so the edges clean it on the way in: NUL is dropped, a lone surrogate becomes U+FFFD.
"""

from __future__ import annotations

import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _replace(match: re.Match[str]) -> str:
    return "" if match.group() == "\x00" else "\ufffd"


def storable(text: str) -> str:
    """`text` without what PostgreSQL cannot store (unchanged, and not copied, when clean)."""
    return _UNSTORABLE.sub(_replace, text) if _UNSTORABLE.search(text) else text


def storable_json(value: Any) -> Any:
    """A JSON-like value with every string (keys too) made storable."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {storable(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value
