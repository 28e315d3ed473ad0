"""What `POST /slack/events` accepts before Bolt sees it: checks on the raw request.

Bolt parses a body before it checks the signature and trusts the payload's shape everywhere
after, so a malformed body, even a signed one, would reach code that fails on it. Here the
signature is checked first, on the raw bytes, with a timestamp that must be a number; only then
is the body parsed, with its nesting bounded, and its shape checked against what Slack sends:
the fields Bolt and deskmate read must be of the kind Slack gives them. Every check is a pure
function; `accepted_request` only reads the body and runs them in that order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest

# Slack's replay window: a signed request older (or newer) than this is refused.
MAX_CLOCK_SKEW_SECONDS = 300
# Real Slack payloads nest a dozen levels at most (blocks inside views inside payloads).
MAX_DEPTH = 64

# The parts of a payload Bolt and deskmate read, field by field: a value of the wrong kind there
# is refused. Other fields (blocks, attachments, files…) are Slack's business and pass as they are.
TEXT_FIELDS = frozenset({
    "type", "subtype", "channel_type", "team_id", "enterprise_id", "user_id", "channel_id",
    "api_app_id", "app_id", "bot_id", "ts", "thread_ts", "event_ts", "message_ts", "user_team",
    "source_team", "trigger_id", "response_url", "action_id", "callback_id", "command", "tab",
    "event_id", "app_installed_team_id", "function_execution_id", "bot_access_token",
})  # fmt: skip
# Objects, whose own fields are checked in turn.
OBJECT_FIELDS = frozenset({
    "event", "message", "previous_message", "item", "assistant_thread", "view", "container",
    "function_data", "bot_profile", "state", "context", "tokens", "workflow_step",
})  # fmt: skip
# An id, an object carrying one (`{"id": …}`), or null.
REFERENCE_FIELDS = frozenset({"team", "user", "channel", "enterprise"})
# Lists of objects; Bolt reads the first action of an interaction, so there must be one.
OBJECT_LIST_FIELDS = frozenset({"authorizations", "actions", "response_urls"})
NON_EMPTY_LISTS = frozenset({"actions"})

# Headers Bolt reserves for its own re-invocations, never to be taken from the network.
BOLT_INTERNAL_PREFIX = "x-slack-bolt-"


@dataclass(frozen=True)
class Accepted:
    """A request Slack signed, with a payload shaped like Slack's."""

    text: str
    headers: dict[str, str]
    payload: dict[str, Any]
    query: str

    def for_bolt(self) -> AsyncBoltRequest:
        as_bolt_reads: dict[str, str | Sequence[str]] = dict(self.headers)
        return AsyncBoltRequest(body=self.text, query=self.query, headers=as_bolt_reads)


async def accepted_request(request: web.Request, secret: str) -> Accepted:
    """The request, once signed by Slack and shaped like a Slack payload; else Rejected (401 for
    the signature, 400 for the body), before anything is parsed deeply or stored."""
    raw = await request.read()
    headers = bolt_headers(request.headers)
    verify_signature(raw, headers, secret)
    text = decode(raw)
    # The content type exactly as Bolt will read it, so both parse the body the same way.
    payload = parse_payload(text, headers.get("content-type", "").split(";")[0])
    check_shape(payload)
    return Accepted(text, headers, payload, request.query_string)


class Rejected(Exception):
    """The request is refused with `status`; the message says why (never echoing the body)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def verify_signature(
    raw: bytes, headers: Mapping[str, str], secret: str, now: float | None = None
) -> None:
    """Raise 401 unless Slack signed these exact bytes within the replay window (`headers`
    with lower-case names, as `bolt_headers` gives them)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not signature or not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) < 16):
        raise Rejected(401, "missing or malformed Slack signature headers")
    clock = time.time() if now is None else now
    if abs(clock - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise Rejected(401, "stale Slack request timestamp")
    base = b"v0:" + timestamp.encode() + b":" + raw
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        raise Rejected(401, "invalid Slack signature")


def decode(raw: bytes) -> str:
    """The body as text; Slack sends UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "Slack payload is not UTF-8") from None


def parse_payload(text: str, content_type: str) -> dict[str, Any]:
    """The payload as Bolt will read it (JSON, a form, or a form's `payload` field), or 400."""
    if not text:
        return {}
    if content_type == "application/json" or text.startswith("{"):
        return _json_object(text)
    fields = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in text:  # Bolt's own test for an interactivity form
        return _json_object(fields["payload"]) if "payload" in fields else {}
    return fields


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Rejected(400, "malformed Slack payload") from None
    if not isinstance(value, dict):
        raise Rejected(400, "a Slack payload is a JSON object")
    return value


def check_shape(payload: dict[str, Any]) -> None:
    """Raise 400 when the payload nests deeper than any Slack payload does, or a field Bolt or
    deskmate reads is not of the kind Slack sends."""
    if _deeper_than(payload, MAX_DEPTH):
        raise Rejected(400, "malformed Slack payload: nests too deep")
    for path, problem in _problems(payload):
        raise Rejected(400, f"malformed Slack payload: {path} {problem}")


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative on purpose: the depth is what is being checked.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _problems(payload: dict[str, Any]) -> Iterator[tuple[str, str]]:
    objects: list[tuple[str, dict[str, Any]]] = [("payload", payload)]
    while objects:
        path, current = objects.pop()
        for key, value in current.items():
            where = f"{path}.{key}"
            problem = _field_problem(key, value)
            if problem:
                yield where, problem
            elif isinstance(value, dict) and (key in OBJECT_FIELDS or key in REFERENCE_FIELDS):
                objects.append((where, value))
            elif key in OBJECT_LIST_FIELDS:
                objects.extend((f"{where}[{i}]", item) for i, item in enumerate(value))


def _field_problem(key: str, value: Any) -> str | None:
    if key in TEXT_FIELDS and value is not None and not isinstance(value, str):
        return "must be a string"
    if key in OBJECT_FIELDS and not isinstance(value, dict):
        return "must be an object"
    if key in REFERENCE_FIELDS and not _is_reference(value):
        return "must be an id or an object with an id"
    if key in OBJECT_LIST_FIELDS and not (
        isinstance(value, list) and all(isinstance(item, dict) for item in value)
    ):
        return "must be a list of objects"
    if key in NON_EMPTY_LISTS and not value:
        return "must not be empty"
    return None


def _is_reference(value: Any) -> bool:
    if value is None or isinstance(value, str):
        return True
    return isinstance(value, dict) and isinstance(value.get("id", ""), str)


def bolt_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request's headers by lower-case name (the last of duplicates wins, as in Bolt),
    without those Bolt reserves for itself."""
    named = {key.lower(): value for key, value in headers.items()}
    return {k: v for k, v in named.items() if not k.startswith(BOLT_INTERNAL_PREFIX)}
