"""A local stand-in for `POST /v1/embeddings`, in both the Voyage AI and the OpenAI shape.

It listens on 127.0.0.1 on a free port, records every request, and answers with deterministic
vectors derived from each text, deliberately not normalised so that tests see the client do it.
Canned answers (a 429 with Retry-After, a 500, a wrong dimension, a malformed body) can be queued.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web


def fake_vector(text: str, dimension: int) -> list[float]:
    """The raw vector the fake returns for `text`: the same text always gets the same vector."""
    digest = hashlib.shake_256(text.encode()).digest(dimension)
    return [(byte - 127.5) / 127.5 for byte in digest]


def expected_vector(text: str, dimension: int) -> np.ndarray:
    """What a correct client makes of `fake_vector`: float32, unit length."""
    vector = np.asarray(fake_vector(text, dimension), dtype=np.float32)
    return vector / np.linalg.norm(vector)


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def texts(self) -> list[str]:
        value = self.body.get("input")
        return [value] if isinstance(value, str) else list(value or [])


@dataclass(frozen=True)
class CannedAnswer:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


class FakeEmbeddingServer:
    """Serves `/v1/embeddings` until `stop()`; `url` is the base to give an embedder."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension  # what it answers with, whatever the request asks for
        self.reverse_order = False  # list the vectors last-first (each still carries its index)
        self.requests: list[RecordedRequest] = []
        self._queued: list[CannedAnswer] = []
        self._always: CannedAnswer | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Listen on a free port of 127.0.0.1 and return the base URL."""
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_once(
        self, status: int, *, retry_after: str | None = None, detail: str = "simulated failure"
    ) -> None:
        """The next request gets `status` (with a Voyage-style `detail`), later ones succeed."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._queued.append(CannedAnswer(status, {"detail": detail}, headers))

    def fail_always(self, status: int, *, detail: str = "simulated failure") -> None:
        """Every request from now on gets `status`."""
        self._always = CannedAnswer(status, {"detail": detail})

    def answer_once(self, body: object, status: int = 200) -> None:
        """The next request gets exactly `body`, e.g. a malformed one."""
        self._queued.append(CannedAnswer(status, body))

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        recorded = RecordedRequest(request.path, dict(request.headers), body)
        self.requests.append(recorded)
        canned = self._always or (self._queued.pop(0) if self._queued else None)
        if canned is not None:
            return web.json_response(canned.body, status=canned.status, headers=canned.headers)
        data = [
            {"object": "embedding", "embedding": fake_vector(text, self.dimension), "index": i}
            for i, text in enumerate(recorded.texts)
        ]
        if self.reverse_order:
            data.reverse()
        tokens = sum(len(text.split()) for text in recorded.texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
