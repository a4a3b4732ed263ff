"""Tests of the AceStream engine simulator itself (no Home Assistant involved)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import hashlib
import itertools
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.acestream_proxy.stream.ts import (
    ProgramInfo,
    random_access_offsets,
)
from tests.simulator import (
    DEFAULT_FIXTURE,
    VERSION_MODES,
    EngineSimulator,
    Fault,
    SessionLedger,
    parse_faults,
)
from tests.simulator.__main__ import _parse_args
from tests.simulator.ts import TS_PACKET, read_pcr, read_timestamp

CONTENT_ID = "0123456789abcdef0123456789abcdef01234567"
OTHER_ID = "89abcdef0123456789abcdef0123456789abcdef"
TIMEOUT = aiohttp.ClientTimeout(total=10)


@pytest.fixture
async def sim(socket_enabled: None) -> AsyncIterator[EngineSimulator]:
    simulator = EngineSimulator(cold_start=0.05, burst_seconds=0.5)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def http(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as resp:
        assert resp.status == 200
        return await resp.json(content_type=None)


async def start(
    http: aiohttp.ClientSession, sim: EngineSimulator, query: str = ""
) -> dict[str, Any]:
    query = query or f"content_id={CONTENT_ID}"
    body = await get_json(
        http, f"{sim.base_url}/ace/getstream?{query}&format=json&pid=test"
    )
    assert body["error"] is None, body
    response: dict[str, Any] = body["response"]
    return response


@asynccontextmanager
async def reading(
    http: aiohttp.ClientSession, sim: EngineSimulator
) -> AsyncIterator[tuple[Any, aiohttp.ClientResponse]]:
    """A session started, and its reader with data flowing."""
    started = await start(http, sim)
    async with http.get(started["playback_url"]) as stream:
        assert await stream.content.readany()
        yield started, stream


async def read_bytes(resp: aiohttp.ClientResponse, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await resp.content.read(size - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def drain(resp: aiohttp.ClientResponse) -> None:
    while await resp.content.read(65536):
        pass


async def read_until_broken(resp: aiohttp.ClientResponse) -> None:
    """Read until the server ends the transfer; it must be a broken one."""
    with pytest.raises(aiohttp.ClientPayloadError):
        await drain(resp)


async def wait_for(predicate: Any, limit: float = 3.0) -> None:
    for _ in range(int(limit / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def ffprobe(path: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ffprobe",
        "-v",
        "error",
        *args,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


# --------------------------------------------------------------------- liveness


async def test_version_and_status(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    body = await get_json(http, f"{sim.base_url}/webui/api/service?method=get_version")
    assert body == {
        "result": {"code": 3021200, "platform": "linux", "version": "3.2.12"},
        "error": None,
    }
    api = f"{sim.base_url}/server/api?api_version=3&method="
    body = await get_json(http, api + "get_status")
    assert body["result"]["version"]["version"] == "3.2.12"
    assert body["result"]["playlist_loaded"] is True
    body = await get_json(http, api + "get_network_connection_status")
    assert body == {"result": {"connected": True}, "error": None}
    body = await get_json(http, api + "bogus")
    assert body == {"result": None, "error": "unknown method"}
    assert sim.counters.version_calls == 1
    assert sim.counters.status_calls == 3


async def test_version_modes(sim: EngineSimulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_url}/webui/api/service?method=get_version"
    assert set(VERSION_MODES) == {
        "ok",
        "error_json",
        "html500",
        "empty",
        "wrong_type",
        "hang",
    }
    sim.version_mode = "error_json"
    body = await get_json(http, url)
    assert body["result"] is None
    assert body["error"]
    sim.version_mode = "html500"
    async with http.get(url) as resp:
        assert resp.status == 500
        assert resp.content_type == "text/html"
    sim.version_mode = "empty"
    async with http.get(url) as resp:
        assert resp.status == 200
        assert await resp.read() == b""
    sim.version_mode = "wrong_type"
    async with http.get(url) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "hello"
    sim.version_mode = "hang"
    with pytest.raises(TimeoutError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.2)):
            pass
    # A hanging request answers once the switch is cleared.
    task = asyncio.create_task(get_json(http, url))
    await asyncio.sleep(0.1)
    assert not task.done()
    sim.version_mode = "ok"
    body = await task
    assert body["result"]["code"] == 3021200


# --------------------------------------------------------------------- getstream


async def test_getstream_json(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    resp = await start(http, sim)
    infohash = sim.infohash_for(CONTENT_ID)
    assert infohash == hashlib.sha1(b"infohash:" + CONTENT_ID.encode()).hexdigest()
    assert sim.infohash_for(CONTENT_ID.upper()) == infohash
    assert resp["infohash"] == infohash
    token = resp["playback_url"].rsplit("/", 1)[1]
    assert resp["playback_url"] == f"{sim.base_url}/ace/r/{infohash}/{token}"
    assert resp["stat_url"] == f"{sim.base_url}/ace/stat/{infohash}/{token}"
    assert resp["command_url"] == f"{sim.base_url}/ace/cmd/{infohash}/{token}"
    assert resp["is_live"] == 1
    assert len(resp["playback_session_id"]) == 40
    assert resp["playback_session_id"] != token
    # `id=` alias and upper case map to the same infohash; a new token every time.
    again = await start(http, sim, f"id={CONTENT_ID.upper()}")
    assert again["infohash"] == infohash
    assert again["playback_url"] != resp["playback_url"]
    assert sim.counters.sessions_superseded == 1
    assert sim.active_sessions() == 1
    session = sim.sessions[infohash]
    assert session.pid == "test"
    assert not session.has_reader
    assert not session.stopped


async def test_getstream_infohash_selector(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    resp = await start(http, sim, f"infohash={OTHER_ID.upper()}")
    assert resp["infohash"] == OTHER_ID
    assert resp["playback_url"].startswith(f"{sim.base_url}/ace/r/{OTHER_ID}/")


async def test_getstream_errors(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.base_url}/ace/getstream?format=json"
    assert await get_json(http, url) == {
        "response": None,
        "error": "missing content id",
    }
    body = await get_json(http, url + "&content_id=xyz")
    assert body == {"response": None, "error": "invalid content id"}
    sim.unknown_content.add(OTHER_ID)
    body = await get_json(http, f"{url}&content_id={OTHER_ID}")
    assert body == {"response": None, "error": "failed to load content"}
    sim.getstream_error = "boom"
    body = await get_json(http, f"{url}&content_id={CONTENT_ID}")
    assert body == {"response": None, "error": "boom"}
    sim.getstream_error = None
    sim.getstream_hang = True
    with pytest.raises(TimeoutError):
        async with http.get(
            f"{url}&content_id={CONTENT_ID}",
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass
    sim.getstream_hang = False
    assert sim.active_sessions() == 0
    # Without format=json: a text error, or a redirect to the playback URL.
    async with http.get(f"{sim.base_url}/ace/getstream?content_id=xyz") as resp:
        assert resp.status == 400
        assert await resp.text() == "invalid content id"
    async with http.get(
        f"{sim.base_url}/ace/getstream?content_id={CONTENT_ID}",
        allow_redirects=False,
    ) as resp:
        assert resp.status == 302
        infohash = sim.infohash_for(CONTENT_ID)
        assert resp.headers["Location"].startswith(f"{sim.base_url}/ace/r/{infohash}/")


# --------------------------------------------------------------------- playback


async def test_read_stream_is_h264_aac(
    sim: EngineSimulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    resp = await start(http, sim)
    size = int(sim.bitrate * 2) // TS_PACKET * TS_PACKET
    async with http.get(resp["playback_url"]) as stream:
        assert stream.status == 200
        assert stream.content_type == "video/mp2t"
        assert stream.content_length is None
        data = await read_bytes(stream, size)
        assert sim.counters.readers_active == 1
        assert sim.sessions[resp["infohash"]].has_reader
    assert len(data) == size
    assert data[0] == 0x47
    assert all(data[i] == 0x47 for i in range(0, len(data), TS_PACKET))
    path = tmp_path / "two_seconds.ts"
    path.write_bytes(data)
    out = await ffprobe(
        path, "-show_entries", "stream=codec_name", "-of", "default=nw=1:nk=1"
    )
    assert set(out.split()) >= {"h264", "aac"}
    await wait_for(lambda: sim.counters.readers_active == 0)
    assert sim.counters.readers_opened == 1


async def test_cold_start_burst_and_stat(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    async with EngineSimulator(cold_start=0.4, burst_seconds=1.0) as sim:
        resp = await start(http, sim)
        stat_url = resp["stat_url"] + "?skip_player_activity=1"
        body = await get_json(http, stat_url)
        stat = body["response"]
        assert stat["status"] == "prebuf"
        assert stat["infohash"] == resp["infohash"]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with http.get(resp["playback_url"]) as stream:
            first = await stream.content.readany()
            waited = loop.time() - t0
            assert 0.25 < waited < 1.5
            # The burst (one second of stream) arrives at once.
            wanted = int(sim.bitrate * 0.9)
            burst = first + await read_bytes(stream, wanted - len(first))
            assert loop.time() - t0 - waited < 0.5
            assert len(burst) >= int(sim.bitrate * 0.9)
            stat = (await get_json(http, stat_url))["response"]
        assert stat["status"] == "dl"
        assert 5 <= stat["peers"] <= 12
        assert stat["speed_down"] > 100
        livepos = stat["livepos"]
        assert 2 <= int(livepos["last_ts"]) - int(livepos["pos"]) <= 5
        assert sim.counters.stat_calls == 2
        assert sim.counters.readers_opened == 1


async def test_unknown_session(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    bogus = f"{OTHER_ID}/{'0' * 32}"
    async with http.get(f"{sim.base_url}/ace/r/{bogus}") as resp:
        assert resp.status == 404
        assert await resp.text() == "unknown playback session id"
    body = await get_json(http, f"{sim.base_url}/ace/stat/{bogus}")
    assert body == {"response": None, "error": "unknown playback session id"}


async def test_supersede_cuts_old_reader(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    async with reading(http, sim) as (first, stream):
        second = await start(http, sim, f"content_id={CONTENT_ID}&pid=other")
        await read_until_broken(stream)
    assert sim.counters.sessions_superseded == 1
    assert sim.counters.readers_cut == 1
    async with http.get(first["playback_url"]) as resp:
        assert resp.status == 404
    async with http.get(second["playback_url"]) as stream:
        assert await stream.content.readany()


async def test_second_reader_cuts_first(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    async with (
        reading(http, sim) as (resp, first),
        http.get(resp["playback_url"]) as second,
    ):
        assert await second.content.readany()
        await read_until_broken(first)
        assert sim.counters.readers_active == 1
    assert sim.counters.readers_cut == 1
    assert sim.counters.readers_opened == 2


async def test_stop_command(sim: EngineSimulator, http: aiohttp.ClientSession) -> None:
    async with reading(http, sim) as (resp, stream):
        stop_url = resp["command_url"] + "?method=stop"
        session = sim.sessions[resp["infohash"]]
        assert await get_json(http, stop_url) == {"response": "ok", "error": None}
        await read_until_broken(stream)
    assert session.stopped
    assert await get_json(http, stop_url) == {
        "response": None,
        "error": "unknown playback session id",
    }
    assert sim.counters.sessions_stopped == 1
    assert sim.active_sessions() == 0


async def test_stall(sim: EngineSimulator, http: aiohttp.ClientSession) -> None:
    resp = await start(http, sim)
    async with http.get(resp["playback_url"]) as stream:
        await read_bytes(stream, int(sim.bitrate * sim.burst_seconds))
        sim.stall = True
        await asyncio.sleep(0.1)  # let in-flight data arrive
        while stream.content.read_nowait(-1):
            pass
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await stream.content.readany()
        stat = (await get_json(http, resp["stat_url"]))["response"]
        assert stat["status"] == "dl"
        sim.stall_stat_status = "buf"
        stat = (await get_json(http, resp["stat_url"]))["response"]
        assert stat["status"] == "buf"
        async with http.head(resp["playback_url"]) as head:
            assert head.status == 200
        assert sim.counters.readers_opened == 1
        sim.stall = False
        async with asyncio.timeout(1):
            assert await stream.content.readany()


async def test_cut_readers(sim: EngineSimulator, http: aiohttp.ClientSession) -> None:
    async with reading(http, sim) as (resp, stream):
        assert sim.cut_readers() == 1
        await read_until_broken(stream)
    assert sim.counters.readers_cut == 1
    await wait_for(lambda: sim.counters.readers_active == 0)
    # The session survives; a new reader may attach.
    async with http.get(resp["playback_url"]) as stream:
        assert await stream.content.readany()


async def test_restart_forgets_sessions(
    sim: EngineSimulator, http: aiohttp.ClientSession
) -> None:
    async with reading(http, sim) as (resp, stream):
        port = sim.port
        await sim.restart()
        await read_until_broken(stream)
    assert sim.port == port
    assert sim.active_sessions() == 0
    async with http.get(resp["playback_url"]) as r:
        assert r.status == 404
    body = await get_json(http, resp["stat_url"])
    assert body["error"] == "unknown playback session id"
    body = await get_json(http, resp["command_url"] + "?method=stop")
    assert body["error"] == "unknown playback session id"
    assert (await start(http, sim))["infohash"] == resp["infohash"]
    assert sim.counters.sessions_opened == 2


async def test_idle_expiry(socket_enabled: None, http: aiohttp.ClientSession) -> None:
    async with EngineSimulator(cold_start=0.01, idle_timeout=0.2) as sim:
        resp = await start(http, sim)
        async with http.get(resp["playback_url"]) as stream:
            assert await stream.content.readany()
            await asyncio.sleep(0.3)  # a reader keeps the session alive
            assert sim.active_sessions() == 1
        await wait_for(lambda: sim.active_sessions() == 0, limit=2)
        assert sim.counters.sessions_expired == 1


async def test_stop_refuses_connections(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    sim = EngineSimulator(cold_start=0.01)
    await sim.start()
    port = sim.port
    async with reading(http, sim) as (_, stream):
        await sim.stop()
        await read_until_broken(stream)
    with pytest.raises(aiohttp.ClientConnectionError):
        await get_json(http, f"{sim.base_url}/webui/api/service?method=get_version")
    await sim.start()  # same port again
    try:
        assert sim.port == port
        body = await get_json(
            http, f"{sim.base_url}/webui/api/service?method=get_version"
        )
        assert body["error"] is None
    finally:
        await sim.stop()


# --------------------------------------------------------------------- looping


def parse_ts(data: bytes) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Tiny TS parser: PCRs and PES PTS per PID; asserts continuity counters."""
    pcrs: dict[int, list[int]] = {}
    pts: dict[int, list[int]] = {}
    last_cc: dict[int, int] = {}
    for off in range(0, len(data), TS_PACKET):
        assert data[off] == 0x47
        pid = (data[off + 1] & 0x1F) << 8 | data[off + 2]
        afc = (data[off + 3] >> 4) & 3
        cc = data[off + 3] & 0x0F
        if afc & 1:
            if pid in last_cc:
                assert cc == (last_cc[pid] + 1) % 16, (pid, off)
            last_cc[pid] = cc
        payload = off + 4
        if afc & 2:
            if data[off + 4] >= 7 and data[off + 5] & 0x10:
                pcrs.setdefault(pid, []).append(read_pcr(data, off + 6))
            payload += 1 + data[off + 4]
        pusi = data[off + 1] & 0x40
        if pusi and afc & 1 and data[payload : payload + 3] == b"\x00\x00\x01":
            if data[payload + 3] in (0xBC, 0xBE, 0xBF):
                continue
            if data[payload + 7] & 0x80:
                pts.setdefault(pid, []).append(read_timestamp(data, payload + 9))
    return pcrs, pts


async def test_timestamps_continuous_across_loops(
    socket_enabled: None, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with EngineSimulator(cold_start=0.01, burst_seconds=20) as sim:
        fixture = sim.fixture
        assert fixture.size < 2_000_000
        assert 7.5 < fixture.duration < 8.5
        resp = await start(http, sim)
        size = fixture.size * 2 + fixture.size // 2
        async with http.get(resp["playback_url"]) as stream:
            data = await read_bytes(stream, size)
    assert len(data) == size
    assert data[: size // 3] != data[fixture.size : fixture.size + size // 3]
    pcrs, pts = parse_ts(data)
    assert pcrs
    for values in pcrs.values():
        assert all(b > a for a, b in itertools.pairwise(values))
    assert len(pts) >= 2
    for values in pts.values():
        assert all(b > a for a, b in itertools.pairwise(values))
        steps = {b - a for a, b in itertools.pairwise(values)}
        assert max(steps) < 90_000  # no jump at the loop seams
    # ffprobe agrees: every packet continues its stream at the usual step.
    path = tmp_path / "loops.ts"
    path.write_bytes(data)
    out = await ffprobe(
        path, "-show_entries", "packet=stream_index,pts", "-of", "csv=p=0"
    )
    last: dict[str, int] = {}
    steps_by_stream: dict[str, set[int]] = {}
    for line in out.split():
        index, value = line.split(",")[:2]
        if index in last:
            steps_by_stream.setdefault(index, set()).add(int(value) - last[index])
        last[index] = int(value)
    assert steps_by_stream == {"0": {3600}, "1": {1920}}


async def test_default_fixture_exists() -> None:
    assert DEFAULT_FIXTURE.is_file()
    assert DEFAULT_FIXTURE.stat().st_size % TS_PACKET == 0


async def test_cut_during_cold_start(
    socket_enabled: None, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with EngineSimulator(cold_start=2.0) as sim:
        resp = await start(http, sim)

        async def read() -> int | None:
            try:
                async with http.get(resp["playback_url"]) as stream:
                    await stream.read()
                    return stream.status
            except aiohttp.ClientError:
                return None

        reader = asyncio.create_task(read())
        await wait_for(lambda: sim.counters.readers_active == 1)
        await start(http, sim)  # supersedes before the first byte
        # The connection is dropped before any header; aiohttp's client silently
        # retries an idempotent request once on a dropped keep-alive connection,
        # so the client sees either the disconnection or the retry's 404.
        assert await reader in (None, 404)
        assert sim.counters.readers_opened == 1
        await wait_for(lambda: sim.counters.readers_active == 0)
        assert sim.counters.readers_cut == 1
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


async def test_stop_releases_hanging_requests(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    sim = EngineSimulator()
    await sim.start()
    sim.version_mode = "hang"
    sim.getstream_hang = True
    version = asyncio.create_task(
        get_json(http, f"{sim.base_url}/webui/api/service?method=get_version")
    )
    stream = asyncio.create_task(start(http, sim))
    await wait_for(lambda: sim.counters.getstream_calls == 1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await sim.stop()
    assert loop.time() - t0 < 1
    for task in (version, stream):
        with pytest.raises((aiohttp.ClientError, AssertionError)):
            await task


# --------------------------------------------------------------------- strict mode


async def test_strict_reader_joins_live_mid_gop(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    """A reader starts one burst behind the live position, not at byte 0."""
    async with EngineSimulator(
        strict=True, cold_start=0.05, burst_seconds=0.5, live_age=100
    ) as sim:
        burst = int(0.5 * sim.bitrate)
        fixture = sim.fixture
        program = ProgramInfo()
        program.scan(fixture.data)
        keyframes = set(random_access_offsets(fixture.data, program.video_pid))
        starts = []
        for _ in range(2):
            resp = await start(http, sim)
            async with http.get(resp["playback_url"]) as stream:
                before = sim.live_position()
                data = await read_bytes(stream, 50_000)
                after = sim.live_position()
                reader = sim.sessions[resp["infohash"]].reader
                assert reader is not None
                begin = reader.start_position
            # The bytes are the live stream's from that position on (timestamps
            # included: live time, not the fixture's zero).
            assert data == fixture.read(begin, len(data))
            assert before - burst - sim.bitrate < begin <= after - burst
            assert begin > 100 * sim.bitrate * 0.9
            assert begin % fixture.size not in keyframes
            starts.append(begin)
            await asyncio.sleep(0.3)
        assert starts[1] > starts[0]


async def test_strict_infohash_needs_the_content_id_first(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    """By infohash: "failed to load content" (HTTP 200 JSON) until loaded by id."""
    async with EngineSimulator(strict=True, cold_start=0.01) as sim:
        infohash = sim.infohash_for(CONTENT_ID)
        url = f"{sim.base_url}/ace/getstream?format=json&infohash={infohash}"
        assert await get_json(http, url) == {
            "response": None,
            "error": "failed to load content",
        }
        assert sim.counters.getstream_refused == 1
        assert sim.active_sessions() == 0
        await start(http, sim)  # by content id: the engine fetches the descriptor
        assert infohash in sim.loaded
        body = await get_json(http, url)
        assert body["response"]["infohash"] == infohash
        # A restart forgets what was loaded.
        await sim.restart(downtime=0)
        assert await get_json(http, url) == {
            "response": None,
            "error": "failed to load content",
        }
        assert sim.counters.getstream_refused == 2
    # The kind mode accepts any infohash.
    async with EngineSimulator(cold_start=0.01) as kind:
        body = await get_json(
            http, f"{kind.base_url}/ace/getstream?format=json&infohash={OTHER_ID}"
        )
        assert body["error"] is None


async def test_strict_restart_refuses_connections_then_accepts(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    async with EngineSimulator(
        strict=True, cold_start=0.01, restart_downtime=0.5
    ) as sim:
        version = f"{sim.base_url}/webui/api/service?method=get_version"
        port = sim.port
        resp = await start(http, sim)
        async with http.get(resp["playback_url"]) as stream:
            assert await stream.content.readany()
            await sim.restart()
            await read_until_broken(stream)
        assert not sim.running
        with pytest.raises(aiohttp.ClientConnectorError):
            await get_json(http, version)
        await asyncio.wait_for(sim.wait_accepting(), 3)
        assert sim.running
        assert sim.port == port
        assert (await get_json(http, version))["error"] is None
        assert sim.active_sessions() == 0
        assert sim.counters.restarts == 1
        async with http.get(resp["playback_url"]) as gone:
            assert gone.status == 404


def test_parse_faults() -> None:
    assert parse_faults("stall at 30s for 25s, cut at 90s, restart at 150s") == [
        Fault("stall", 30.0, 25.0),
        Fault("cut", 90.0),
        Fault("restart", 150.0),
    ]
    assert parse_faults("restart@5+3, error @ 1 for 2, hang at 2.5s for 0.5s") == [
        Fault("error", 1.0, 2.0),
        Fault("hang", 2.5, 0.5),
        Fault("restart", 5.0, 3.0),
    ]
    assert str(Fault("stall", 30.0, 25.0)) == "stall at 30s for 25s"
    assert str(Fault("cut", 1.5)) == "cut at 1.5s"
    assert parse_faults(" ") == []
    for bad in ("explode at 3s", "stall at 3s", "cut", "cut at soon"):
        with pytest.raises(ValueError, match="fault"):
            parse_faults(bad)
    args = _parse_args(["--strict", "--faults", "cut at 2s", "--not-ts", "AB" * 20])
    assert args.strict
    assert args.faults == [Fault("cut", 2.0)]
    assert args.not_ts == ["AB" * 20]


async def test_fault_schedule(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    """Scheduled from the start: a stall, an error window, a cut, a restart."""
    async with EngineSimulator(
        strict=True,
        cold_start=0.01,
        burst_seconds=0.2,
        faults="stall at 0.5s for 0.5s, error at 0.5s for 0.5s, cut at 1.5s, "
        "restart at 2s for 0.3s",
    ) as sim:
        resp = await start(http, sim)
        async with http.get(resp["playback_url"]) as stream:
            assert await stream.content.readany()
            await wait_for(lambda: sim.stall)
            body = await get_json(
                http, f"{sim.base_url}/ace/getstream?format=json&id={OTHER_ID}"
            )
            assert body["error"] == "failed to load content"
            await wait_for(lambda: not sim.stall and sim.getstream_error is None)
            await read_until_broken(stream)  # the cut
        assert sim.counters.readers_cut == 1
        await wait_for(lambda: sim.counters.restarts == 1)
        await asyncio.wait_for(sim.wait_accepting(), 3)
        kinds = [fault.kind for _, fault in sim.faults_applied]
        assert kinds == ["stall", "error", "cut", "restart"]
        assert [round(at, 1) for at, _ in sim.faults_applied][-1] >= 2.0
        # A schedule given later counts from then.
        resp = await start(http, sim)
        async with http.get(resp["playback_url"]) as stream:
            assert await stream.content.readany()
            sim.schedule("cut at 0.1s")
            await read_until_broken(stream)
        assert sim.counters.readers_cut == 2


async def test_not_ts_content(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    """A session of a listed content serves bytes with no MPEG-TS sync at all."""
    async with EngineSimulator(strict=True, cold_start=0.01, not_ts={OTHER_ID}) as sim:
        resp = await start(http, sim, f"content_id={OTHER_ID}")
        async with http.get(resp["playback_url"]) as stream:
            data = await read_bytes(stream, 100_000)
        assert len(data) == 100_000
        assert 0x47 not in data
        resp = await start(http, sim)
        async with http.get(resp["playback_url"]) as stream:
            data = await read_bytes(stream, 100_000)
        assert data.count(0x47) > 100_000 // TS_PACKET // 2


async def test_shared_ledger_counts_sessions_across_engines(
    socket_enabled: None, http: aiohttp.ClientSession
) -> None:
    ledger = SessionLedger()
    async with (
        EngineSimulator(strict=True, ledger=ledger) as one,
        EngineSimulator(strict=True, ledger=ledger) as two,
    ):
        infohash = one.infohash_for(CONTENT_ID)
        first = await start(http, one)
        await start(http, one)  # supersedes: still one
        assert ledger.open == {infohash: 1}
        await start(http, two)
        assert ledger.open == {infohash: 2}
        assert ledger.max_concurrent == 2
        await get_json(http, first["command_url"] + "?method=stop")  # already gone
        await two.restart(downtime=0)
        assert ledger.open == {infohash: 1}
    assert ledger.open == {}
    assert ledger.peak == {infohash: 2}
