"""What a run posts: the schedule's text, a prompt's answer, or a digest — as an `Outbound`.

A prompt is answered by the conversation service as the schedule's creator, in the target
channel, so that channel's clearances decide which documents it may quote.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from bot import digest
from bot.cron import latest_slot
from bot.messages import IncomingMessage, ReplyStatus, Source
from bot.outbound import DeliveryError, Outbound
from storage import jobs, users
from storage.jobs import Claim

if TYPE_CHECKING:
    from bot.runtime import Runtime

# A digest with no earlier delivered run, and no earlier slot, covers the day before it.
FIRST_DIGEST_PERIOD = dt.timedelta(days=1)


async def build(runtime: Runtime, claim: Claim) -> Outbound:
    """The message for this run (without its idempotency key); DeliveryError when it cannot be
    built, retryable or not."""
    if claim.kind == "text":
        return Outbound(text=str(claim.payload["text"]))
    if claim.kind == "prompt":
        return await _prompt(runtime, claim)
    if claim.kind == "digest":
        return await _digest(runtime, claim)
    raise DeliveryError(f"unknown schedule kind {claim.kind!r}", retryable=False)


def to_content(message: Outbound) -> dict[str, Any]:
    """JSON for `scheduled_runs.content`."""
    return {"text": message.text, "title": message.title,
            "sources": [asdict(s) for s in message.sources]}  # fmt: skip


def from_content(content: dict[str, Any]) -> Outbound:
    sources = tuple(Source(**s) for s in content.get("sources") or [])
    return Outbound(text=str(content["text"]), title=content.get("title"), sources=sources)


async def _prompt(runtime: Runtime, claim: Claim) -> Outbound:
    email = claim.created_by
    async with runtime.db.pool.acquire() as conn:
        creator = await users.get_by_email(conn, claim.tenant_id, email)
    if creator is None or not creator.is_active:
        raise DeliveryError(f"the schedule acts as {email}, who is not an active user",
                            retryable=False)  # fmt: skip
    reply = await runtime.conversation.handle(IncomingMessage(
        platform=claim.platform, user_id=f"schedule-{claim.schedule_id}",
        conversation_id=claim.channel, thread_id=claim.thread, text=str(claim.payload["prompt"]),
        is_direct=False, tenant=claim.tenant, trusted_email=email,
    ))  # fmt: skip
    if reply.status is ReplyStatus.ERROR:
        raise DeliveryError(f"the answer failed (reference {reply.reference})", retryable=True)
    return Outbound(text=reply.text, sources=reply.sources)


async def _digest(runtime: Runtime, claim: Claim) -> Outbound:
    """The period runs from the last delivered run (else the previous slot, else a day) to
    this run's slot, so a retry builds the same digest and no activity falls between two."""
    async with runtime.db.pool.acquire() as conn:
        start = await jobs.previous_sent_slot(conn, claim.schedule_id, claim.slot)
    if start is None and claim.cron is not None:
        start = latest_slot(claim.cron, claim.timezone, claim.slot - dt.timedelta(microseconds=1))
    start = start or claim.slot - FIRST_DIGEST_PERIOD
    scope = digest.DigestScope(str(claim.payload["scope"]), str(claim.payload["name"]))
    data = await digest.gather(
        runtime.db, claim.tenant_id, scope, platform=claim.platform, start=start,
        end=claim.slot, timezone=claim.timezone,
        public_departments=list(runtime.settings.public_departments),
    )  # fmt: skip
    text = await digest.write(runtime.db, runtime.claude, claim.tenant_id, data)
    return Outbound(text=text, title=digest.title(data))
