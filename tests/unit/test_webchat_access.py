"""Who may use the web chat, the pure part: which addresses are loopback, and the checks on
mentions, channel names and send requests."""

from __future__ import annotations

import pytest

from bot.errors import UsageError
from handlers.webchat import is_loopback
from handlers.webchat.views import TooLong, channel_id, mention, parse_send


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.4", False),
     ("deskmate.internal", False), ("", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("text", "question"),
    [("@deskmate what is our travel policy?", "what is our travel policy?"),
     ("hey @DeskMate, hotel budget in Paris?", "hey hotel budget in Paris?"),
     ("@deskmate", "help"),
     ("write to ops@deskmate.example", None),
     ("lunch anyone?", None)],
)  # fmt: skip
def test_mentions(text: str, question: str | None) -> None:
    assert mention(text) == question


def test_channel_names() -> None:
    assert channel_id("Sales") == "#sales" == channel_id("#sales")
    for bad in ("", "#", "sales team", "<script>", 7, None, "x" * 81):
        with pytest.raises(UsageError):
            channel_id(bad)


def test_send_requests_are_checked() -> None:
    ask = parse_send({"user": " Alex@Example.com ", "text": " hi ", "channel": ""})
    assert (ask.user, ask.text, ask.channel) == ("alex@example.com", "hi", None)
    with pytest.raises(TooLong):
        parse_send({"user": "a@b.c", "text": "x" * 10_001})
    with pytest.raises(UsageError):
        parse_send({"text": "hi"})
