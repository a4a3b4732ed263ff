"""The broadcaster end to end: HA's HTTP stack, the engine simulator, real clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
import socket
from types import CodeType

from aiohttp.test_utils import TestClient
from homeassistant.components import http as http_component
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.acestream_proxy.const import (
    CONF_LINGER,
    CONF_MAX_BROADCASTS,
    CONF_MAX_VIEWERS,
    EVENT_TYPE,
)
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.broadcast import (
    NOT_TS_REASON,
    BroadcastState,
    Phase,
)
from tests.ha_fixtures import (
    CID,
    CID2,
    PREFIX,
    ClientFactory,
    Viewer,
    broadcaster_of,
    until,
    watch_and_leave,
)
from tests.helpers import (
    discontinuities,
    ffprobe_streams,
    first_video_frame,
    load_on_engine,
    pids,
    read_bytes,
    read_for,
    read_to_end,
    read_until,
    signed_path,
    strip_nulls,
)
from tests.simulator import EngineSimulator

URL = f"{PREFIX}/stream/{CID}"


@pytest.fixture
def playing_reads() -> int:
    """The playing viewer is well into the stream before a fault."""
    return 100_000


@pytest.fixture
def broadcast_config() -> dict[str, float]:
    """Short timeouts so faults play out in a second, not in minutes."""
    return {
        "write_timeout": 1.0,
        "stall_timeout": 1.0,
        "start_timeout": 5.0,
        "getstream_timeout": 1.0,
        "retry_give_up": 2.0,
        "retry_backoff_max": 0.3,
        "keepalive_interval": 0.3,
        "not_ts_bytes": 300_000,
    }


async def test_two_viewers_share_one_session(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Both viewers get the same bytes from one engine session."""
    async with owner_client.get(URL) as first:
        assert first.status == 200
        assert first.headers["Content-Type"] == "video/mp2t"
        assert first.headers["Cache-Control"] == "no-store"
        assert "Content-Length" not in first.headers
        head = await read_bytes(first, 100_000)
        async with owner_client.get(URL) as second:
            one, two = await asyncio.gather(read_for(first, 1.5), read_for(second, 1.0))
    assert engine_sim.counters.sessions_opened == 1
    assert engine_sim.counters.readers_opened == 1
    stream_one = strip_nulls(head + one)
    stream_two = strip_nulls(two)
    # The late viewer starts with PAT + PMT, then the shared bytes from a keyframe.
    shared = stream_two[2 * 188 : 2 * 188 + 50_000]
    assert len(shared) == 50_000
    assert shared in stream_one


async def test_proxied_stream_is_h264_and_aac(
    hass: HomeAssistant, owner_client: TestClient, hass_access_token: str
) -> None:
    """ffprobe, a real client, reads the stream through a signed URL."""
    signed = signed_path(hass, URL, hass_access_token)
    streams = await ffprobe_streams(owner_client.make_url(signed))
    codecs = {stream["codec_type"]: stream["codec_name"] for stream in streams}
    assert codecs == {"video": "h264", "audio": "aac"}


async def test_stream_body_is_raw_ts_delimited_by_close(
    hass: HomeAssistant, owner_client: TestClient, hass_access_token: str
) -> None:
    """An HTTP/1.1 client gets the TS bytes as they are: no chunked framing."""
    signed = signed_path(hass, URL, hass_access_token)
    reader, writer = await asyncio.open_connection(owner_client.host, owner_client.port)
    try:
        writer.write(
            f"GET {signed} HTTP/1.1\r\nHost: {owner_client.host}\r\n\r\n".encode()
        )
        async with asyncio.timeout(10):
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(188 * 500)
    finally:
        writer.close()
    lines = head.decode().lower().split("\r\n")
    assert lines[0] == "http/1.1 200 ok"
    assert "connection: close" in lines
    assert not any(line.startswith("transfer-encoding") for line in lines)
    assert not any(line.startswith("content-length") for line in lines)
    # Every 188th byte is a sync byte: nothing was inserted between packets.
    assert all(body[i] == 0x47 for i in range(0, len(body), 188))


async def test_the_view_returns_while_its_viewer_streams(
    hass: HomeAssistant, owner_client: TestClient
) -> None:
    """Once a viewer has joined, Home Assistant's middlewares and the view return:
    only aiohttp, writing the body, waits on the stream. Every layer left
    suspended would be a coroutine per viewer for Python's collector to walk."""
    async with owner_client.get(URL) as resp:
        await read_bytes(resp, 50_000)
        (task,) = [
            task for task in asyncio.all_tasks() if "Viewer.stream" in _awaiting(task)
        ]
        chain = _awaiting(task)
        assert chain[chain.index("LiveStreamResponse.write_eof") - 1].endswith(
            "finish_response"
        )
        assert "SignedInView.get" not in chain
        ha_http = Path(http_component.__file__).parent
        assert not [
            code
            for code in _codes(task)
            if Path(code.co_filename).is_relative_to(ha_http)
        ]


def _codes(task: asyncio.Task[object]) -> list[CodeType]:
    """The code of each coroutine in the chain ``task`` is suspended in."""
    codes = []
    awaited: object = task.get_coro()
    while isinstance(awaited, Coroutine):
        codes.append(awaited.cr_code)
        awaited = awaited.cr_await
    return codes


def _awaiting(task: asyncio.Task[object]) -> list[str]:
    return [code.co_qualname for code in _codes(task)]


async def test_late_joiner_starts_at_pat_and_decodes_at_once(
    owner_client: TestClient, tmp_path: Path
) -> None:
    """A viewer joining a running broadcast starts at PAT/PMT then a keyframe."""
    async with owner_client.get(URL) as first:
        await read_bytes(first, 300_000)
        await asyncio.sleep(0.7)  # land somewhere in the middle of a GOP
        async with owner_client.get(URL) as late:
            data = await read_bytes(late, 200_000, timeout=5)
    assert data[:4] == bytes([0x47, 0x40, 0x00, 0x10]) or data[:3] == bytes(
        [0x47, 0x40, 0x00]
    )
    assert pids(data[:376])[0] == 0
    sample = tmp_path / "late.ts"
    sample.write_bytes(data[: len(data) // 188 * 188])
    frame = await first_video_frame(sample)
    assert frame["key_frame"] == 1
    assert frame["pict_type"] == "I"


async def test_paused_viewer_is_dropped_and_hurts_nobody(
    hass: HomeAssistant,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    hass_access_token: str,
) -> None:
    """A client that stops reading is dropped after the write timeout."""
    engine_sim.burst_seconds = 30  # a real engine's burst fills socket buffers fast
    async with owner_client.get(URL) as fast:
        await read_bytes(fast, 10_000)
        broadcaster = next(iter(get_hub(hass).broadcasts.values())).broadcaster
        # A raw client with a tiny receive window that never reads a byte.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        url = owner_client.make_url(URL)
        await loop.sock_connect(sock, (url.host, url.port))
        request = (
            f"GET {URL} HTTP/1.1\r\nHost: {url.host}\r\n"
            f"Authorization: Bearer {hass_access_token}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        try:
            await until(lambda: broadcaster.viewer_count == 2)
            start = loop.time()
            received = await read_for(fast, 2.5)
            elapsed = loop.time() - start
            await until(lambda: broadcaster.stats.viewers_dropped == 1)
        finally:
            sock.close()
        assert broadcaster.viewer_count == 1
        # The fast viewer kept receiving at least the broadcast's real-time rate.
        assert len(received) / elapsed > engine_sim.bitrate * 0.75  # bytes/s
        assert await read_bytes(fast, 1)


async def test_content_id_then_infohash_share_one_session(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Content id first: the infohash route joins the same broadcast."""
    infohash = engine_sim.infohash_for(CID)
    async with owner_client.get(URL) as by_id:
        await read_bytes(by_id, 50_000)
        async with owner_client.get(f"{PREFIX}/stream/infohash/{infohash}") as ih:
            assert ih.status == 200
            data = await read_bytes(ih, 50_000)
    assert strip_nulls(data)
    assert engine_sim.counters.sessions_opened == 1
    assert engine_sim.counters.getstream_calls == 1
    assert list(get_hub(hass).broadcasts) == [infohash]


async def test_infohash_then_content_id_adopts_the_session(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Infohash first: the content id's getstream supersedes it and is adopted."""
    infohash = engine_sim.infohash_for(CID)
    # An engine plays an infohash only once it has the content's descriptor.
    await load_on_engine(engine_sim, CID)
    async with owner_client.get(f"{PREFIX}/stream/infohash/{infohash}") as ih:
        await read_bytes(ih, 50_000)
        async with owner_client.get(f"{PREFIX}/stream/{CID.upper()}") as by_id:
            assert by_id.status == 200
            both = await asyncio.gather(read_for(ih, 1.5), read_for(by_id, 1.5))
        # The first viewer kept receiving real data after the switch.
        assert all(strip_nulls(part) for part in both)
    assert list(get_hub(hass).broadcasts) == [infohash]
    assert engine_sim.counters.sessions_superseded == 1
    # The superseded session was never stopped: that could cut the new reader.
    assert engine_sim.counters.sessions_stopped == 0
    assert engine_sim.active_sessions() == 1
    assert broadcaster_of(hass, infohash).stats.upstream_restarts == 0


async def test_infohash_broadcast_learns_its_content_id(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Opened by infohash, joined by content id: after an engine restart (which
    forgets descriptors) it reopens by the content id instead of being refused."""
    infohash = engine_sim.infohash_for(CID)
    await load_on_engine(engine_sim, CID)
    async with owner_client.get(f"{PREFIX}/stream/infohash/{infohash}") as ih:
        await read_bytes(ih, 50_000)
        async with owner_client.get(URL) as by_id:
            await read_bytes(by_id, 50_000)
        await engine_sim.restart()
        await engine_sim.wait_accepting()
        after = await read_for(ih, 2.5)
    assert len(strip_nulls(after)) > 50_000
    assert engine_sim.counters.getstream_refused == 0
    assert broadcaster_of(hass, infohash).state is not BroadcastState.FAILED


async def test_cold_start_is_bridged(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Headers at once, null packets during the cold start, then PAT first."""
    engine_sim.cold_start = 3.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with owner_client.get(URL) as resp:
        assert resp.status == 200
        # The response started while the engine was still in its cold start.
        assert loop.time() - start < engine_sim.cold_start
        early = await read_for(resp, 1.0)
        assert early
        assert set(pids(early)) == {0x1FFF}
        later = strip_nulls(await read_bytes(resp, 100_000))
    assert pids(later[:188]) == [0]


@pytest.mark.parametrize("entry_options", [{CONF_LINGER: 1}])
async def test_linger_then_exactly_one_stop(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """The session outlives its last viewer by the linger, then stops once."""
    broadcaster = await watch_and_leave(hass, owner_client, engine_sim)
    loop = asyncio.get_running_loop()
    await until(lambda: broadcaster.viewer_count == 0)
    left = loop.time()
    assert broadcaster.state is BroadcastState.LINGERING
    await until(lambda: engine_sim.counters.sessions_stopped == 1, timeout=3)
    assert loop.time() - left >= 0.9  # not before the linger (1 s) ran out
    # Once the close is over nothing is left that could stop it again. (Its state
    # reads STOPPED from the start of the close; the phase only at its end.)
    await until(lambda: broadcaster.phase is Phase.STOPPED)
    assert engine_sim.counters.sessions_stopped == 1
    assert engine_sim.active_sessions() == 0
    assert get_hub(hass).broadcasts == {}


@pytest.mark.parametrize("entry_options", [{CONF_LINGER: 2}])
async def test_rejoin_during_linger(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """A viewer that comes back during the linger reuses the running session."""
    broadcaster = await watch_and_leave(hass, owner_client, engine_sim)
    await until(lambda: broadcaster.state is BroadcastState.LINGERING)
    async with owner_client.get(URL) as resp:
        data = await read_bytes(resp, 50_000)
        assert broadcaster.state is BroadcastState.PLAYING
    # Straight from the running session: PAT first, no new engine session (so no
    # cold start), no new reader.
    assert pids(data[:188]) == [0]
    assert engine_sim.counters.sessions_opened == 1
    assert engine_sim.counters.readers_opened == 1
    assert engine_sim.counters.sessions_stopped == 0


async def test_upstream_cut_is_recovered_with_viewers_kept(
    engine_sim: EngineSimulator, playing: Viewer
) -> None:
    """The engine cuts the reader: viewers stay, get a discontinuity, then data."""
    assert engine_sim.cut_readers() == 1
    after = await read_for(playing.resp, 2.5)
    assert playing.broadcaster.stats.upstream_restarts == 1
    assert playing.broadcaster.state is BroadcastState.PLAYING
    assert discontinuities(after) >= 1
    assert len(strip_nulls(after)) > 100_000
    # The old session was stopped before the new one opened: never two at once.
    assert engine_sim.counters.sessions_opened == 2
    assert engine_sim.counters.sessions_stopped >= 1


async def test_upstream_stall_is_recovered(
    engine_sim: EngineSimulator, playing: Viewer
) -> None:
    """No data for the stall timeout: null packets keep viewers, then a reopen."""
    engine_sim.stall = True
    stalled = await read_for(playing.resp, 1.6)
    assert playing.broadcaster.state is BroadcastState.BUFFERING
    assert 0x1FFF in pids(stalled[: len(stalled) // 188 * 188])
    engine_sim.stall = False
    after = await read_for(playing.resp, 2.0)
    assert playing.broadcaster.stats.upstream_restarts >= 1
    assert len(strip_nulls(after)) > 50_000


async def test_engine_restart_is_recovered(
    engine_sim: EngineSimulator, playing: Viewer
) -> None:
    """The engine restarts: connections refused for a while, then every old URL and
    descriptor is gone; the broadcast reopens by its content id, viewers kept."""
    await engine_sim.restart()
    assert not engine_sim.running
    # Viewers wait in BUFFERING on null packets (keep-alive) for the reopen.
    await read_until(
        playing.resp,
        lambda data: (
            playing.broadcaster.state is BroadcastState.BUFFERING
            and 0x1FFF in pids(data[: len(data) // 188 * 188])
        ),
    )
    await engine_sim.wait_accepting()
    after = await read_for(playing.resp, 2.5)
    assert len(strip_nulls(after)) > 50_000
    assert discontinuities(after) >= 1
    assert playing.broadcaster.state is not BroadcastState.FAILED
    assert engine_sim.counters.getstream_refused == 0


async def test_upstream_gives_up_and_ends_viewers(
    hass: HomeAssistant, engine_sim: EngineSimulator, playing: Viewer
) -> None:
    """Failing past the give-up time ends viewers cleanly and the broadcast."""
    engine_sim.getstream_error = "failed to load content"
    engine_sim.cut_readers()
    await read_to_end(playing.resp, 8)
    assert playing.broadcaster.state is BroadcastState.FAILED
    assert playing.broadcaster.failure
    # Viewers end first; the broadcast leaves the hub once its session is stopped.
    await until(lambda: not get_hub(hass).broadcasts)
    assert engine_sim.active_sessions() == 0


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"{PREFIX}/stream/xyz", 400),
        (f"{PREFIX}/stream/" + "g" * 40, 400),
        (f"{PREFIX}/stream/infohash/" + "0" * 39, 400),
    ],
)
async def test_malformed_ids(
    engine_sim: EngineSimulator, owner_client: TestClient, path: str, status: int
) -> None:
    """400 with a message, and nothing asked of the engine."""
    resp = await owner_client.get(path)
    assert resp.status == status
    assert "40 hexadecimal" in await resp.text()
    assert engine_sim.counters.getstream_calls == 0


async def test_no_engine_loaded_is_404(
    hass: HomeAssistant, loaded_entry: MockConfigEntry, owner_client: TestClient
) -> None:
    """Views stay registered after unload and answer 404."""
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    resp = await owner_client.get(URL)
    assert resp.status == 404
    assert "no AceStream engine" in await resp.text()
    resp = await owner_client.head(URL)
    assert resp.status == 404


async def _unknown_content(sim: EngineSimulator, entry: MockConfigEntry) -> None:
    sim.unknown_content.add(CID)


async def _never_loaded(sim: EngineSimulator, entry: MockConfigEntry) -> None:
    """Nothing to do: the engine never played the content, so it refuses its
    infohash (a real engine needs the content id first)."""


async def _getstream_hangs(sim: EngineSimulator, entry: MockConfigEntry) -> None:
    sim.getstream_hang = True


async def _engine_stopped(sim: EngineSimulator, entry: MockConfigEntry) -> None:
    await sim.stop()


async def _engine_known_down(sim: EngineSimulator, entry: MockConfigEntry) -> None:
    """The health check already saw the engine down: no attempt is made."""
    await sim.stop()
    await entry.runtime_data.coordinator.async_refresh()


type Fault = Callable[[EngineSimulator, MockConfigEntry], Awaitable[None]]


@pytest.mark.parametrize(
    ("fault", "by_infohash", "status", "message", "refused"),
    [
        pytest.param(
            _unknown_content, False, 502, "failed to load content", 0, id="engine-error"
        ),
        pytest.param(
            _never_loaded, True, 502, "failed to load content", 1, id="never-loaded"
        ),
        pytest.param(
            _getstream_hangs, False, 504, "did not answer in time", 0, id="hang"
        ),
        pytest.param(_engine_stopped, False, 503, "cannot connect", 0, id="refused"),
        pytest.param(
            _engine_known_down,
            False,
            503,
            "no AceStream engine is reachable",
            0,
            id="known-down",
        ),
    ],
)
async def test_engine_faults_reach_the_viewer(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    fault: Fault,
    by_infohash: bool,
    status: int,
    message: str,
    refused: int,
) -> None:
    """The engine's failure, with its own text, reaches the client: 502 for its
    errors, 504 when getstream hangs, 503 + Retry-After when it is unreachable;
    no broadcast is left behind."""
    await fault(engine_sim, loaded_entry)
    infohash = engine_sim.infohash_for(CID)
    resp = await owner_client.get(
        f"{PREFIX}/stream/infohash/{infohash}" if by_infohash else URL
    )
    assert resp.status == status
    assert message in await resp.text()
    if status == 503:
        assert int(resp.headers["Retry-After"]) > 0
    engine_sim.getstream_hang = False
    assert engine_sim.counters.getstream_refused == refused
    assert get_hub(hass).broadcasts == {}


@pytest.mark.parametrize(
    "entry_options", [{CONF_MAX_BROADCASTS: 1, CONF_MAX_VIEWERS: 1}]
)
async def test_limits_are_503(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Max viewers per broadcast and max broadcasts answer 503 + Retry-After."""
    async with owner_client.get(URL) as resp:
        await read_bytes(resp, 10_000)
        second = await owner_client.get(URL)
        assert second.status == 503
        assert "viewers" in await second.text()
        assert "Retry-After" in second.headers
        other = await owner_client.get(f"{PREFIX}/stream/{CID2}")
        assert other.status == 503
        assert "broadcasts" in await other.text()
    assert engine_sim.counters.sessions_opened == 1


async def test_head_opens_no_session(
    engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """HEAD answers the headers without touching the engine."""
    resp = await owner_client.head(URL)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "video/mp2t"
    resp = await owner_client.head(f"{PREFIX}/stream/infohash/zz")
    assert resp.status == 400
    resp = await owner_client.head(f"{PREFIX}/stream/infohash/{CID}")
    assert resp.status == 200
    assert engine_sim.counters.getstream_calls == 0


async def test_auth_required(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    hass_client_no_auth: ClientFactory,
    hass_access_token: str,
) -> None:
    """No auth: 401 and no engine session; a signed path streams; tampering fails."""
    client = await hass_client_no_auth()
    resp = await client.get(URL)
    assert resp.status == 401
    resp = await client.get(f"{PREFIX}/stream/infohash/{CID}")
    assert resp.status == 401
    assert engine_sim.counters.getstream_calls == 0

    signed = signed_path(hass, URL, hass_access_token)
    tampered = signed.replace(CID, CID2)
    resp = await client.get(tampered)
    assert resp.status == 401
    assert engine_sim.counters.getstream_calls == 0
    async with client.get(signed) as resp:
        assert resp.status == 200
        assert strip_nulls(await read_bytes(resp, 50_000))


async def test_unload_mid_stream_leaves_nothing(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    playing: Viewer,
) -> None:
    """Unloading ends the viewers and stops the engine session."""
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    await read_to_end(playing.resp)
    assert engine_sim.counters.sessions_stopped == 1
    assert engine_sim.active_sessions() == 0
    assert get_hub(hass).broadcasts == {}
    # The engine notices its reader is gone on its own schedule.
    await until(lambda: engine_sim.counters.readers_active == 0)


@pytest.mark.parametrize("entry_options", [{CONF_LINGER: 0}])
async def test_rapid_connect_disconnect_leaves_nothing(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """50 quick zaps: every session opened is stopped, nothing is left running."""
    for index in range(50):
        async with owner_client.get(
            URL if index % 2 else f"{PREFIX}/stream/{CID2}"
        ) as resp:
            assert resp.status == 200
    hub = get_hub(hass)
    await until(lambda: not hub.broadcasts and engine_sim.active_sessions() == 0)
    counters = engine_sim.counters
    assert counters.sessions_opened == 50
    assert counters.sessions_stopped + counters.sessions_superseded == 50
    await until(lambda: counters.readers_active == 0)


async def test_not_mpeg_ts_fails_the_broadcast(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Defect 4: a video-on-demand torrent (no MPEG-TS) ends viewers and fails the
    broadcast with a reason, instead of null packets forever."""
    engine_sim.not_ts.add(CID)
    events = async_capture_events(hass, EVENT_TYPE)
    async with owner_client.get(URL) as resp:
        assert resp.status == 200
        data = await read_to_end(resp, 10)
    assert set(pids(data[: len(data) // 188 * 188])) <= {0x1FFF}
    hub = get_hub(hass)
    await until(lambda: not hub.broadcasts)
    infohash = engine_sim.infohash_for(CID)
    assert hub.failures[infohash] == NOT_TS_REASON
    types = [event.data["type"] for event in events]
    assert types.count("stream_failed") == 1
    assert "stream_started" not in types
    assert engine_sim.active_sessions() == 0
