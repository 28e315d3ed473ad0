"""Counting the statements a piece of code sends to PostgreSQL, each one a round trip."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import pytest


@contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement sent while the block runs, in order (first line of each). With a warm
    statement cache each is one round trip; BEGIN, COMMIT and pool resets count too."""
    sent: list[str] = []
    execute, extended = asyncpg.Connection.execute, asyncpg.Connection._execute

    async def simple(self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        if not args:  # with arguments, execute() goes through _execute, counted there
            sent.append(query.strip().splitlines()[0])
        return await execute(self, query, *args, **kwargs)

    async def with_arguments(
        self: asyncpg.Connection, query: str, *args: Any, **kwargs: Any
    ) -> Any:
        sent.append(query.strip().splitlines()[0])
        return await extended(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.Connection, "execute", simple)
    monkeypatch.setattr(asyncpg.Connection, "_execute", with_arguments)
    try:
        yield sent
    finally:
        monkeypatch.setattr(asyncpg.Connection, "execute", execute)
        monkeypatch.setattr(asyncpg.Connection, "_execute", extended)
