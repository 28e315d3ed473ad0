"""Teams at the edge: hostile tokens and bodies get a clear 4xx, never a 500; invokes deskmate
has no route for still get a proper answer; an `expectReplies` caller gets the answer in the
response; a person whose first contact is a card click is looked up like a first message."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.settings import Settings
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.bot_connector import (
    PERSONAL_CHAT,
    FakeBotConnector,
    card_click,
    channel_message,
    person,
    personal_message,
    running_connector,
)
from tests.support.teams import (
    BOT_APP_ID,
    SIGNING_KEY_ID,
    FakeBotFrameworkKeys,
    Service,
    bot_framework_keys,
    quicken_streaming,
    running_service,
    secured,
)

# The SDK's own JWT middleware stores its result under a plain string key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

CARD_MESSAGE = "application/vnd.microsoft.activity.message"


@pytest.fixture(autouse=True)
def quick_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    quicken_streaming(monkeypatch)


@pytest.fixture
async def connector() -> AsyncIterator[FakeBotConnector]:
    async with running_connector() as fake:
        yield fake


@pytest.fixture
async def keys(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBotFrameworkKeys]:
    async with bot_framework_keys(monkeypatch) as fake:
        yield fake


@pytest.fixture
async def service(
    settings: Settings, fake_anthropic: FakeAnthropic, keys: FakeBotFrameworkKeys
) -> AsyncIterator[Service]:
    async with running_service(secured(settings, fake_anthropic)) as running:
        yield running


async def post(service: Service, keys: FakeBotFrameworkKeys, activity: Any) -> Any:
    """POST an activity as the Bot Connector would, with a valid token for its service URL."""
    url = activity.get("serviceUrl", "") if isinstance(activity, dict) else ""
    return await service.post(activity, **keys.authorization(str(url)))


async def count_rows(service: Service) -> dict[str, int]:
    tables = ("chat_sessions", "session_messages", "users", "teams_conversations")
    return {table: await service.count(table) for table in tables}


# --- tokens ------------------------------------------------------------------------------------


def unsigned_token(service_url: str) -> str:
    claims = {"iss": "https://api.botframework.com", "aud": BOT_APP_ID, "serviceurl": service_url}
    return jwt.encode(claims, key=None, algorithm="none")


def shared_secret_token(service_url: str, *, kid: str | None = None) -> str:
    claims = {"iss": "https://api.botframework.com", "aud": BOT_APP_ID, "serviceurl": service_url}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", "HS256", headers=headers)


@pytest.mark.parametrize(
    "make_token",
    [
        unsigned_token,
        shared_secret_token,
        lambda url: shared_secret_token(url, kid=SIGNING_KEY_ID),
    ],
    ids=["alg-none", "hs256", "hs256-with-our-kid"],
)
async def test_a_token_not_signed_like_bot_framework_is_a_401_and_leaves_no_trace(
    service: Service, connector: FakeBotConnector, make_token: Any
) -> None:
    activity = personal_message(connector.url, "let me in")
    token = make_token(connector.url)
    response = await service.post(activity, Authorization=f"Bearer {token}")
    assert response.status == 401
    await service.settle()
    assert connector.calls == []
    assert set((await count_rows(service)).values()) == {0}


async def test_a_token_signed_with_an_unknown_key_is_a_401(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"aud": BOT_APP_ID, "iss": "https://api.botframework.com"}, stranger,
                       algorithm="RS256", headers={"kid": "someone-else"})  # fmt: skip
    response = await service.post(personal_message(connector.url, "hi"),
                                  Authorization=f"Bearer {token}")  # fmt: skip
    assert response.status == 401


async def test_a_valid_token_is_let_in_and_answered(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    response = await post(service, keys, personal_message(connector.url, "When does Lyon open?"))
    assert response.status == 202
    await service.settle()
    assert len(connector.messages) == 1
    assert connector.messages[0].authorization == "Bearer deskmate-connector-token"


# --- bodies ------------------------------------------------------------------------------------


async def test_a_two_megabyte_activity_is_a_413(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    huge = personal_message(connector.url, "x" * (2 * 1024 * 1024))
    response = await post(service, keys, huge)
    assert response.status == 413
    await service.settle()
    assert connector.calls == []
    assert set((await count_rows(service)).values()) == {0}


async def test_a_two_megabyte_chunked_body_is_a_413(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield b" " * 65536

    response = await service.client.post(
        "/api/messages", data=chunks(),
        headers={**keys.authorization(connector.url), "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status == 413


# --- invokes deskmate has no route for ---------------------------------------------------------


def invoke(service_url: str, name: str | None, value: Any) -> dict[str, Any]:
    activity = card_click(service_url, {"kind": "x"}, card_id="card-1")
    activity.update(name=name, value=value)
    return {k: v for k, v in activity.items() if v is not None}


async def test_a_card_action_without_a_verb_or_our_data_gets_a_card_message(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    value = {"action": {"type": "Action.Execute", "data": {"choice": "b"}}, "trigger": "manual"}
    response = await post(service, keys, invoke(connector.url, "adaptiveCard/action", value))
    assert response.status == 200
    body = await response.json()
    assert body["statusCode"] == 200 and body["type"] == CARD_MESSAGE
    assert "isn't one of deskmate's" in body["value"]


async def test_a_card_action_without_a_verb_but_with_our_data_is_the_click(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    value = {"action": {"type": "Action.Execute", "data": {"kind": "nope", "value": "1"}}}
    response = await post(service, keys, invoke(connector.url, "adaptiveCard/action", value))
    assert response.status == 200
    assert (await response.json())["value"] == "unknown button 'nope'"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("task/fetch", {"data": {"type": "task/fetch"}}),
        ("composeExtension/query", {"commandId": "search", "parameters": []}),
        ("message/submitAction", {"actionName": "feedback", "actionValue": {"reaction": "like"}}),
        ("adaptiveCard/action", None),
        (None, None),
    ],
)
async def test_an_invoke_deskmate_does_not_offer_gets_a_200(
    service: Service,
    connector: FakeBotConnector,
    keys: FakeBotFrameworkKeys,
    name: str | None,
    value: Any,
) -> None:
    response = await post(service, keys, invoke(connector.url, name, value))
    assert response.status == 200
    await service.settle()
    assert connector.messages == []


# --- expectReplies ----------------------------------------------------------------------------


async def test_an_expect_replies_message_gets_its_answer_in_the_response(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys,
    fake_anthropic: FakeAnthropic,
) -> None:  # fmt: skip
    fake_anthropic.default_text = "The Lyon office opens at 08:00."
    activity = {**personal_message(connector.url, "When does Lyon open?"),
                "deliveryMode": "expectReplies"}  # fmt: skip
    response = await post(service, keys, activity)
    assert response.status == 200
    replies = (await response.json())["activities"]
    assert [r["text"] for r in replies if r["type"] == "message"] == [
        "The Lyon office opens at 08:00."
    ]
    await service.settle()
    assert connector.messages == []  # nothing is posted a second time
    async with service.runtime.db.pool.acquire() as conn:
        state = await conn.fetchval("SELECT status FROM processed_events")
    assert state == "done"


async def test_an_expect_replies_command_in_a_channel_keeps_personal_data_out(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    activity = {**channel_message(connector.url, "memories"), "deliveryMode": "expectReplies"}
    response = await post(service, keys, activity)
    replies = (await response.json())["activities"]
    assert [r["text"] for r in replies] == [
        "That is only for you to see: ask me in a personal chat with deskmate."
    ]


# --- first contact by a card click ------------------------------------------------------------


async def test_a_first_contact_by_card_click_is_linked_to_the_directory_by_email(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    user_id = await add_user(service.runtime.db, "dana@example.com", ["sales"])
    connector.members["29:dana"] = {"id": "29:dana", "name": "Dana Doe", "aadObjectId": "aad-dana",
                                    "email": "Dana@Example.com"}  # fmt: skip
    dana = person("29:dana", "aad-dana", "Dana Doe")
    click = card_click(connector.url, {"kind": "feedback", "value": "1:up"}, card_id="answer-1",
                       sender=dana)  # fmt: skip
    response = await post(service, keys, click)
    assert response.status == 200
    await service.settle()
    async with service.runtime.db.pool.acquire() as conn:
        linked = await conn.fetchval(
            "SELECT user_id FROM platform_identities WHERE platform_user_id = 'aad-dana'"
        )
        placeholders = await conn.fetchval(
            "SELECT count(*) FROM users WHERE email LIKE '%.invalid'"
        )
    assert linked == user_id
    assert placeholders == 0
    [lookup] = connector.of_kind("member")
    assert lookup.conversation_id == PERSONAL_CHAT


async def test_an_action_submit_first_contact_is_linked_too(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys
) -> None:
    user_id = await add_user(service.runtime.db, "dana@example.com", ["sales"])
    connector.members["29:dana"] = {"id": "29:dana", "name": "Dana Doe",
                                    "userPrincipalName": "dana@example.com"}  # fmt: skip
    dana = person("29:dana", "aad-dana", "Dana Doe")
    click = card_click(connector.url, {"kind": "feedback", "value": "1:up"}, card_id="answer-1",
                       sender=dana, execute=False)  # fmt: skip
    assert (await post(service, keys, click)).status == 202
    await service.settle()
    async with service.runtime.db.pool.acquire() as conn:
        linked = await conn.fetchval(
            "SELECT user_id FROM platform_identities WHERE platform_user_id = 'aad-dana'"
        )
    assert linked == user_id


# --- property-based: whatever arrives, never a 5xx ---------------------------------------------

_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=12,
)  # fmt: skip
_ACTIVITY_FIELDS = ("type", "id", "text", "name", "value", "channelId", "conversation", "from",
                    "recipient", "channelData", "entities", "attachments", "deliveryMode",
                    "replyToId", "membersAdded", "action", "serviceUrl", "locale")  # fmt: skip
_TYPES = st.sampled_from(["message", "invoke", "conversationUpdate", "installationUpdate",
                          "messageReaction", "typing", "event", "endOfConversation",
                          "x"])  # fmt: skip


@st.composite
def activities(draw: st.DrawFn, service_url: str) -> bytes:
    """Mostly activity-shaped JSON with random values, sometimes any JSON or any bytes."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=64))
    return json.dumps(draw(_activity_values(service_url))).encode()


@st.composite
def _activity_values(draw: st.DrawFn, service_url: str) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(_json)
    base = personal_message(service_url, draw(st.text(max_size=30)))
    for field in draw(st.lists(st.sampled_from(_ACTIVITY_FIELDS), max_size=4)):
        base[field] = draw(_json)
    if draw(st.booleans()):
        base["type"] = draw(_TYPES)
    if draw(st.booleans()):
        base["conversation"] = {"id": draw(st.text(min_size=1, max_size=20)),
                                "conversationType": draw(st.sampled_from(
                                    ["personal", "channel", "groupChat", 7]))}  # fmt: skip
    return base


CONTENT_TYPES = ["application/json", "application/json; charset=latin-1", "text/plain",
                 "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x"]  # fmt: skip


@st.composite
def authorizations(draw: st.DrawFn, keys: FakeBotFrameworkKeys, service_url: str) -> str | None:
    kind = draw(st.sampled_from(["valid", "none", "hs256", "junk", "absent"]))
    if kind == "valid":
        return f"Bearer {keys.token(service_url)}"
    if kind == "none":
        return f"Bearer {unsigned_token(service_url)}"
    if kind == "hs256":
        return f"Bearer {shared_secret_token(service_url, kid=draw(st.text(max_size=5)) or None)}"
    if kind == "junk":
        return draw(st.text(max_size=40).map(lambda t: f"Bearer {t}"))
    return None


async def test_fuzzed_requests_never_get_a_5xx(
    service: Service, connector: FakeBotConnector, keys: FakeBotFrameworkKeys,
    fake_anthropic: FakeAnthropic,
) -> None:  # fmt: skip
    statuses: list[int] = []
    failures: list[tuple[int, bytes]] = []

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(body=activities(connector.url), auth=authorizations(keys, connector.url),
           content_type=st.sampled_from(CONTENT_TYPES))  # fmt: skip
    def case(body: bytes, auth: str | None, content_type: str) -> None:
        requests.append((body, auth, content_type))

    requests: list[tuple[bytes, str | None, str]] = []
    case()
    for body, auth, content_type in requests:
        headers = {"Content-Type": content_type}
        if auth is not None and auth.isascii() and auth.isprintable():
            headers["Authorization"] = auth
        response = await service.client.post("/api/messages", data=body, headers=headers)
        statuses.append(response.status)
        if response.status >= 500:
            failures.append((response.status, body))
    await service.settle()
    assert failures == []
    assert len(statuses) == len(requests) >= 100
