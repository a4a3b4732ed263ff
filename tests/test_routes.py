"""Every route, method and way of signing in, and what each answers: tables.

The tables are what the integration's URLs answered when they were written down;
the views behind them may be arranged any way, these answers stay. A row is a
path and a method, then one answer per way of signing in (the columns). In paths,
``{cid}`` and ``{ih}`` are a content id and its infohash, ``{seq}``/``{ihseq}`` the
newest segment of each, ``{key}`` the secret that the column puts there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from http import HTTPStatus
import re
from typing import Final

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from homeassistant.components.http.auth import async_sign_path
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockUser
from yarl import URL

from custom_components.acestream_proxy.access import get_keys, new_secret
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import add_channel, add_key
from tests.helpers import load_on_engine, signed_path
from tests.simulator import EngineSimulator

type ClientFactory = Callable[..., Awaitable[TestClient]]

CID: Final = "0a4848271c91ce2d8965ce416267c25047dc8141"
PREFIX: Final = "/api/acestream_proxy"
# Every request comes from this origin, which is not one of Home Assistant's
# configured CORS origins: only views open to every origin answer it.
ORIGIN: Final = "https://example.org"
# A header whose value varies (the length of a playlist or a segment).
ANY: Final = "<any>"
# The headers that tell one answer from another; an answer lists those it has.
WATCHED: Final = (
    "Content-Type",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Cache-Control",
    "X-Accel-Buffering",
    "Retry-After",
    "Allow",
    "Content-Disposition",
    "Access-Control-Allow-Origin",
)
VARYING_LENGTH: Final = (
    "video/mp2t",
    "application/vnd.apple.mpegurl",
    "audio/x-mpegurl",
)


class Auth(StrEnum):
    """A way of signing in: a column."""

    NONE = "none"
    BEARER = "bearer token"
    SIGNED = "signed path"
    EXPIRED = "expired signature"
    KEY = "key"
    UNKNOWN_KEY = "unknown key"
    REVOKED_KEY = "key of a deactivated user"
    BEARER_UNKNOWN_KEY = "bearer token, unknown key"


@dataclass(frozen=True)
class Answer:
    """Status, the watched headers (exactly), the body in a few words.

    The body of a playlist is told by its first line and how its URLs sign in
    (``signed``: each carries its signature; ``key``: each is under the key).
    ``used``: the request marked the access key used ("last used" moves).
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    used: bool = False


def said(
    status: int, message: str, *, cors: bool = False, more: Mapping[str, str] = {}
) -> Answer:
    """A plain-text answer."""
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Length": str(len(message)),
        **more,
    }
    if cors:
        headers["Access-Control-Allow-Origin"] = ORIGIN
    return Answer(status, headers, message)


def head(answer: Answer) -> Answer:
    """The same answer to HEAD: the headers, no body."""
    return replace(answer, body="")


def used(answer: Answer) -> Answer:
    """The answer, and the key's "last used" moved."""
    return replace(answer, used=True)


def every(answer: Answer) -> tuple[Answer, Answer, Answer, Answer]:
    """The same answer in all four columns."""
    return (answer, answer, answer, answer)


TS_LIVE: Final = {
    "Content-Type": "video/mp2t",
    "Connection": "close",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
}
CORS: Final = {"Access-Control-Allow-Origin": ORIGIN}

LIVE: Final = Answer(200, TS_LIVE, "TS")
SEGMENT: Final = Answer(
    200,
    {"Content-Type": "video/mp2t", "Content-Length": ANY, "Cache-Control": "max-age=60"}
    | CORS,
    "TS",
)
_M3U8: Final = {
    "Content-Type": "application/vnd.apple.mpegurl; charset=utf-8",
    "Content-Length": ANY,
    "Cache-Control": "no-cache",
} | CORS
PLAYLIST_SIGNED: Final = Answer(200, _M3U8, "#EXTM3U, URLs signed")
PLAYLIST_KEY: Final = Answer(200, _M3U8, "#EXTM3U, URLs key")
PLAYLIST_HEAD: Final = Answer(
    200,
    {"Content-Type": "application/vnd.apple.mpegurl", "Cache-Control": "no-cache"}
    | CORS,
)
_M3U: Final = {
    "Content-Type": "audio/x-mpegurl; charset=utf-8",
    "Content-Length": ANY,
    "Content-Disposition": 'inline; filename="acestream.m3u"',
}
CHANNELS_SIGNED: Final = Answer(200, _M3U, "#EXTM3U, URLs signed")
CHANNELS_KEY: Final = Answer(200, _M3U, "#EXTM3U, URLs key")
NO_AUTH: Final = said(401, "401: Unauthorized")
NO_AUTH_CORS: Final = said(401, "401: Unauthorized", cors=True)
NO_KEY: Final = said(401, "unknown or revoked access key\n")
NO_KEY_CORS: Final = said(401, "unknown or revoked access key\n", cors=True)
BAD_CID: Final = said(400, "content_id must be 40 hexadecimal characters\n")
BAD_CID_CORS: Final = said(
    400, "content_id must be 40 hexadecimal characters\n", cors=True
)
NO_SEGMENT_CORS: Final = said(404, "segment not (or no longer) available\n", cors=True)
NO_RESOURCE_CORS: Final = said(404, "no such HLS resource\n", cors=True)
NO_ENGINE: Final = said(404, "no AceStream engine is configured and loaded\n")
NO_ENGINE_CORS: Final = said(
    404, "no AceStream engine is configured and loaded\n", cors=True
)
NOT_FOUND: Final = said(404, "404: Not Found")
NO_METHOD: Final = said(
    405, "405: Method Not Allowed", more={"Allow": "GET,HEAD,OPTIONS"}
)
PREFLIGHT: Final = Answer(200, {"Content-Length": "0"} | CORS)
PREFLIGHT_REFUSED: Final = said(
    403, f"CORS preflight request failed: origin '{ORIGIN}' is not allowed"
)

# What Home Assistant routes to the integration: each method and path shape. The
# names of the path's variables are the views' business, not the clients': the
# check compares shapes, with every variable as ``{}``.
ROUTES: Final = {
    (method, f"{PREFIX}{path}")
    for path in (
        "/stream/{content_id}",
        "/stream/infohash/{infohash}",
        "/hls/{content_id}/{name}",
        "/hls/infohash/{infohash}/{name}",
        "/playlist.m3u",
        "/key/{key}/stream/{content_id}",
        "/key/{key}/stream/infohash/{infohash}",
        "/key/{key}/hls/{content_id}/{name}",
        "/key/{key}/hls/infohash/{infohash}/{name}",
        "/key/{key}/playlist.m3u",
    )
    for method in ("GET", "HEAD", "OPTIONS")
}

type Row = tuple[str, str, Answer, Answer, Answer, Answer]

SIGNED_IN_COLUMNS: Final = (Auth.NONE, Auth.BEARER, Auth.SIGNED, Auth.EXPIRED)
# Paths under PREFIX, signed in the Home Assistant way.
# fmt: off
SIGNED_IN: Final[tuple[Row, ...]] = (
    # path                             method     none                 bearer token             signed path              expired signature
    ("/stream/{cid}",                  "GET",     NO_AUTH,             LIVE,                    LIVE,                    NO_AUTH),
    ("/stream/{cid}",                  "HEAD",    head(NO_AUTH),       head(LIVE),              head(LIVE),              head(NO_AUTH)),
    ("/stream/{cid}",                  "POST",    *every(NO_METHOD)),
    ("/stream/{cid}",                  "OPTIONS", *every(PREFLIGHT_REFUSED)),
    ("/stream/infohash/{ih}",          "GET",     NO_AUTH,             LIVE,                    LIVE,                    NO_AUTH),
    ("/stream/infohash/{ih}",          "HEAD",    head(NO_AUTH),       head(LIVE),              head(LIVE),              head(NO_AUTH)),
    ("/stream/infohash/{ih}",          "POST",    *every(NO_METHOD)),
    ("/stream/infohash/{ih}",          "OPTIONS", *every(PREFLIGHT_REFUSED)),
    ("/stream/zz",                     "GET",     NO_AUTH,             BAD_CID,                 BAD_CID,                 NO_AUTH),
    ("/stream/zz",                     "HEAD",    head(NO_AUTH),       head(BAD_CID),           head(BAD_CID),           head(NO_AUTH)),
    ("/stream/zz",                     "POST",    *every(NO_METHOD)),
    ("/stream/zz",                     "OPTIONS", *every(PREFLIGHT_REFUSED)),
    ("/hls/{cid}/index.m3u8",          "GET",     NO_AUTH_CORS,        PLAYLIST_SIGNED,         PLAYLIST_SIGNED,         NO_AUTH_CORS),
    ("/hls/{cid}/index.m3u8",          "HEAD",    head(NO_AUTH_CORS),  PLAYLIST_HEAD,           PLAYLIST_HEAD,           head(NO_AUTH_CORS)),
    ("/hls/{cid}/index.m3u8",          "POST",    *every(NO_METHOD)),
    ("/hls/{cid}/index.m3u8",          "OPTIONS", *every(PREFLIGHT)),
    ("/hls/{cid}/{seq}.ts",            "GET",     NO_AUTH_CORS,        SEGMENT,                 SEGMENT,                 NO_AUTH_CORS),
    ("/hls/{cid}/{seq}.ts",            "HEAD",    head(NO_AUTH_CORS),  head(SEGMENT),           head(SEGMENT),           head(NO_AUTH_CORS)),
    ("/hls/{cid}/{seq}.ts",            "POST",    *every(NO_METHOD)),
    ("/hls/{cid}/{seq}.ts",            "OPTIONS", *every(PREFLIGHT)),
    ("/hls/{cid}/999999.ts",           "GET",     NO_AUTH_CORS,        NO_SEGMENT_CORS,         NO_SEGMENT_CORS,         NO_AUTH_CORS),
    ("/hls/{cid}/999999.ts",           "HEAD",    head(NO_AUTH_CORS),  head(NO_SEGMENT_CORS),   head(NO_SEGMENT_CORS),   head(NO_AUTH_CORS)),
    ("/hls/{cid}/nothing.txt",         "GET",     NO_AUTH_CORS,        NO_RESOURCE_CORS,        NO_RESOURCE_CORS,        NO_AUTH_CORS),
    ("/hls/{cid}/nothing.txt",         "HEAD",    head(NO_AUTH_CORS),  head(NO_RESOURCE_CORS),  head(NO_RESOURCE_CORS),  head(NO_AUTH_CORS)),
    ("/hls/infohash/{ih}/index.m3u8",  "GET",     NO_AUTH_CORS,        PLAYLIST_SIGNED,         PLAYLIST_SIGNED,         NO_AUTH_CORS),
    ("/hls/infohash/{ih}/index.m3u8",  "HEAD",    head(NO_AUTH_CORS),  PLAYLIST_HEAD,           PLAYLIST_HEAD,           head(NO_AUTH_CORS)),
    ("/hls/infohash/{ih}/index.m3u8",  "POST",    *every(NO_METHOD)),
    ("/hls/infohash/{ih}/index.m3u8",  "OPTIONS", *every(PREFLIGHT)),
    ("/hls/infohash/{ih}/{ihseq}.ts",  "GET",     NO_AUTH_CORS,        SEGMENT,                 SEGMENT,                 NO_AUTH_CORS),
    ("/hls/infohash/{ih}/{ihseq}.ts",  "HEAD",    head(NO_AUTH_CORS),  head(SEGMENT),           head(SEGMENT),           head(NO_AUTH_CORS)),
    ("/hls/zz/index.m3u8",             "GET",     NO_AUTH_CORS,        BAD_CID_CORS,            BAD_CID_CORS,            NO_AUTH_CORS),
    ("/hls/zz/index.m3u8",             "HEAD",    head(NO_AUTH_CORS),  head(BAD_CID_CORS),      head(BAD_CID_CORS),      head(NO_AUTH_CORS)),
    ("/playlist.m3u",                  "GET",     NO_AUTH,             CHANNELS_SIGNED,         CHANNELS_SIGNED,         NO_AUTH),
    ("/playlist.m3u",                  "HEAD",    head(NO_AUTH),       head(CHANNELS_SIGNED),   head(CHANNELS_SIGNED),   head(NO_AUTH)),
    ("/playlist.m3u",                  "POST",    *every(NO_METHOD)),
    ("/playlist.m3u",                  "OPTIONS", *every(PREFLIGHT_REFUSED)),
    # Paths that match no route, or another one than they seem to.
    ("/stream",                        "GET",     *every(NOT_FOUND)),
    ("/stream/",                       "GET",     *every(NOT_FOUND)),
    ("/stream/{cid}/",                 "GET",     *every(NOT_FOUND)),
    ("/stream/infohash",               "GET",     NO_AUTH,             BAD_CID,                 BAD_CID,                 NO_AUTH),
    ("/hls/{cid}",                     "GET",     *every(NOT_FOUND)),
    ("/hls/infohash/{ih}",             "GET",     NO_AUTH_CORS,        BAD_CID_CORS,            BAD_CID_CORS,            NO_AUTH_CORS),
    ("/hls/infohash/index.m3u8",       "GET",     NO_AUTH_CORS,        BAD_CID_CORS,            BAD_CID_CORS,            NO_AUTH_CORS),
    ("/playlist.m3u/",                 "GET",     *every(NOT_FOUND)),
    ("/key/playlist.m3u",              "GET",     *every(NOT_FOUND)),
)

KEYED_COLUMNS: Final = (Auth.KEY, Auth.UNKNOWN_KEY, Auth.REVOKED_KEY, Auth.BEARER_UNKNOWN_KEY)
# Paths under PREFIX/key/{key}: an app's access key in the path.
KEYED: Final[tuple[Row, ...]] = (
    # path                             method     key                      unknown key          key of a deactivated user  bearer token, unknown key
    ("/stream/{cid}",                  "GET",     used(LIVE),              NO_KEY,              NO_KEY,              NO_KEY),
    ("/stream/{cid}",                  "HEAD",    head(LIVE),              head(NO_KEY),        head(NO_KEY),        head(NO_KEY)),
    ("/stream/{cid}",                  "POST",    *every(NO_METHOD)),
    ("/stream/{cid}",                  "OPTIONS", *every(PREFLIGHT_REFUSED)),
    ("/stream/infohash/{ih}",          "GET",     used(LIVE),              NO_KEY,              NO_KEY,              NO_KEY),
    ("/stream/infohash/{ih}",          "HEAD",    head(LIVE),              head(NO_KEY),        head(NO_KEY),        head(NO_KEY)),
    ("/stream/infohash/{ih}",          "POST",    *every(NO_METHOD)),
    ("/stream/infohash/{ih}",          "OPTIONS", *every(PREFLIGHT_REFUSED)),
    ("/stream/zz",                     "GET",     used(BAD_CID),           NO_KEY,              NO_KEY,              NO_KEY),
    ("/stream/zz",                     "HEAD",    head(BAD_CID),           head(NO_KEY),        head(NO_KEY),        head(NO_KEY)),
    ("/hls/{cid}/index.m3u8",          "GET",     used(PLAYLIST_KEY),      NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/{cid}/index.m3u8",          "HEAD",    PLAYLIST_HEAD,           head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/hls/{cid}/index.m3u8",          "POST",    *every(NO_METHOD)),
    ("/hls/{cid}/index.m3u8",          "OPTIONS", *every(PREFLIGHT)),
    ("/hls/{cid}/{seq}.ts",            "GET",     used(SEGMENT),           NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/{cid}/{seq}.ts",            "HEAD",    head(SEGMENT),           head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/hls/{cid}/{seq}.ts",            "POST",    *every(NO_METHOD)),
    ("/hls/{cid}/{seq}.ts",            "OPTIONS", *every(PREFLIGHT)),
    ("/hls/{cid}/999999.ts",           "GET",     used(NO_SEGMENT_CORS),   NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/{cid}/999999.ts",           "HEAD",    head(NO_SEGMENT_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/hls/{cid}/nothing.txt",         "GET",     used(NO_RESOURCE_CORS),  NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/{cid}/nothing.txt",         "HEAD",    head(NO_RESOURCE_CORS),  head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/hls/infohash/{ih}/index.m3u8",  "GET",     used(PLAYLIST_KEY),      NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/infohash/{ih}/index.m3u8",  "HEAD",    PLAYLIST_HEAD,           head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/hls/infohash/{ih}/index.m3u8",  "POST",    *every(NO_METHOD)),
    ("/hls/infohash/{ih}/index.m3u8",  "OPTIONS", *every(PREFLIGHT)),
    ("/hls/infohash/{ih}/{ihseq}.ts",  "GET",     used(SEGMENT),           NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/infohash/{ih}/{ihseq}.ts",  "HEAD",    head(SEGMENT),           head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/hls/zz/index.m3u8",             "GET",     used(BAD_CID_CORS),      NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/zz/index.m3u8",             "HEAD",    head(BAD_CID_CORS),      head(NO_KEY_CORS),   head(NO_KEY_CORS),   head(NO_KEY_CORS)),
    ("/playlist.m3u",                  "GET",     used(CHANNELS_KEY),      NO_KEY,              NO_KEY,              NO_KEY),
    ("/playlist.m3u",                  "HEAD",    head(CHANNELS_KEY),      head(NO_KEY),        head(NO_KEY),        head(NO_KEY)),
    ("/playlist.m3u",                  "POST",    *every(NO_METHOD)),
    ("/playlist.m3u",                  "OPTIONS", *every(PREFLIGHT_REFUSED)),
    # Paths that match no route, or another one than they seem to.
    ("",                               "GET",     *every(NOT_FOUND)),
    ("/stream",                        "GET",     *every(NOT_FOUND)),
    ("/stream/",                       "GET",     *every(NOT_FOUND)),
    ("/stream/{cid}/",                 "GET",     *every(NOT_FOUND)),
    ("/stream/infohash",               "GET",     used(BAD_CID),           NO_KEY,              NO_KEY,              NO_KEY),
    ("/hls/{cid}",                     "GET",     *every(NOT_FOUND)),
    ("/hls/infohash/{ih}",             "GET",     used(BAD_CID_CORS),      NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/hls/infohash/index.m3u8",       "GET",     used(BAD_CID_CORS),      NO_KEY_CORS,         NO_KEY_CORS,         NO_KEY_CORS),
    ("/playlist.m3u/",                 "GET",     *every(NOT_FOUND)),
)

# With the only engine entry unloaded (paths under PREFIX, then PREFIX/key/{key}).
# path                                 method     bearer token             key
NO_ENGINE_ROWS: Final[tuple[tuple[str, str, Answer, Answer], ...]] = (
    ("/stream/{cid}",                  "GET",     NO_ENGINE,               used(NO_ENGINE)),
    ("/stream/{cid}",                  "HEAD",    head(NO_ENGINE),         head(NO_ENGINE)),
    ("/hls/{cid}/index.m3u8",          "GET",     NO_ENGINE_CORS,          used(NO_ENGINE_CORS)),
    ("/hls/{cid}/index.m3u8",          "HEAD",    head(NO_ENGINE_CORS),    head(NO_ENGINE_CORS)),
    ("/hls/{cid}/0.ts",                "GET",     NO_SEGMENT_CORS,         used(NO_SEGMENT_CORS)),
    ("/hls/{cid}/0.ts",                "HEAD",    head(NO_SEGMENT_CORS),   head(NO_SEGMENT_CORS)),
    ("/playlist.m3u",                  "GET",     CHANNELS_SIGNED,         used(CHANNELS_KEY)),
    ("/playlist.m3u",                  "HEAD",    head(CHANNELS_SIGNED),   head(CHANNELS_KEY)),
)
# fmt: on


@dataclass
class Setup:
    """What the requests need: the client, the secrets, the user's token."""

    hass: HomeAssistant
    client: TestClient
    token: str
    key: str
    revoked: str
    unknown: str
    ih: str
    key_subentry: str


def _newest_segment(hass: HomeAssistant, kind: ContentKind, value: str) -> str:
    hls = get_hub(hass).hls_for(ContentRef(kind, value))
    assert hls is not None
    assert hls.segmenter.segments
    return str(hls.segmenter.segments[-1].seq)


def _path(setup: Setup, form: str, auth: Auth) -> str:
    key = {
        Auth.KEY: setup.key,
        Auth.REVOKED_KEY: setup.revoked,
    }.get(auth, setup.unknown)
    values = {"cid": CID, "ih": setup.ih, "key": key}
    if "{seq}" in form:
        values["seq"] = _newest_segment(setup.hass, ContentKind.CONTENT_ID, CID)
    if "{ihseq}" in form:
        values["ihseq"] = _newest_segment(setup.hass, ContentKind.INFOHASH, setup.ih)
    return PREFIX + form.format(**values)


def _gist(setup: Setup, resp: ClientResponse, body: bytes) -> str:
    """The body in a few words: a message, TS, or how a playlist's URLs sign in."""
    if not body:
        return ""
    if resp.content_type == "video/mp2t":
        return "TS" if body[0] == 0x47 else "not TS"
    text = body.decode()
    if resp.content_type not in ("application/vnd.apple.mpegurl", "audio/x-mpegurl"):
        return text
    urls = [URL(line) for line in text.splitlines() if not line.startswith("#")]
    how = set()
    for url in urls:
        if "authSig" in url.query:
            how.add("signed")
        elif url.path.startswith(f"{PREFIX}/key/{setup.key}/") and not url.query:
            how.add("key")
        else:
            how.add("bare")
    return f"{text.splitlines()[0]}, URLs {'+'.join(sorted(how))}"


async def _ask(setup: Setup, method: str, form: str, auth: Auth) -> Answer:
    path = _path(setup, form, auth)
    headers = {"Origin": ORIGIN}
    if method == "OPTIONS":
        headers["Access-Control-Request-Method"] = "GET"
    if auth in (Auth.BEARER, Auth.BEARER_UNKNOWN_KEY):
        headers["Authorization"] = f"Bearer {setup.token}"
    elif auth is Auth.SIGNED:
        path = signed_path(setup.hass, path, setup.token)
    elif auth is Auth.EXPIRED:
        refresh = setup.hass.auth.async_validate_access_token(setup.token)
        assert refresh is not None
        path = async_sign_path(
            setup.hass, path, timedelta(seconds=-60), refresh_token_id=refresh.id
        )
    keys = get_keys(setup.hass)
    keys.last_used.clear()
    resp = await setup.client.request(method, path, headers=headers)
    try:
        if resp.content_type == "video/mp2t" and "Content-Length" not in resp.headers:
            # A live stream: its first bytes tell enough.
            async with asyncio.timeout(10):
                body = await resp.content.read(188)
        else:
            body = await resp.read()
    finally:
        resp.close()
    watched = {name: resp.headers[name] for name in WATCHED if name in resp.headers}
    if resp.content_type in VARYING_LENGTH and "Content-Length" in watched:
        watched["Content-Length"] = ANY
    return Answer(
        resp.status,
        watched,
        _gist(setup, resp, body),
        setup.key_subentry in keys.last_used,
    )


@pytest.fixture
async def setup(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client_no_auth: ClientFactory,
    hass_access_token: str,
    hass_admin_user: MockUser,
) -> Setup:
    """A channel, a key, a key of a deactivated user; HLS of both refs running."""
    await load_on_engine(engine_sim, CID)
    await add_channel(hass, loaded_entry, "Sports 1", CID)
    key = add_key(hass, loaded_entry, hass_admin_user.id, "Living room TV")
    gone = MockUser(name="Gone", is_active=False).add_to_hass(hass)
    revoked = add_key(hass, loaded_entry, gone.id, "Gone's TV")
    await hass.async_block_till_done()
    found = get_keys(hass).find(key)
    assert found is not None
    setup = Setup(
        hass,
        await hass_client_no_auth(),
        hass_access_token,
        key,
        revoked,
        new_secret(),
        engine_sim.infohash_for(CID),
        found.subentry_id,
    )
    for form in ("/hls/{cid}/index.m3u8", "/hls/infohash/{ih}/index.m3u8"):
        answer = await _ask(setup, "GET", form, Auth.BEARER)
        assert answer.status == HTTPStatus.OK, answer
    return setup


async def _check(
    setup: Setup,
    prefix: str,
    columns: tuple[Auth, ...],
    rows: tuple[tuple[str, str, *tuple[Answer, ...]], ...],
) -> list[str]:
    """Ask every cell of a table; the cells answered otherwise."""
    wrong = []
    for form, method, *expected in rows:
        assert len(expected) == len(columns), form
        for auth, want in zip(columns, expected, strict=True):
            got = await _ask(setup, method, prefix + form, auth)
            if got != want:
                wrong.append(f"{method} {prefix}{form} [{auth}]: {got}, not {want}")
    return wrong


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


async def test_the_routes_are_these(
    hass: HomeAssistant, loaded_entry: MockConfigEntry
) -> None:
    """The URL patterns and methods Home Assistant routes to the integration."""
    app = hass.http.app
    routed = {
        (route.method, _shape(resource.canonical))
        for resource in app.router.resources()
        if resource.canonical.startswith(f"{PREFIX}/")
        for route in resource
    }
    assert routed == {(method, _shape(path)) for method, path in ROUTES}


async def test_routes_signed_in_the_home_assistant_way(setup: Setup) -> None:
    """Bearer token, signed path, or nothing, on every path under the prefix."""
    wrong = await _check(setup, "", SIGNED_IN_COLUMNS, SIGNED_IN)
    assert not wrong, "\n".join(wrong)


async def test_routes_of_an_access_key(setup: Setup) -> None:
    """A key in the path: valid, unknown, of a deactivated user, beside a bearer."""
    wrong = await _check(setup, "/key/{key}", KEYED_COLUMNS, KEYED)
    assert not wrong, "\n".join(wrong)


async def test_routes_without_an_engine(
    setup: Setup, loaded_entry: MockConfigEntry
) -> None:
    """With no engine loaded: what a GET would need is not there, HEAD says so."""
    assert await setup.hass.config_entries.async_unload(loaded_entry.entry_id)
    wrong = []
    for form, method, bearer, key in NO_ENGINE_ROWS:
        wrong += await _check(setup, "", (Auth.BEARER,), ((form, method, bearer),))
        wrong += await _check(setup, "/key/{key}", (Auth.KEY,), ((form, method, key),))
    assert not wrong, "\n".join(wrong)
