"""The engine client against the simulator's real HTTP answers and fault switches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
import dataclasses
import functools

import aiohttp
import aiohttp.web
import pytest

from custom_components.acestream_proxy.stream.engine import (
    DEFAULT_START_TIMEOUT,
    ContentKind,
    ContentRef,
    EngineApiError,
    EngineClient,
    EngineConnectionError,
    EngineResponseError,
    EngineTimeoutError,
    SessionGoneError,
    SessionState,
    StreamSession,
)
from tests.helpers import pids
from tests.simulator import EngineSimulator

CID = ContentRef.parse(ContentKind.CONTENT_ID, "AB" * 20)


@pytest.fixture
def sim_strict() -> bool:
    """Unit tests of the client: the kind simulator accepts any selector."""
    return False


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session (HA's shared one in production)."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(http: aiohttp.ClientSession, engine_sim: EngineSimulator) -> EngineClient:
    """A client of the simulator with a short request timeout."""
    return EngineClient(http, "127.0.0.1", engine_sim.port, request_timeout=0.5)


def test_content_ref_parse() -> None:
    """40 hex characters of any case, normalised to lower case."""
    assert CID.value == "ab" * 20
    for bad in ("", "ab" * 19, "zz" * 20, "ab" * 21):
        with pytest.raises(ValueError, match="40 hexadecimal"):
            ContentRef.parse(ContentKind.INFOHASH, bad)


def test_base_url_of_ipv6_host(http: aiohttp.ClientSession) -> None:
    """IPv6 literals are bracketed."""
    assert EngineClient(http, "::1", 6878).base_url == "http://[::1]:6878"
    assert repr(EngineClient(http, "h", 1)) == "EngineClient(http://h:1)"


async def test_get_version(client: EngineClient) -> None:
    """The documented liveness answer."""
    version = await client.get_version()
    assert version.version == "3.2.12"
    assert version.code == 3021200
    assert version.platform == "linux"


@pytest.mark.parametrize(
    ("mode", "error", "text"),
    [
        ("error_json", EngineApiError, "engine is not ready"),
        ("html500", EngineResponseError, "Internal Server Error"),
        ("empty", EngineResponseError, "empty answer"),
        ("wrong_type", EngineResponseError, "instead of JSON"),
        ("hang", EngineTimeoutError, "did not answer in time"),
    ],
)
async def test_get_version_faults(
    client: EngineClient,
    engine_sim: EngineSimulator,
    mode: str,
    error: type[Exception],
    text: str,
) -> None:
    """Every kind of bad answer becomes one typed error with a useful message."""
    engine_sim.version_mode = mode
    with pytest.raises(error, match=text):
        await client.get_version()
    engine_sim.version_mode = "ok"


async def test_refused(client: EngineClient, engine_sim: EngineSimulator) -> None:
    """Nothing listening."""
    await engine_sim.stop()
    with pytest.raises(EngineConnectionError, match="cannot connect"):
        await client.get_version()


async def test_session_lifecycle(
    client: EngineClient, engine_sim: EngineSimulator
) -> None:
    """Start, read, stats, stop; a second stop reports the session gone."""
    session = await client.start_session(CID, pid="p1")
    assert session.infohash == engine_sim.infohash_for(CID.value)
    assert session.pid == "p1"
    assert session.is_live
    assert session.playback_url.startswith(engine_sim.base_url + "/ace/r/")

    stats = await client.get_stats(session)
    assert stats.state is SessionState.BUFFERING  # cold start: prebuf
    assert stats.peers is not None

    resp = await client.open_stream(session, connect_timeout=2, read_timeout=5)
    data = await resp.content.readexactly(188 * 100)
    resp.close()
    assert set(pids(data)) - {0x1FFF}
    stats = await client.get_stats(session)
    assert stats.state is SessionState.PLAYING
    assert stats.live_delay is not None
    assert stats.live_delay >= 0
    assert stats.speed_down_kbps is not None
    # Polling stats never counts as a reader.
    assert engine_sim.counters.readers_opened == 1

    assert await client.stop_session(session) is True
    assert await client.stop_session(session) is False
    with pytest.raises(SessionGoneError):
        await client.get_stats(session)
    with pytest.raises(SessionGoneError):
        await client.open_stream(session, connect_timeout=2, read_timeout=2)


async def test_start_by_infohash(client: EngineClient) -> None:
    """The infohash selector is sent as infohash=."""
    infohash = ContentRef.parse(ContentKind.INFOHASH, "cd" * 20)
    session = await client.start_session(infohash)
    assert session.infohash == "cd" * 20
    assert await client.stop_session(session)


def _unknown_content(sim: EngineSimulator) -> None:
    sim.unknown_content.add(CID.value)


def _invalid_content_id(sim: EngineSimulator) -> None:
    sim.getstream_error = "invalid content id"


def _getstream_hangs(sim: EngineSimulator) -> None:
    sim.getstream_hang = True


@pytest.mark.parametrize(
    ("fault", "error", "text", "start_timeout"),
    [
        (
            _unknown_content,
            EngineApiError,
            "failed to load content",
            DEFAULT_START_TIMEOUT,
        ),
        (
            _invalid_content_id,
            EngineApiError,
            "invalid content id",
            DEFAULT_START_TIMEOUT,
        ),
        (_getstream_hangs, EngineTimeoutError, "did not answer in time", 0.3),
    ],
)
async def test_start_errors(
    client: EngineClient,
    engine_sim: EngineSimulator,
    fault: Callable[[EngineSimulator], None],
    error: type[Exception],
    text: str,
    start_timeout: float,
) -> None:
    """The engine's error texts, and a hanging getstream."""
    fault(engine_sim)
    with pytest.raises(error, match=text):
        await client.start_session(CID, start_timeout=start_timeout)
    engine_sim.getstream_hang = False


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param(EngineSimulator.restart, SessionGoneError, id="restarted"),
        pytest.param(EngineSimulator.stop, EngineConnectionError, id="stopped"),
    ],
)
async def test_a_session_the_engine_lost(
    client: EngineClient,
    engine_sim: EngineSimulator,
    fault: Callable[[EngineSimulator], Awaitable[None]],
    error: type[Exception],
) -> None:
    """Restarted, the engine has forgotten the session (its URLs are gone, which
    a stop takes as done); stopped, nothing answers them."""
    session = await client.start_session(CID)
    await fault(engine_sim)
    with pytest.raises(error):
        await client.open_stream(session, connect_timeout=2, read_timeout=2)
    with pytest.raises(error):
        await client.get_stats(session)
    if error is SessionGoneError:
        assert await client.stop_session(session) is False
    else:
        with pytest.raises(error):
            await client.stop_session(session)


# One-shot JSON edge cases no sane simulator produces: aioclient_mock is enough.

BASE = "http://engine.local:6878"


@pytest.fixture
def mocked_client(hass, aioclient_mock) -> EngineClient:
    """A client on HA's (mocked) shared session."""
    from homeassistant.helpers.aiohttp_client import async_get_clientsession

    return EngineClient(async_get_clientsession(hass), "engine.local", 6878)


async def test_urls_are_rewritten_to_the_configured_engine(
    mocked_client: EngineClient, aioclient_mock
) -> None:
    """An engine in Docker answers URLs with an address we cannot reach."""
    aioclient_mock.get(
        f"{BASE}/ace/getstream",
        json={
            "response": {
                "playback_url": "http://172.17.0.2:6878/ace/r/" + "a" * 40 + "/tok",
                "stat_url": "http://172.17.0.2:6878/ace/stat/" + "a" * 40 + "/tok",
                "command_url": "https://172.17.0.2/ace/cmd/" + "a" * 40 + "/tok",
                "infohash": "A" * 40,
                "is_live": 1,
                "bitrate": "250000",
                "extra": "ignored",
            },
            "error": None,
        },
    )
    session = await mocked_client.start_session(CID)
    assert session.playback_url == f"{BASE}/ace/r/{'a' * 40}/tok"
    assert session.command_url == f"{BASE}/ace/cmd/{'a' * 40}/tok"
    assert session.infohash == "a" * 40
    assert session.bitrate == 250000


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"response": None, "error": None}, "without a response"),
        ({"response": {"infohash": "a" * 40}, "error": None}, "without 'playback_url'"),
        (
            {
                "response": {
                    "playback_url": "x",
                    "stat_url": "/s",
                    "command_url": "/c",
                    "infohash": "nothex",
                },
                "error": None,
            },
            "invalid infohash",
        ),
        (
            {
                "response": {
                    "playback_url": "http://h",
                    "stat_url": "/s",
                    "command_url": "/c",
                    "infohash": "a" * 40,
                },
                "error": None,
            },
            "malformed URL",
        ),
        (["not", "an", "object"], "unexpected JSON"),
    ],
)
async def test_malformed_getstream(
    mocked_client: EngineClient, aioclient_mock, body: object, text: str
) -> None:
    """Answers that are JSON but not the API."""
    aioclient_mock.get(f"{BASE}/ace/getstream", json=body)
    with pytest.raises(EngineResponseError, match=text):
        await mocked_client.start_session(CID)


async def test_error_object_and_missing_version(
    mocked_client: EngineClient, aioclient_mock
) -> None:
    """Newer engines answer errors as objects; a result without version is bad."""
    aioclient_mock.get(
        f"{BASE}/webui/api/service",
        json={"result": None, "error": {"message": "unknown method", "code": 0}},
    )
    with pytest.raises(EngineApiError, match="unknown method"):
        await mocked_client.get_version()
    aioclient_mock.clear_requests()
    aioclient_mock.get(f"{BASE}/webui/api/service", json={"result": {}, "error": None})
    with pytest.raises(EngineResponseError, match="without a version"):
        await mocked_client.get_version()


def _session(base: str, name: str, reader: str | None = None) -> StreamSession:
    """A session of the engine at ``base`` that nobody asked it for."""
    return StreamSession(
        playback_url=f"{base}/ace/r/{reader or name}",
        stat_url=f"{base}/ace/stat/{name}",
        command_url=f"{base}/ace/cmd/{name}",
        infohash="a" * 40,
        playback_session_id="",
        pid="p",
        is_live=True,
    )


async def test_plain_text_session_gone(
    mocked_client: EngineClient, aioclient_mock
) -> None:
    """Without format=json the engine answers errors as HTTP status + text."""
    aioclient_mock.get(
        f"{BASE}/ace/stat/x", status=404, text="unknown playback session id"
    )

    session = _session(BASE, "x")
    with pytest.raises(SessionGoneError):
        await mocked_client.get_stats(session)
    aioclient_mock.get(
        f"{BASE}/ace/r/x",
        status=500,
        text="Internal Server Error, couldn't find resource",
    )
    with pytest.raises(EngineApiError, match="HTTP 500: Internal Server Error"):
        await mocked_client.open_stream(session, connect_timeout=1, read_timeout=1)


async def test_transport_errors(mocked_client: EngineClient, aioclient_mock) -> None:
    """A reset mid-answer and a stream that times out are typed errors too."""
    aioclient_mock.get(
        f"{BASE}/webui/api/service", exc=aiohttp.ServerDisconnectedError()
    )
    with pytest.raises(EngineConnectionError, match="failed"):
        await mocked_client.get_version()

    session = _session(BASE, "y")
    aioclient_mock.get(f"{BASE}/ace/r/y", exc=TimeoutError())
    with pytest.raises(EngineTimeoutError):
        await mocked_client.open_stream(session, connect_timeout=1, read_timeout=1)
    aioclient_mock.clear_requests()
    aioclient_mock.get(f"{BASE}/ace/r/y", exc=aiohttp.ServerDisconnectedError())
    with pytest.raises(EngineConnectionError):
        await mocked_client.open_stream(session, connect_timeout=1, read_timeout=1)


# A hostile or broken "engine": a real local HTTP server that redirects, floods.


@pytest.fixture
async def rogue(aiohttp_server, engine_sim: EngineSimulator):
    """A server that redirects everything to the simulator or answers 2 MB."""
    hits: list[str] = []

    async def redirect(request: aiohttp.web.Request) -> aiohttp.web.Response:
        hits.append(request.path)
        raise aiohttp.web.HTTPFound(engine_sim.base_url + request.path_qs)

    async def flood(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        hits.append(request.path)
        response = aiohttp.web.StreamResponse(
            headers={"Content-Type": "application/json"}
        )
        await response.prepare(request)
        try:
            await response.write(b'{"result": "')
            for _ in range(256):
                await response.write(b"x" * 8192)
            await response.write(b'"}')
        except ConnectionResetError:
            pass
        return response

    app = aiohttp.web.Application()
    app.router.add_get("/webui/api/service", flood)
    app.router.add_get("/ace/getstream", redirect)
    app.router.add_get("/ace/r/{tail:.*}", redirect)
    server = await aiohttp_server(app)
    server.hits = hits
    return server


async def test_engine_redirects_are_not_followed(
    http: aiohttp.ClientSession, rogue, engine_sim: EngineSimulator
) -> None:
    """A 302 to another address is an error, for JSON calls and for the reader."""
    client = EngineClient(http, "127.0.0.1", rogue.port, request_timeout=2)
    with pytest.raises(EngineResponseError, match="HTTP 302"):
        await client.start_session(CID)
    session = _session(client.base_url, "x", reader=f"{'a' * 40}/x")
    with pytest.raises(EngineApiError, match="HTTP 302"):
        await client.open_stream(session, connect_timeout=2, read_timeout=2)
    assert rogue.hits == ["/ace/getstream", f"/ace/r/{'a' * 40}/x"]
    # The simulator behind the redirect never saw a request.
    assert engine_sim.counters.sessions_opened == 0
    assert engine_sim.counters.readers_opened == 0


async def test_engine_json_answers_are_bounded(
    http: aiohttp.ClientSession, rogue
) -> None:
    """A 2 MB answer is refused after 1 MB, not read into memory."""
    client = EngineClient(http, "127.0.0.1", rogue.port, request_timeout=5)
    with pytest.raises(EngineResponseError, match="more than 1024 KiB"):
        await client.get_version()


async def test_session_urls_are_pinned_to_the_engine(
    client: EngineClient, engine_sim: EngineSimulator, rogue
) -> None:
    """Stat, command and playback URLs of another host are never requested."""
    real = await client.start_session(CID)
    elsewhere = f"http://127.0.0.1:{rogue.port}"
    calls = {
        "stat_url": client.get_stats,
        "command_url": client.stop_session,
        "playback_url": functools.partial(
            client.open_stream, connect_timeout=1, read_timeout=1
        ),
    }
    for field, call in calls.items():
        url = getattr(real, field).replace(engine_sim.base_url, elsewhere)
        with pytest.raises(EngineResponseError, match="another host"):
            await call(dataclasses.replace(real, **{field: url}))
    https = dataclasses.replace(
        real, stat_url=real.stat_url.replace("http://", "https://")
    )
    with pytest.raises(EngineResponseError, match="another host"):
        await client.get_stats(https)
    assert rogue.hits == []
    assert await client.stop_session(real)
