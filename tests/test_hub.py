"""The hub: several engines, unload during a start, Home Assistant stopping."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
)

from custom_components.acestream_proxy.const import EVENT_TYPE
from custom_components.acestream_proxy.hub import get_hub
from custom_components.acestream_proxy.stream.engine import ContentKind, ContentRef
from tests.ha_fixtures import CID, PREFIX, Engines, until
from tests.helpers import (
    discontinuities,
    first_video_frame,
    load_on_engine,
    pids,
    read_bytes,
    read_for,
    read_until,
    strip_nulls,
)
from tests.simulator import EngineSimulator


async def test_one_broadcast_across_two_engines(
    hass: HomeAssistant, owner_client: TestClient, engines: Engines
) -> None:
    """An infohash playing on engine A stays there when its content id lands on B."""
    # Both engines played the content before: they accept its infohash.
    await load_on_engine(engines.first_sim, CID)
    await load_on_engine(engines.second_sim, CID)
    infohash = engines.first_sim.infohash_for(CID)
    async with owner_client.get(f"{PREFIX}/stream/infohash/{infohash}") as a:
        await read_bytes(a, 20_000)
        hub = get_hub(hass)
        first_engine = hub.broadcasts[infohash].entry_id
        # The least loaded engine gets the next start: the other one.
        async with owner_client.get(f"{PREFIX}/stream/{CID}") as b:
            assert b.status == 200
            assert strip_nulls(await read_bytes(b, 50_000))
        assert hub.broadcasts[infohash].entry_id == first_engine
    sims = engines.sims
    idle = sims[
        engines.second.entry_id
        if first_engine == engines.first.entry_id
        else engines.first.entry_id
    ]
    # The duplicate session on the other engine was stopped at once.
    assert idle.counters.sessions_opened == 1
    assert idle.counters.sessions_stopped == 1
    assert await hass.config_entries.async_unload(engines.second.entry_id)


async def test_unload_during_start_is_503(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
) -> None:
    """A viewer waiting on getstream gets 503 when the engine is unloaded."""
    engine_sim.getstream_hang = True
    request = asyncio.create_task(owner_client.get(f"{PREFIX}/stream/{CID}"))
    async with asyncio.timeout(5):
        while engine_sim.counters.getstream_calls == 0:
            await asyncio.sleep(0.02)
    assert await hass.config_entries.async_unload(loaded_entry.entry_id)
    resp = await request
    assert resp.status == 503
    assert "unloaded" in await resp.text()
    engine_sim.getstream_hang = False


async def test_home_assistant_stop_stops_engine_sessions(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Stopping Home Assistant ends the broadcasts and their engine sessions."""
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 20_000)
        hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
        async with asyncio.timeout(5):
            while await resp.content.readany():
                pass
        await hass.async_block_till_done()
    assert engine_sim.counters.sessions_stopped == 1
    assert engine_sim.active_sessions() == 0
    assert get_hub(hass).broadcasts == {}


async def test_selection_spreads_broadcasts(
    hass: HomeAssistant, owner_client: TestClient, engines: Engines
) -> None:
    """Three broadcasts on two healthy engines: 2 + 1, least loaded first."""
    ids = [f"{n:040x}" for n in (1, 2, 3)]
    responses = [await owner_client.get(f"{PREFIX}/stream/{cid}") for cid in ids]
    try:
        assert all(resp.status == 200 for resp in responses)
        hub = get_hub(hass)
        counts = sorted(
            hub.broadcast_count(entry_id)
            for entry_id in (engines.first.entry_id, engines.second.entry_id)
        )
        assert counts == [1, 2]
        assert (
            engines.first_sim.counters.sessions_opened
            + engines.second_sim.counters.sessions_opened
            == 3
        )
    finally:
        for resp in responses:
            resp.close()
    assert await hass.config_entries.async_unload(engines.second.entry_id)


async def test_failover_keeps_viewers(
    hass: HomeAssistant, owner_client: TestClient, tmp_path: Path, engines: Engines
) -> None:
    """The engine under a broadcast dies: it moves to the other one, viewers stay."""
    events = async_capture_events(hass, EVENT_TYPE)
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 100_000)
        hub = get_hub(hass)
        [item] = hub.broadcasts.values()
        serving = item.entry_id
        sims = engines.sims
        dying = sims[serving]
        survivor_id = next(e for e in sims if e != serving)
        await dying.stop()

        def switched(data: bytes) -> bool:
            """On the survivor, with 100 kB after its flagged first keyframe."""
            real = strip_nulls(data)
            flagged = _flagged_keyframe(real)
            return (
                item.entry_id == survivor_id
                and flagged is not None
                and len(real) - flagged > 100_000
            )

        after = await read_until(resp, switched)
        assert item.entry_id == survivor_id
        assert sims[survivor_id].counters.sessions_opened == 1
    failover = [e.data for e in events if e.data["type"] == "stream_failover"]
    assert len(failover) == 1
    titles = {
        engines.first.entry_id: engines.first.title,
        engines.second.entry_id: "second engine",
    }
    assert failover[0]["from_engine"] == titles[serving]
    assert failover[0]["to_engine"] == titles[survivor_id]
    assert discontinuities(after) >= 1
    real = strip_nulls(after)
    assert len(real) > 100_000
    # After the switch: PAT + PMT, then a keyframe flagged discontinuous,
    # which decodes on its own.
    flagged = _flagged_keyframe(real)
    assert flagged is not None
    assert pids(real[flagged - 376 : flagged])[0] == 0
    sample = tmp_path / "after.ts"
    sample.write_bytes(real[flagged - 376 :])
    frame = await first_video_frame(sample)
    assert frame["key_frame"] == 1
    assert await hass.config_entries.async_unload(engines.second.entry_id)


def _flagged_keyframe(real: bytes) -> int | None:
    """Offset of the first keyframe flagged discontinuous (a switch's first)."""
    return next(
        (
            i
            for i in range(0, len(real) - 187, 188)
            if real[i + 3] & 0x20 and real[i + 4] and real[i + 5] & 0xC0 == 0xC0
        ),
        None,
    )


async def _failover(
    hass: HomeAssistant,
    sims: dict[str, EngineSimulator],
    resp: Any,
) -> tuple[str, str]:
    """Stop the engine under the only broadcast; wait until it plays on the other."""
    hub = get_hub(hass)
    [item] = hub.broadcasts.values()
    serving = item.entry_id
    survivor = next(e for e in sims if e != serving)
    await sims[serving].stop()
    async with asyncio.timeout(10):
        while not strip_nulls(await read_for(resp, 0.3)) or item.entry_id != survivor:
            pass
    return serving, survivor


@pytest.mark.parametrize("second_strict", [False])
async def test_unloading_the_engine_left_by_a_failover_keeps_the_broadcast(
    hass: HomeAssistant, owner_client: TestClient, engines: Engines
) -> None:
    """Defect 2: after a failover A -> B, unloading A (a reload, reconfigure, a
    channel edit) must not kill the producer that now reads from B."""
    sims = engines.sims
    events = async_capture_events(hass, EVENT_TYPE)
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 100_000)
        hub = get_hub(hass)
        [item] = hub.broadcasts.values()
        left, _ = await _failover(hass, sims, resp)
        assert await hass.config_entries.async_unload(left)
        after = await read_for(resp, 2.0)
        assert len(strip_nulls(after)) > 50_000
        assert item.broadcaster.alive
        ref = ContentRef.parse(ContentKind.CONTENT_ID, CID)
        assert hub.find(ref) is item.broadcaster
    types = [e.data["type"] for e in events]
    assert types.count("stream_failover") == 1
    assert "stream_stopped" not in types
    assert "stream_failed" not in types
    assert await hass.config_entries.async_unload(engines.second.entry_id)
    await hass.async_block_till_done()
    assert get_hub(hass).broadcasts == {}
    assert engines.second_sim.active_sessions() == 0


@pytest.mark.parametrize("second_strict", [False])
async def test_reloading_the_serving_engine_moves_the_broadcast(
    hass: HomeAssistant, owner_client: TestClient, engines: Engines
) -> None:
    """The engine under a broadcast reloads: the broadcast moves, viewers stay."""
    sims = engines.sims
    events = async_capture_events(hass, EVENT_TYPE)
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 100_000)
        [item] = get_hub(hass).broadcasts.values()
        serving = item.entry_id
        survivor = next(e for e in sims if e != serving)
        assert await hass.config_entries.async_reload(serving)
        assert item.entry_id == survivor
        after = await read_for(resp, 3.0)
        assert len(strip_nulls(after)) > 100_000
        assert discontinuities(after) >= 1
        assert item.broadcaster.engine_id == survivor
        # The session on the engine it left was stopped: never two at once.
        assert sims[serving].active_sessions() == 0
        assert sims[serving].counters.sessions_stopped == 1
        assert sims[survivor].counters.sessions_opened == 1
    failover = [e.data for e in events if e.data["type"] == "stream_failover"]
    assert len(failover) == 1
    assert "stream_stopped" not in [e.data["type"] for e in events]
    assert await hass.config_entries.async_unload(engines.second.entry_id)


async def test_stop_then_an_immediate_reconnect(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Defect 3: a player reconnecting while Stop runs waits for the close, then
    gets a new broadcast; the old one tells exactly one stream_stopped."""
    events = async_capture_events(hass, EVENT_TYPE)
    ref = ContentRef.parse(ContentKind.CONTENT_ID, CID)
    hub = get_hub(hass)
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 50_000)
        old = hub.find(ref)
        assert old is not None
        stop = asyncio.create_task(hub.async_stop(ref))
        await asyncio.sleep(0)  # the stop is under way
        assert old.closed
        assert hub.find(ref) is None
        async with owner_client.get(f"{PREFIX}/stream/{CID}") as again:
            assert again.status == 200
            data = await read_bytes(again, 100_000)
            assert strip_nulls(data)
            new = hub.find(ref)
            assert new is not None
            assert new is not old
        assert await stop
        assert await hub.async_stop(ref)
    await hass.async_block_till_done()
    stopped = [e.data for e in events if e.data["type"] == "stream_stopped"]
    assert len(stopped) == 2
    assert "stream_failed" not in [e.data["type"] for e in events]
    assert engine_sim.active_sessions() == 0
    assert not await hub.async_stop(ref)


@pytest.mark.parametrize("second_strict", [False])
async def test_unloading_an_engine_in_its_cold_start_moves_at_once(
    hass: HomeAssistant, owner_client: TestClient, engines: Engines
) -> None:
    """A move does not wait for the cold start of the engine it leaves."""
    engines.first_sim.cold_start = 30.0
    events = async_capture_events(hass, EVENT_TYPE)
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        assert resp.status == 200
        early = await read_for(resp, 2.5)
        assert set(pids(early[: len(early) // 188 * 188])) == {0x1FFF}
        [item] = get_hub(hass).broadcasts.values()
        assert item.entry_id == engines.first.entry_id
        assert await hass.config_entries.async_unload(engines.first.entry_id)
        data = strip_nulls(await read_bytes(resp, 400_000, timeout=8))
        assert len(data) > 100_000
        assert item.broadcaster.engine_id == engines.second.entry_id
    assert engines.first_sim.active_sessions() == 0
    types = [e.data["type"] for e in events]
    assert types.count("stream_failover") == 1
    assert await hass.config_entries.async_unload(engines.second.entry_id)


async def test_home_assistant_stop_during_a_start(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """A start waiting on getstream is cancelled when Home Assistant stops: its
    viewer gets 503 and nothing is left starting."""
    engine_sim.getstream_hang = True
    request = asyncio.create_task(owner_client.get(f"{PREFIX}/stream/{CID}"))
    await until(lambda: engine_sim.counters.getstream_calls > 0)
    hub = get_hub(hass)
    assert hub.registry.starting
    await hub.async_shutdown()
    resp = await request
    assert resp.status == 503
    assert hub.registry.starting == {}
    assert hub.broadcasts == {}
    engine_sim.getstream_hang = False


async def test_events_name_the_content_id_learned_before(
    hass: HomeAssistant, engine_sim: EngineSimulator, owner_client: TestClient
) -> None:
    """Opened by infohash, a broadcast's events name the content id that resolved
    to it earlier."""
    hub = get_hub(hass)
    async with owner_client.get(f"{PREFIX}/stream/{CID}") as resp:
        await read_bytes(resp, 20_000)
    assert await hub.async_stop(ContentRef.parse(ContentKind.CONTENT_ID, CID))
    events = async_capture_events(hass, EVENT_TYPE)
    infohash = engine_sim.infohash_for(CID)
    async with owner_client.get(f"{PREFIX}/stream/infohash/{infohash}") as resp:
        await read_bytes(resp, 20_000)
        broadcaster = hub.find(ContentRef.parse(ContentKind.INFOHASH, infohash))
        assert broadcaster is not None
        assert broadcaster.content.kind is ContentKind.INFOHASH
        await until(lambda: any(e.data["type"] == "stream_started" for e in events))
    started = next(e.data for e in events if e.data["type"] == "stream_started")
    assert started["infohash"] == infohash
    assert started["content_id"] == CID


async def test_a_start_that_fails_after_every_viewer_left_logs_no_orphan(
    hass: HomeAssistant,
    loaded_entry: MockConfigEntry,
    engine_sim: EngineSimulator,
    owner_client: TestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The viewer gives up while the engine opens, then the engine refuses: the
    start's error is read, not left for asyncio to report as never retrieved."""
    engine_sim.getstream_hang = True
    request = asyncio.create_task(owner_client.get(f"{PREFIX}/stream/{CID}"))
    await until(lambda: engine_sim.counters.getstream_calls == 1)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    hub = get_hub(hass)
    assert hub.registry.starting
    engine_sim.getstream_error = "failed to load content"
    engine_sim.getstream_hang = False
    await until(lambda: not hub.registry.starting)
    await hass.async_block_till_done()
    gc.collect()  # asyncio reports an unread task error when the task is freed
    await hass.async_block_till_done()
    assert "never retrieved" not in caplog.text
    assert not hub.broadcasts
